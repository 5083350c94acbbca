"""Interop tests: pusher-http-python (unmodified) + a raw `websockets` client
speaking the Pusher protocol by hand, against a running Vask.

Run with `python -m unittest -v test_interop` from this directory, with
VASK_HOST / VASK_PORT set (defaults 127.0.0.1:6001). The server must use
tests/interop/vask.interop.toml.
"""

import base64
import json
import os
import re
import socket
import time
import unittest
import uuid

import nacl.secret
import pusher
from pusher.errors import PusherBadAuth, PusherBadRequest, PusherBadStatus, PusherForbidden
from pusher.http import POST, Request
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

HOST = os.environ.get("VASK_HOST", "127.0.0.1")
PORT = int(os.environ.get("VASK_PORT", "6001"))
# Where the server SDK publishes: another node in cluster mode.
API_PORT = int(os.environ.get("VASK_API_PORT", str(PORT)))

# Must match tests/interop/vask.interop.toml.
APP_ID, KEY, SECRET = "1", "interop-key", "interop-secret"
DISABLED_ID, DISABLED_KEY, DISABLED_SECRET = "2", "disabled-key", "disabled-secret"

# End-to-end encryption master key (bytes 0x00..0x1f); Vask never sees it.
MASTER_KEY_B64 = base64.b64encode(bytes(range(32))).decode()

RUN = uuid.uuid4().hex[:8]
_counter = [0]

# Frames the server may interleave at any time; skipped unless asked for.
NOISE = ("pusher_internal:subscription_count",)

TIMEOUT = 5.0


def settles(query, expected, within=2.0):
    """The query's answer once it equals `expected` (or the last one after
    `within` seconds): in cluster mode a query through another node sees a
    change a few milliseconds later."""
    deadline = time.monotonic() + within
    while True:
        got = query()
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def uniq(prefix):
    _counter[0] += 1
    return "%s%s-%d" % (prefix, RUN, _counter[0])


def sdk(app_id=APP_ID, key=KEY, secret=SECRET):
    return pusher.Pusher(
        app_id=app_id,
        key=key,
        secret=secret,
        host=HOST,
        port=API_PORT,
        ssl=False,
        timeout=5,
        encryption_master_key_base64=MASTER_KEY_B64,
    )


def error_body(exc):
    """The JSON error body carried in a pusher-http-python exception message."""
    text = str(exc.args[0]) if exc.args else str(exc)
    # PusherBadStatus prefixes the body with "<status>: ".
    m = re.match(r"^(\d{3}): (.*)$", text, re.S)
    if m:
        text = m.group(2)
    try:
        return json.loads(text)
    except ValueError:
        raise AssertionError("error body is not JSON: %r" % text)


class Raw:
    """A hand-written Pusher protocol client over `websockets` (sync API)."""

    def __init__(self, key=KEY, query="?protocol=7&client=py-raw&version=0.0.1&flash=false", path=None):
        self.url = "ws://%s:%d%s%s" % (HOST, PORT, path or "/app/" + key, query)
        self.ws = connect(self.url, open_timeout=TIMEOUT, close_timeout=2, legacy=True)
        self.skipped = []
        self.socket_id = None

    # -- sending -----------------------------------------------------------
    def send(self, event, data, channel=None):
        frame = {"event": event, "data": data}
        if channel is not None:
            frame["channel"] = channel
        self.ws.send(json.dumps(frame))

    def send_text(self, text):
        self.ws.send(text)

    # -- receiving ---------------------------------------------------------
    def recv(self, timeout=TIMEOUT):
        raw = self.ws.recv(timeout=timeout)
        try:
            return json.loads(raw)
        except ValueError:
            raise AssertionError("server sent non-JSON text: %r" % raw)

    def next(self, timeout=TIMEOUT, ignore=NOISE):
        """The next frame that is not noise; fails on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no frame within %.1fs" % timeout)
            try:
                frame = self.recv(timeout=left)
            except TimeoutError:
                raise AssertionError("no frame within %.1fs (skipped: %r)" % (timeout, self.skipped[-5:]))
            if frame.get("event") in ignore:
                self.skipped.append(frame)
                continue
            return frame

    def until(self, pred, timeout=TIMEOUT, what="frame"):
        """Reads frames until one satisfies `pred`; the others are kept in `skipped`."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for %s; got %r" % (what, seen))
            try:
                frame = self.recv(timeout=left)
            except TimeoutError:
                raise AssertionError("timed out waiting for %s; got %r" % (what, seen))
            if pred(frame):
                return frame
            seen.append(frame)
            self.skipped.append(frame)

    def event(self, event, channel=None, timeout=TIMEOUT):
        return self.until(
            lambda f: f.get("event") == event and (channel is None or f.get("channel") == channel),
            timeout,
            "%s on %s" % (event, channel),
        )

    def nothing(self, timeout=0.7, ignore=NOISE, pred=None):
        """Asserts that no frame (other than noise, or matching `pred` if given) arrives."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                frame = self.recv(timeout=left)
            except TimeoutError:
                return
            if frame.get("event") in ignore:
                continue
            if pred is None or pred(frame):
                raise AssertionError("unexpected frame: %r" % frame)

    def closed(self, timeout=TIMEOUT):
        """Reads until the server closes; returns (frames before close, close code)."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("connection not closed within %.1fs; frames %r" % (timeout, frames))
            try:
                frames.append(self.recv(timeout=left))
            except TimeoutError:
                continue
            except ConnectionClosed as e:
                return frames, (e.rcvd.code if e.rcvd else None)

    # -- protocol helpers --------------------------------------------------
    def established(self):
        frame = self.recv()
        assert frame.get("event") == "pusher:connection_established", frame
        assert isinstance(frame.get("data"), str), "connection_established data must be a string: %r" % frame
        data = json.loads(frame["data"])
        self.socket_id = data["socket_id"]
        return frame, data

    def subscribe(self, channel, auth=None, channel_data=None):
        data = {"channel": channel}
        if auth is not None:
            data["auth"] = auth
        if channel_data is not None:
            data["channel_data"] = channel_data
        self.send("pusher:subscribe", data)

    def subscribed(self, channel, auth=None, channel_data=None):
        self.subscribe(channel, auth, channel_data)
        frame = self.until(
            lambda f: f.get("channel") == channel
            and f.get("event") in ("pusher_internal:subscription_succeeded", "pusher:subscription_error"),
            what="subscription result for %s" % channel,
        )
        assert frame["event"] == "pusher_internal:subscription_succeeded", frame
        return frame

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


class VaskTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.pusher = sdk()
        self._raws = []

    def tearDown(self):
        for raw in self._raws:
            raw.close()

    def raw(self, **kw):
        r = Raw(**kw)
        self._raws.append(r)
        r.established()
        return r

    def private(self, r, channel):
        auth = self.pusher.authenticate(channel=channel, socket_id=r.socket_id)
        return r.subscribed(channel, auth=auth["auth"])

    def presence(self, r, channel, user_id, user_info=None):
        data = {"user_id": user_id}
        if user_info is not None:
            data["user_info"] = user_info
        auth = self.pusher.authenticate(channel=channel, socket_id=r.socket_id, custom_data=data)
        return r.subscribed(channel, auth=auth["auth"], channel_data=auth["channel_data"])

    def signin(self, r, user_id, **extra):
        user = {"id": user_id}
        user.update(extra)
        auth = self.pusher.authenticate_user(r.socket_id, user)
        r.send("pusher:signin", {"auth": auth["auth"], "user_data": auth["user_data"]})
        return auth, r.event("pusher:signin_success")


class ConnectionTests(VaskTestCase):
    def test_connection_established_frame(self):
        r = Raw()
        self._raws.append(r)
        frame, data = r.established()
        self.assertEqual(set(frame), {"event", "data"})
        self.assertRegex(data["socket_id"], r"^\d+\.\d+$")
        self.assertEqual(data["activity_timeout"], 120)

    def test_socket_ids_are_unique(self):
        ids = {self.raw().socket_id for _ in range(5)}
        self.assertEqual(len(ids), 5)

    def test_ping_pong(self):
        r = self.raw()
        r.send("pusher:ping", {})
        self.assertEqual(r.next(), {"event": "pusher:pong", "data": "{}"})

    def test_protocol_versions(self):
        for query in ("?protocol=5", "?protocol=6", "?protocol=7", ""):
            with self.subTest(query=query):
                self.raw(query=query)

    def test_unsupported_protocol_is_4007(self):
        r = Raw(query="?protocol=8")
        self._raws.append(r)
        frames, code = r.closed()
        self.assertEqual(frames[0]["event"], "pusher:error")
        self.assertIsInstance(frames[0]["data"], dict, "pusher:error data must be an object")
        self.assertEqual(frames[0]["data"]["code"], 4007)
        self.assertEqual(code, 4007)

    def test_unknown_app_key_is_4001(self):
        r = Raw(key="no-such-key")
        self._raws.append(r)
        frames, code = r.closed()
        self.assertEqual(len(frames), 1, frames)
        self.assertEqual(frames[0]["event"], "pusher:error")
        self.assertIsInstance(frames[0]["data"], dict, "pusher:error data must be an object")
        self.assertEqual(frames[0]["data"]["code"], 4001)
        self.assertIsInstance(frames[0]["data"]["message"], str)
        self.assertEqual(code, 4001)

    def test_disabled_app_is_4003(self):
        r = Raw(key=DISABLED_KEY)
        self._raws.append(r)
        frames, code = r.closed()
        self.assertEqual(frames[0]["event"], "pusher:error")
        self.assertEqual(frames[0]["data"]["code"], 4003)
        self.assertEqual(code, 4003)

    def test_unknown_path_is_refused(self):
        # Either refused at the HTTP upgrade (404) or with 4005 after it.
        try:
            r = Raw(path="/not-an-app/" + KEY)
        except InvalidStatus as e:
            self.assertEqual(e.response.status_code, 404)
            return
        self._raws.append(r)
        frames, code = r.closed()
        self.assertEqual(frames[0]["data"]["code"], 4005)
        self.assertEqual(code, 4005)

    def test_invalid_json_keeps_or_closes_cleanly(self):
        # Not specified beyond "don't crash": the server must still serve others.
        r = self.raw()
        r.send_text("this is not json")
        other = self.raw()
        other.send("pusher:ping", {})
        self.assertEqual(other.next()["event"], "pusher:pong")


class ChannelTests(VaskTestCase):
    def test_public_subscribe_and_trigger_exact_frames(self):
        r = self.raw()
        c = uniq("public-")
        # pusher-js sends auth "" for public channels.
        r.subscribe(c, auth="")
        self.assertEqual(
            r.next(),
            {"event": "pusher_internal:subscription_succeeded", "channel": c, "data": "{}"},
        )
        self.assertEqual(self.pusher.trigger(c, "my-event", '{"message":"hi"}'), {})
        self.assertEqual(r.next(), {"event": "my-event", "channel": c, "data": '{"message":"hi"}'})
        # Data the SDK JSON-encodes itself arrives byte-for-byte as sent.
        self.pusher.trigger(c, "my-event", {"message": "h\u00e9llo", "n": [1, 2]})
        frame = r.next()
        self.assertEqual(frame["data"], json.dumps({"message": "h\u00e9llo", "n": [1, 2]}, ensure_ascii=False))

    def test_subscription_count_frames(self):
        a, b = self.raw(), self.raw()
        c = uniq("counted-")
        a.subscribed(c)
        f = a.event("pusher_internal:subscription_count", c)
        self.assertIsInstance(f["data"], str)
        self.assertEqual(json.loads(f["data"]), {"subscription_count": 1})
        b.subscribed(c)
        f = a.event("pusher_internal:subscription_count", c)
        self.assertEqual(json.loads(f["data"]), {"subscription_count": 2})
        b.send("pusher:unsubscribe", {"channel": c})
        f = a.event("pusher_internal:subscription_count", c)
        self.assertEqual(json.loads(f["data"]), {"subscription_count": 1})

    def test_subscribing_twice_answers_succeeded_again(self):
        r = self.raw()
        c = uniq("twice-")
        r.subscribed(c)
        r.subscribed(c)
        self.pusher.trigger(c, "once", "x")
        self.assertEqual(r.event("once", c)["data"], "x")
        r.nothing(pred=lambda f: f.get("event") == "once")

    def test_unsubscribe_stops_delivery(self):
        r = self.raw()
        c = uniq("unsub-")
        r.subscribed(c)
        r.send("pusher:unsubscribe", {"channel": c})
        time.sleep(0.2)
        self.pusher.trigger(c, "late", "x")
        r.nothing(pred=lambda f: f.get("channel") == c)

    def test_invalid_channel_names(self):
        r = self.raw()
        for bad in ("has space", "slash/channel", "x" * 201):
            with self.subTest(channel=bad[:20]):
                r.subscribe(bad)
                f = r.until(lambda f: f.get("channel") == bad, what="answer for %r" % bad[:20])
                self.assertEqual(f["event"], "pusher:subscription_error", f)
                data = json.loads(f["data"])
                self.assertEqual(set(data), {"type", "error", "status"})
                self.assertEqual(data["type"], "InvalidChannel")
                self.assertEqual(data["status"], 400)
        # 200 characters is fine; the connection is still open.
        r.subscribed("x" * 200)

    def test_private_channel(self):
        r = self.raw()
        c = uniq("private-")
        frame = self.private(r, c)
        self.assertEqual(frame, {"event": "pusher_internal:subscription_succeeded", "channel": c, "data": "{}"})
        self.pusher.trigger(c, "secret", {"k": "v"})
        self.assertEqual(json.loads(r.event("secret", c)["data"]), {"k": "v"})

    def test_private_channel_auth_failures(self):
        r = self.raw()
        good_sig = self.pusher.authenticate(channel="private-x", socket_id=r.socket_id)["auth"].split(":", 1)[1]
        other_socket = self.pusher.authenticate(channel="private-x", socket_id="1234.5678")["auth"]
        cases = {
            "missing auth": None,
            "empty auth": "",
            "wrong signature": KEY + ":" + "0" * 64,
            "wrong key": "other-key:" + good_sig,
            "no colon": good_sig,
            "other socket_id": other_socket,
        }
        for label, auth in cases.items():
            with self.subTest(case=label):
                # The signature is for private-x, so use that name (unique enough per socket).
                r.subscribe("private-x", auth=auth)
                f = r.until(lambda f: f.get("channel") == "private-x", what=label)
                self.assertEqual(f["event"], "pusher:subscription_error", f)
                self.assertIsInstance(f["data"], str, "subscription_error data must be a JSON string")
                data = json.loads(f["data"])
                self.assertEqual(set(data), {"type", "error", "status"}, data)
                self.assertEqual(data["type"], "AuthError")
                self.assertIn(data["status"], (401, 403))
        # Still open, and not subscribed.
        self.pusher.trigger("private-x", "leak", "x")
        r.nothing(pred=lambda f: f.get("event") == "leak")
        r.send("pusher:ping", {})
        self.assertEqual(r.next()["event"], "pusher:pong")

    def test_encrypted_channel_relays_ciphertext(self):
        r = self.raw()
        c = uniq("private-encrypted-")
        auth = self.pusher.authenticate(channel=c, socket_id=r.socket_id)
        self.assertIn("shared_secret", auth)
        r.subscribed(c, auth=auth["auth"])
        self.pusher.trigger(c, "enc", {"secret": "plaintext"})
        frame = r.event("enc", c)
        payload = json.loads(frame["data"])
        self.assertEqual(set(payload), {"nonce", "ciphertext"})
        box = nacl.secret.SecretBox(base64.b64decode(auth["shared_secret"]))
        plain = box.decrypt(base64.b64decode(payload["ciphertext"]), base64.b64decode(payload["nonce"]))
        self.assertEqual(json.loads(plain), {"secret": "plaintext"})

    def test_client_events_refused_on_encrypted_channel(self):
        a, b = self.raw(), self.raw()
        c = uniq("private-encrypted-")
        for r in (a, b):
            r.subscribed(c, auth=self.pusher.authenticate(channel=c, socket_id=r.socket_id)["auth"])
        a.send("client-x", {"a": 1}, channel=c)
        b.nothing(pred=lambda f: f.get("event") == "client-x")

    def test_socket_id_exclusion(self):
        a, b = self.raw(), self.raw()
        c = uniq("exclude-")
        a.subscribed(c)
        b.subscribed(c)
        self.pusher.trigger(c, "ev", "x", socket_id=a.socket_id)
        self.assertEqual(b.event("ev", c)["data"], "x")
        a.nothing(pred=lambda f: f.get("event") == "ev")

    def test_multi_channel_and_batch(self):
        r = self.raw()
        chans = [uniq("m-") for _ in range(3)]
        for c in chans:
            r.subscribed(c)
        self.assertEqual(self.pusher.trigger(chans, "fan", "out"), {})
        got = sorted(r.event("fan")["channel"] for _ in chans)
        self.assertEqual(got, sorted(chans))
        r.nothing(pred=lambda f: f.get("event") == "fan")
        batch = [{"channel": chans[i % 3], "name": "b%d" % i, "data": {"i": i}} for i in range(10)]
        self.assertEqual(self.pusher.trigger_batch(batch), {})
        for i in range(10):
            f = r.next()
            self.assertEqual(f["event"], "b%d" % i)
            self.assertEqual(f["channel"], chans[i % 3])
            self.assertEqual(json.loads(f["data"]), {"i": i})


class CacheTests(VaskTestCase):
    def test_cache_hit_after_trigger(self):
        for prefix in ("cache-", "private-cache-", "presence-cache-", "private-encrypted-cache-"):
            with self.subTest(prefix=prefix):
                c = uniq(prefix)
                self.pusher.trigger(c, "cached", "v1")
                self.pusher.trigger(c, "cached", "v2")
                if API_PORT != PORT:
                    # Cluster mode: the subscriber's node learns the last
                    # event over the bus, a few milliseconds after the
                    # trigger returned on the other node.
                    time.sleep(0.2)
                r = self.raw()
                if prefix == "presence-cache-":
                    ok = self.presence(r, c, "cache-user")
                elif prefix.startswith("private-"):
                    ok = self.private(r, c)
                else:
                    ok = r.subscribed(c)
                self.assertEqual(ok["event"], "pusher_internal:subscription_succeeded")
                frame = r.next()
                if prefix == "private-encrypted-cache-":
                    self.assertEqual(frame["event"], "cached")
                    self.assertEqual(set(json.loads(frame["data"])), {"nonce", "ciphertext"})
                else:
                    self.assertEqual(frame, {"event": "cached", "channel": c, "data": "v2"})
                r.nothing(pred=lambda f: f.get("event") == "pusher:cache_miss")

    def test_cache_miss(self):
        r = self.raw()
        c = uniq("cache-")
        r.subscribed(c)
        # Part A: every non-error frame carries data as a string, "{}" when empty.
        self.assertEqual(r.next(), {"event": "pusher:cache_miss", "channel": c, "data": "{}"})

    def test_client_events_are_not_cached(self):
        a = self.raw()
        c = uniq("private-cache-")
        self.private(a, c)
        self.assertEqual(a.next()["event"], "pusher:cache_miss")
        a.send("client-whisper", {"x": 1}, channel=c)
        time.sleep(0.2)
        b = self.raw()
        self.private(b, c)
        self.assertEqual(b.next()["event"], "pusher:cache_miss")

    def test_channel_info_cache(self):
        c = uniq("cache-")
        self.pusher.trigger(c, "cached", "payload")
        r = self.raw()
        r.subscribed(c)
        settles(lambda: self.pusher.channel_info(c)["occupied"], True)
        info = self.pusher.channel_info(c, ["cache"])
        self.assertTrue(info["occupied"])
        self.assertEqual(info["cache"]["data"], "payload")
        self.assertIsInstance(info["cache"]["ttl"], int)
        self.assertTrue(0 < info["cache"]["ttl"] <= 1800, info)


class PresenceTests(VaskTestCase):
    def test_presence_membership_frames(self):
        c = uniq("presence-")
        a, b = self.raw(), self.raw()
        ok = self.presence(a, c, "1", {"name": "A"})
        self.assertIsInstance(ok["data"], str)
        self.assertEqual(
            json.loads(ok["data"]),
            {"presence": {"ids": ["1"], "hash": {"1": {"name": "A"}}, "count": 1}},
        )
        # A numeric user_id is stored and sent as a string.
        ok = self.presence(b, c, 2, {"name": "B"})
        data = json.loads(ok["data"])["presence"]
        self.assertEqual(sorted(data["ids"]), ["1", "2"])
        self.assertEqual(data["hash"], {"1": {"name": "A"}, "2": {"name": "B"}})
        self.assertEqual(data["count"], 2)

        added = a.event("pusher_internal:member_added", c)
        self.assertEqual(set(added), {"event", "channel", "data"})
        self.assertEqual(json.loads(added["data"]), {"user_id": "2", "user_info": {"name": "B"}})

        users = settles(lambda: sorted(self.pusher.users_info(c)["users"], key=lambda u: u["id"]), [{"id": "1"}, {"id": "2"}])
        self.assertEqual(users, [{"id": "1"}, {"id": "2"}])
        expected = {"occupied": True, "user_count": 2}
        self.assertEqual(settles(lambda: self.pusher.channel_info(c, ["user_count"]), expected), expected)

        # Second connection of user "2": nobody hears about it.
        b2 = self.raw()
        ok = self.presence(b2, c, "2", {"name": "B"})
        self.assertEqual(json.loads(ok["data"])["presence"]["count"], 2)
        a.nothing(pred=lambda f: f.get("event", "").startswith("pusher_internal:member"))
        b2.close()
        a.nothing(pred=lambda f: f.get("event", "").startswith("pusher_internal:member"))

        b.send("pusher:unsubscribe", {"channel": c})
        removed = a.event("pusher_internal:member_removed", c)
        self.assertEqual(json.loads(removed["data"]), {"user_id": "2"})
        expected = {"users": [{"id": "1"}]}
        self.assertEqual(settles(lambda: self.pusher.users_info(c), expected), expected)

    def test_abrupt_disconnect_removes_member_and_vacates(self):
        c = uniq("presence-")
        a, b = self.raw(), self.raw()
        self.presence(a, c, "stay")
        self.presence(b, c, "drop")
        a.event("pusher_internal:member_added", c)
        # TCP goes away without a close frame.
        b.ws.socket.shutdown(socket.SHUT_RDWR)
        removed = a.event("pusher_internal:member_removed", c)
        self.assertEqual(json.loads(removed["data"]), {"user_id": "drop"})
        expected = {"users": [{"id": "stay"}]}
        self.assertEqual(settles(lambda: self.pusher.users_info(c), expected), expected)
        a.ws.socket.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 3
        while self.pusher.channel_info(c)["occupied"] and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.pusher.channel_info(c), {"occupied": False})
        self.assertEqual(self.pusher.channels_info(c), {"channels": {}})

    def test_presence_auth_failures(self):
        r = self.raw()
        c = uniq("presence-")
        auth = self.pusher.authenticate(channel=c, socket_id=r.socket_id, custom_data={"user_id": "1"})
        cases = {
            "tampered channel_data": (auth["auth"], json.dumps({"user_id": "2"})),
            "missing channel_data": (auth["auth"], None),
            "channel_data without user_id": (
                self.pusher.authenticate(channel=c, socket_id=r.socket_id, custom_data={"name": "x"})["auth"],
                json.dumps({"name": "x"}),
            ),
        }
        for label, (a, cd) in cases.items():
            with self.subTest(case=label):
                r.subscribe(c, auth=a, channel_data=cd)
                f = r.until(lambda f: f.get("channel") == c, what=label)
                self.assertEqual(f["event"], "pusher:subscription_error", f)
                self.assertIn(json.loads(f["data"])["type"], ("AuthError", "InvalidChannel"))

    def test_presence_user_info_limit(self):
        r = self.raw()
        c = uniq("presence-")
        big = {"blob": "z" * 3000}
        auth = self.pusher.authenticate(channel=c, socket_id=r.socket_id, custom_data={"user_id": "1", "user_info": big})
        r.subscribe(c, auth=auth["auth"], channel_data=auth["channel_data"])
        f = r.until(lambda f: f.get("channel") == c)
        self.assertEqual(f["event"], "pusher:subscription_error", f)
        data = json.loads(f["data"])
        self.assertEqual(data["type"], "LimitReached")

    def test_channels_info_presence_filter(self):
        prefix = "presence-pf%s-" % RUN
        r1, r2 = self.raw(), self.raw()
        self.presence(r1, prefix + "a", "u1")
        self.presence(r2, prefix + "a", "u2")
        self.presence(r2, prefix + "b", "u2")
        expected = {"channels": {prefix + "a": {"user_count": 2}, prefix + "b": {"user_count": 1}}}
        self.assertEqual(settles(lambda: self.pusher.channels_info(prefix, ["user_count"]), expected), expected)
        self.assertEqual(self.pusher.channels_info(prefix), {"channels": {prefix + "a": {}, prefix + "b": {}}})


class ClientEventTests(VaskTestCase):
    def test_private_client_event(self):
        c = uniq("private-")
        a, b = self.raw(), self.raw()
        self.private(a, c)
        self.private(b, c)
        a.send("client-typing", {"typing": True}, channel=c)
        f = b.event("client-typing", c)
        self.assertNotIn("user_id", f)
        self.assertIsInstance(f["data"], str, "client event data must be re-encoded as a string")
        self.assertEqual(json.loads(f["data"]), {"typing": True})
        a.nothing(pred=lambda f: f.get("event") == "client-typing")

    def test_presence_client_event_has_user_id(self):
        c = uniq("presence-")
        a, b = self.raw(), self.raw()
        self.presence(a, c, "alice")
        self.presence(b, c, "bob")
        a.send("client-hi", {"text": "hello"}, channel=c)
        f = b.event("client-hi", c)
        self.assertEqual(f["user_id"], "alice")
        self.assertEqual(json.loads(f["data"]), {"text": "hello"})
        a.nothing(pred=lambda f: f.get("event") == "client-hi")

    def test_client_event_refusals_keep_the_connection(self):
        a, b = self.raw(), self.raw()
        pub = uniq("public-")
        priv = uniq("private-")
        a.subscribed(pub)
        b.subscribed(pub)
        self.private(b, priv)
        for label, channel in (("public channel", pub), ("not subscribed", priv)):
            with self.subTest(case=label):
                a.send("client-x", {"a": 1}, channel=channel)
                err = a.event("pusher:error")
                self.assertIsInstance(err["data"], dict)
                self.assertIsInstance(err["data"]["message"], str)
                b.nothing(pred=lambda f: f.get("event") == "client-x")
        a.send("pusher:ping", {})
        self.assertEqual(a.event("pusher:pong")["event"], "pusher:pong")

    def test_client_event_rate_limit_4301(self):
        c = uniq("private-")
        a, b = self.raw(), self.raw()
        self.private(a, c)
        self.private(b, c)
        for i in range(15):
            a.send("client-burst", {"i": i}, channel=c)
        err = a.event("pusher:error")
        self.assertEqual(err["data"]["code"], 4301)
        received = 0
        while True:
            try:
                f = b.until(lambda f: f.get("event") == "client-burst", timeout=0.7)
            except AssertionError:
                break
            received += 1
        self.assertLessEqual(received, 10)
        self.assertGreaterEqual(received, 1)
        a.send("pusher:ping", {})
        self.assertEqual(a.event("pusher:pong")["event"], "pusher:pong")


class UserTests(VaskTestCase):
    def test_signin_and_send_to_user(self):
        user = "u-" + RUN
        r = self.raw()
        auth, ok = self.signin(r, user, user_info={"name": "U"})
        self.assertIsInstance(ok["data"], str)
        self.assertEqual(json.loads(ok["data"]), {"user_data": auth["user_data"]})
        chan = "#server-to-user-" + user
        r.subscribed(chan, auth="")
        self.assertEqual(self.pusher.send_to_user(user, "note", {"n": 1}), {})
        f = r.event("note", chan)
        self.assertEqual(json.loads(f["data"]), {"n": 1})

    def test_server_to_user_channel_is_private_to_that_user(self):
        user = "v-" + RUN
        chan = "#server-to-user-" + user
        anon = self.raw()
        anon.subscribe(chan, auth="")
        f = anon.until(lambda f: f.get("channel") == chan)
        self.assertEqual(f["event"], "pusher:subscription_error", f)
        other = self.raw()
        self.signin(other, "w-" + RUN)
        other.subscribe(chan, auth="")
        f = other.until(lambda f: f.get("channel") == chan)
        self.assertEqual(f["event"], "pusher:subscription_error", f)

    def test_bad_signin(self):
        r = self.raw()
        for label, data in (
            ("bad signature", {"auth": KEY + ":" + "0" * 64, "user_data": json.dumps({"id": "x"})}),
            (
                "no id",
                {
                    "auth": "%s:%s" % (KEY, _sign("%s::user::%s" % (r.socket_id, json.dumps({"name": "x"})))),
                    "user_data": json.dumps({"name": "x"}),
                },
            ),
        ):
            with self.subTest(case=label):
                r.send("pusher:signin", data)
                err = r.event("pusher:error")
                self.assertEqual(err["data"]["code"], 4009)
        r.send("pusher:ping", {})
        self.assertEqual(r.event("pusher:pong")["event"], "pusher:pong")

    def test_watchlist_frames(self):
        a_id, b_id, c_id = "wa-" + RUN, "wb-" + RUN, "wc-" + RUN
        b = self.raw()
        self.signin(b, b_id)
        a = self.raw()
        self.signin(a, a_id, watchlist=[b_id, c_id])
        f = a.event("pusher_internal:watchlist_events")
        self.assertNotIn("channel", f)
        self.assertIsInstance(f["data"], str)
        events = json.loads(f["data"])["events"]
        online = [e for e in events if e["name"] == "online"]
        self.assertEqual(online, [{"name": "online", "user_ids": [b_id]}], events)
        for e in events:
            self.assertNotIn(c_id, e["user_ids"] if e["name"] == "online" else [])
        c = self.raw()
        self.signin(c, c_id)
        f = a.event("pusher_internal:watchlist_events")
        self.assertEqual(json.loads(f["data"]), {"events": [{"name": "online", "user_ids": [c_id]}]})
        b.close()
        f = a.event("pusher_internal:watchlist_events")
        self.assertEqual(json.loads(f["data"]), {"events": [{"name": "offline", "user_ids": [b_id]}]})

    def test_watchlist_over_100_is_4302(self):
        r = self.raw()
        auth = self.pusher.authenticate_user(r.socket_id, {"id": "wl-" + RUN, "watchlist": ["x%d" % i for i in range(101)]})
        r.send("pusher:signin", {"auth": auth["auth"], "user_data": auth["user_data"]})
        frames = [r.until(lambda f: f.get("event") in ("pusher:error", "pusher:signin_success")) for _ in range(2)]
        events = sorted(f["event"] for f in frames)
        self.assertEqual(events, ["pusher:error", "pusher:signin_success"], frames)
        err = [f for f in frames if f["event"] == "pusher:error"][0]
        self.assertEqual(err["data"]["code"], 4302)

    def test_signin_as_another_user_is_refused(self):
        first, second = "one-" + RUN, "two-" + RUN
        r = self.raw()
        self.signin(r, first)
        auth = self.pusher.authenticate_user(r.socket_id, {"id": second})
        r.send("pusher:signin", {"auth": auth["auth"], "user_data": auth["user_data"]})
        err = r.event("pusher:error")
        self.assertEqual(err["data"]["code"], 4009)
        # Still signed in as the first user.
        r.subscribed("#server-to-user-" + first, auth="")
        self.pusher.send_to_user(first, "still", "me")
        self.assertEqual(r.event("still")["data"], "me")

    def _terminate_request(self, user):
        # The signed request the SDK should send (with the /apps/{id} prefix).
        client = self.pusher._pusher_client
        req = Request(client, POST, "/apps/%s/users/%s/terminate_connections" % (APP_ID, user), {})
        return client.http.send_request(req)

    def test_terminate_user_connections(self):
        user = "t-" + RUN
        tab1, tab2 = self.raw(), self.raw()
        self.signin(tab1, user)
        self.signin(tab2, user)
        # Presence member with the same id, never signed in: must survive.
        bystander = self.raw()
        self.presence(bystander, uniq("presence-"), user)
        self.assertEqual(self._terminate_request(user), {})
        for tab in (tab1, tab2):
            frames, code = tab.closed()
            errors = [f for f in frames if f.get("event") == "pusher:error"]
            self.assertTrue(errors, frames)
            self.assertIsInstance(errors[-1]["data"], dict)
            self.assertEqual(errors[-1]["data"]["code"], 4009)
            self.assertEqual(code, 4009)
        bystander.send("pusher:ping", {})
        self.assertEqual(bystander.event("pusher:pong")["event"], "pusher:pong")

    def test_sdk_terminate_user_connections(self):
        # pusher-http-python 3.3.4 posts to /users/{id}/terminate_connections
        # without the /apps/{app_id} prefix; Vask names the app by auth_key.
        user = "s-" + RUN
        r, other = self.raw(), self.raw()
        self.signin(r, user)
        self.signin(other, "not-" + user)
        self.assertEqual(self.pusher.terminate_user_connections(user), {})
        frames, code = r.closed()
        self.assertEqual([f["data"]["code"] for f in frames if f.get("event") == "pusher:error"], [4009], frames)
        self.assertEqual(code, 4009)
        other.send("pusher:ping", {})
        self.assertEqual(other.event("pusher:pong")["event"], "pusher:pong")


class HttpApiTests(VaskTestCase):
    def test_trigger_response_bodies(self):
        c = uniq("resp-")
        self.assertEqual(self.pusher.trigger(c, "e", "x"), {})
        self.assertEqual(self.pusher.trigger_batch([{"channel": c, "name": "e", "data": "x"}]), {})

    def _signed_post(self, path, body):
        # pusher-http-python has no `info` parameter; send the documented body
        # through the SDK's own request signing.
        client = self.pusher._pusher_client
        return client.http.send_request(Request(client, POST, "/apps/%s%s" % (APP_ID, path), body))

    def test_trigger_and_batch_info(self):
        pres, pub = uniq("presence-"), uniq("info-")
        r = self.raw()
        self.presence(r, pres, "i1")
        r.subscribed(pub)
        settles(lambda: self.pusher.channel_info(pub)["occupied"], True)
        settles(lambda: self.pusher.channel_info(pres)["occupied"], True)
        res = self._signed_post("/events", {"name": "e", "data": "x", "channels": [pub], "info": "subscription_count"})
        self.assertEqual(res, {"channels": {pub: {"subscription_count": 1}}})
        res = self._signed_post("/events", {"name": "e", "data": "x", "channels": [pres], "info": "user_count"})
        self.assertEqual(res["channels"][pres]["user_count"], 1)
        res = self._signed_post(
            "/batch_events",
            {"batch": [
                {"name": "e", "data": "x", "channel": pres, "info": "user_count"},
                {"name": "e", "data": "x", "channel": pub},
                {"name": "e", "data": "x", "channel": pub, "info": "subscription_count"},
            ]},
        )
        self.assertEqual(res, {"batch": [{"user_count": 1}, {}, {"subscription_count": 1}]})

    def test_channel_info_unoccupied(self):
        self.assertEqual(self.pusher.channel_info(uniq("nobody-")), {"occupied": False})

    def test_channel_info_subscription_count(self):
        c = uniq("sc-")
        r1, r2 = self.raw(), self.raw()
        r1.subscribed(c)
        r2.subscribed(c)
        expected = {"occupied": True, "subscription_count": 2}
        self.assertEqual(settles(lambda: self.pusher.channel_info(c, ["subscription_count"]), expected), expected)
        listing = self.pusher.channels_info()
        self.assertIn(c, listing["channels"])

    def test_401_wrong_secret(self):
        with self.assertRaises(PusherBadAuth) as cm:
            sdk(secret="wrong").trigger(uniq("x-"), "e", "x")
        body = error_body(cm.exception)
        self.assertEqual(body["code"], 401)
        self.assertIsInstance(body["error"], str)
        with self.assertRaises(PusherBadAuth):
            sdk(secret="wrong").channels_info()

    def test_401_unknown_key(self):
        with self.assertRaises(PusherBadAuth) as cm:
            sdk(key="nobody").trigger(uniq("x-"), "e", "x")
        self.assertEqual(error_body(cm.exception)["code"], 401)

    def test_404_unknown_app(self):
        with self.assertRaises(PusherBadStatus) as cm:
            sdk(app_id="999").trigger(uniq("x-"), "e", "x")
        self.assertTrue(str(cm.exception).startswith("404: "), str(cm.exception))
        body = error_body(cm.exception)
        self.assertEqual(body["code"], 404)
        self.assertIsInstance(body["error"], str)

    def test_403_disabled_app(self):
        with self.assertRaises(PusherForbidden) as cm:
            sdk(DISABLED_ID, DISABLED_KEY, DISABLED_SECRET).trigger(uniq("x-"), "e", "x")
        self.assertEqual(error_body(cm.exception)["code"], 403)

    def test_413_event_data_over_64kb(self):
        # The SDK refuses big data itself; already_encoded skips its check.
        batch = [{"channel": uniq("big-"), "name": "e", "data": "x" * (70 * 1024)}]
        with self.assertRaises(PusherBadStatus) as cm:
            self.pusher.trigger_batch(batch, already_encoded=True)
        self.assertTrue(str(cm.exception).startswith("413: "), str(cm.exception))
        self.assertEqual(error_body(cm.exception)["code"], 413)

    def test_413_body_over_1mb(self):
        batch = [{"channel": uniq("huge-"), "name": "e", "data": "x" * (1100 * 1024)}]
        with self.assertRaises(PusherBadStatus) as cm:
            self.pusher.trigger_batch(batch, already_encoded=True)
        self.assertTrue(str(cm.exception).startswith("413"), str(cm.exception))

    def test_400_bad_requests(self):
        c = uniq("bad-")
        cases = {
            "batch of 11": lambda: self.pusher.trigger_batch(
                [{"channel": c, "name": "e", "data": "x"} for _ in range(11)]
            ),
            "pusher: event name": lambda: self.pusher.trigger(c, "pusher:forged", "x"),
            "users of a public channel": lambda: self.pusher.users_info(c),
            "user_count without presence filter": lambda: self.pusher.channels_info(None, ["user_count"]),
        }
        for label, call in cases.items():
            with self.subTest(case=label):
                with self.assertRaises(PusherBadRequest) as cm:
                    call()
                body = error_body(cm.exception)
                self.assertEqual(body["code"], 400)
                self.assertIsInstance(body["error"], str)


def _sign(text):
    import hashlib
    import hmac

    return hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()


if __name__ == "__main__":
    unittest.main()
