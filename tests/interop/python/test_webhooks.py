"""Webhooks from Vask, checked with pusher-http-python's validate_webhook,
as a Django webhook view would. Starts its own Vask (VASK_BIN, default
target/debug/vask-server) with a webhook pointing at a receiver here."""

import http.server
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import pusher
from websockets.sync.client import connect

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("VASK_BIN", os.path.join(HERE, "..", "..", "..", "target", "debug", "vask-server"))
APP_ID, KEY, SECRET = "8", "py-webhook-key", "py-webhook-secret"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Receiver(http.server.BaseHTTPRequestHandler):
    received = []
    cond = threading.Condition()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with Receiver.cond:
            Receiver.received.append((self.headers, body))
            Receiver.cond.notify_all()
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def wait_for(pred, timeout=5.0):
    deadline = time.time() + timeout
    with Receiver.cond:
        while True:
            for item in Receiver.received:
                if pred(item):
                    return item
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no matching webhook in time")
            Receiver.cond.wait(left)


def names(item):
    return [e["name"] for e in json.loads(item[1])["events"]]


class WebhookTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=cls.http.serve_forever, daemon=True).start()
        cls.port = free_port()
        cls.tmp = tempfile.TemporaryDirectory()
        config = os.path.join(cls.tmp.name, "vask.toml")
        with open(config, "w") as f:
            f.write(
                "[server.webhooks]\nbatch_ms = 50\nhold_ms = 200\n"
                f'[[apps]]\nid = "{APP_ID}"\nkey = "{KEY}"\nsecret = "{SECRET}"\n'
                f'[[apps.webhooks]]\nurl = "http://127.0.0.1:{cls.http.server_address[1]}/webhooks"\n'
            )
        cls.vask = subprocess.Popen([BIN, "--config", config, "--port", str(cls.port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{cls.port}/up", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("vask did not start")
        cls.sdk = pusher.Pusher(app_id=APP_ID, key=KEY, secret=SECRET, host="127.0.0.1", port=cls.port, ssl=False)

    @classmethod
    def tearDownClass(cls):
        cls.vask.terminate()
        cls.vask.wait(timeout=10)
        cls.http.shutdown()
        cls.tmp.cleanup()

    def test_validate_webhook_accepts_vask_webhooks(self):
        with connect(f"ws://127.0.0.1:{self.port}/app/{KEY}?protocol=7", open_timeout=5) as ws:
            json.loads(ws.recv(timeout=5))
            ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "py-hooks"}}))
            json.loads(ws.recv(timeout=5))
            occupied = wait_for(lambda i: "channel_occupied" in names(i))
        headers, body = occupied
        self.assertEqual(headers["X-Pusher-Key"], KEY)
        self.assertEqual(headers["Content-Type"], "application/json")
        parsed = self.sdk.validate_webhook(KEY, headers["X-Pusher-Signature"], body.decode())
        self.assertIsNotNone(parsed)
        self.assertIn({"name": "channel_occupied", "channel": "py-hooks"}, parsed["events"])
        vacated = wait_for(lambda i: "channel_vacated" in names(i))
        parsed = self.sdk.validate_webhook(KEY, vacated[0]["X-Pusher-Signature"], vacated[1].decode())
        self.assertIn({"name": "channel_vacated", "channel": "py-hooks"}, parsed["events"])

    def test_validate_webhook_refuses_tampering(self):
        headers, body = wait_for(lambda i: True, timeout=10)
        tampered = body.decode().replace("channel", "chanel")
        self.assertIsNone(self.sdk.validate_webhook(KEY, headers["X-Pusher-Signature"], tampered))
        self.assertIsNone(self.sdk.validate_webhook("other-key", headers["X-Pusher-Signature"], body.decode()))


if __name__ == "__main__":
    unittest.main()
