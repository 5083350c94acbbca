'use strict';
// Channel delivery with unmodified pusher-js + pusher-http-node: public,
// private, encrypted, cache, multi-channel, batch, socket_id exclusion,
// subscription_count.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  Harness,
  uniq,
  subscribed,
  waitFor,
  expectNone,
  waitForFrame,
  expectHttpError,
  connectedState,
  APP,
  settled,
} = require('../lib/helpers');

describe('channels', () => {
  const h = new Harness();
  before(() => h.start());
  after(() => h.stop());

  test('public channel: HTTP trigger reaches the subscriber', async () => {
    const client = await h.connected();
    const name = uniq('public-');
    const channel = await subscribed(client, name);
    const got = waitFor(channel, 'my-event');
    const res = await h.sdk.trigger(name, 'my-event', { message: 'hi' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    assert.deepEqual(await got, { message: 'hi' });
  });

  test('public channel: the wire frame double-encodes data', async () => {
    const client = await h.connected();
    const name = uniq('wire-');
    await subscribed(client, name);
    // pusher-js decodes `data`; check the raw text through the transport's socket.
    const raw = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no raw frame')), 5000);
      const socket = client.connection.connection.transport.socket;
      socket.on('message', (ev) => {
        const text = String(ev.data);
        if (text.includes('"wire-event"')) {
          clearTimeout(timer);
          resolve(text);
        }
      });
    });
    await h.sdk.trigger(name, 'wire-event', { message: 'hi' });
    const frame = JSON.parse(await raw);
    assert.deepEqual(frame, { event: 'wire-event', channel: name, data: '{"message":"hi"}' });
  });

  test('private channel: authorized subscribe and delivery', async () => {
    const client = await h.connected({ userId: 'p1' });
    const name = uniq('private-');
    const channel = await subscribed(client, name);
    const got = waitFor(channel, 'secret-event');
    await h.sdk.trigger(name, 'secret-event', { n: 1, s: 'two' });
    assert.deepEqual(await got, { n: 1, s: 'two' });
  });

  test('private channel: a bad signature gets pusher:subscription_error, connection stays', async () => {
    const client = await h.connected({
      options: {
        channelAuthorization: {
          customHandler: (_params, cb) => cb(null, { auth: `${APP.key}:${'0'.repeat(64)}` }),
        },
      },
    });
    const name = uniq('private-bad-');
    const channel = client.subscribe(name);
    const err = await waitFor(channel, 'pusher:subscription_error', 5000, { failOn: 'pusher:subscription_succeeded' });
    assert.equal(err.type, 'AuthError', JSON.stringify(err));
    assert.equal(typeof err.error, 'string', JSON.stringify(err));
    assert.ok([401, 403].includes(err.status), `status: ${JSON.stringify(err)}`);
    assert.equal(client.connection.state, 'connected');
    // Not subscribed: a trigger must not reach it.
    const none = expectNone(channel, 'secret-event', 600);
    await h.sdk.trigger(name, 'secret-event', { n: 1 });
    await none;
    assert.equal(client.connection.state, 'connected');
  });

  test('private channel: a signature for another socket_id is refused', async () => {
    const client = await h.connected({
      options: {
        channelAuthorization: {
          customHandler: (params, cb) => cb(null, h.sdk.authorizeChannel('1234.5678', params.channelName)),
        },
      },
    });
    const channel = client.subscribe(uniq('private-other-'));
    const err = await waitFor(channel, 'pusher:subscription_error', 5000, { failOn: 'pusher:subscription_succeeded' });
    assert.equal(err.type, 'AuthError', JSON.stringify(err));
  });

  test('private-encrypted channel: SDK encrypts, pusher-js decrypts the plaintext object', async () => {
    const client = await h.connected({ userId: 'e1' });
    const name = uniq('private-encrypted-');
    const channel = await subscribed(client, name);
    // The server relays ciphertext; capture the decoded frame to prove it.
    const frame = waitForFrame(client, (m) => m.event === 'enc-event' && m.channel === name);
    const got = waitFor(channel, 'enc-event');
    await h.sdk.trigger(name, 'enc-event', { secret: 'plaintext', n: 42 });
    assert.deepEqual(await got, { secret: 'plaintext', n: 42 });
    const seen = await frame;
    assert.equal(typeof seen.data.nonce, 'string');
    assert.equal(typeof seen.data.ciphertext, 'string');
    assert.ok(!JSON.stringify(seen).includes('plaintext'), 'ciphertext leaked plaintext');
  });

  test('private-encrypted channel: a trigger naming it among several channels is 400', async () => {
    // The SDK refuses this client-side; send it through the SDK's signed post.
    const enc = uniq('private-encrypted-');
    await expectHttpError(
      h.sdk.post({ path: '/events', body: { name: 'x', data: '{}', channels: [enc, uniq('public-')] } }),
      400,
    );
  });

  test('cache channel: a late subscriber gets the last HTTP event', async () => {
    const name = uniq('cache-');
    await h.sdk.trigger(name, 'cached-event', { version: 1 });
    await h.sdk.trigger(name, 'cached-event', { version: 2 });
    const client = await h.connected();
    const channel = client.subscribe(name);
    const miss = expectNone(channel, 'pusher:cache_miss', 1000);
    const got = waitFor(channel, 'cached-event');
    await waitFor(channel, 'pusher:subscription_succeeded');
    assert.deepEqual(await got, { version: 2 });
    await miss;
  });

  test('private-cache channel: a late subscriber gets the last HTTP event', async () => {
    const name = uniq('private-cache-');
    await h.sdk.trigger(name, 'cached-event', { v: 'p' });
    const client = await h.connected({ userId: 'c1' });
    const channel = client.subscribe(name);
    const got = waitFor(channel, 'cached-event');
    await waitFor(channel, 'pusher:subscription_succeeded', 5000, { failOn: 'pusher:subscription_error' });
    assert.deepEqual(await got, { v: 'p' });
  });

  test('cache channel: an empty cache sends pusher:cache_miss', async () => {
    const client = await h.connected();
    const name = uniq('cache-empty-');
    const channel = client.subscribe(name);
    const miss = waitFor(channel, 'pusher:cache_miss');
    await waitFor(channel, 'pusher:subscription_succeeded');
    await miss;
    // The frame carries the channel name.
    assert.equal(client.connection.state, 'connected');
  });

  test('multi-channel trigger reaches every channel once', async () => {
    const [a, b, c] = [uniq('multi-a-'), uniq('multi-b-'), uniq('multi-c-')];
    const one = await h.connected();
    const two = await h.connected();
    const chA = await subscribed(one, a);
    const chB = await subscribed(one, b);
    const chC = await subscribed(two, c);
    const counts = { a: 0, b: 0, c: 0 };
    chA.bind('fanout', () => counts.a++);
    chB.bind('fanout', () => counts.b++);
    chC.bind('fanout', () => counts.c++);
    const res = await h.sdk.trigger([a, b, c], 'fanout', { to: 'all' });
    assert.deepEqual(await res.json(), {});
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.deepEqual(counts, { a: 1, b: 1, c: 1 });
  });

  test('batch trigger delivers every event in order', async () => {
    const [a, b] = [uniq('batch-a-'), uniq('batch-b-')];
    const client = await h.connected();
    const chA = await subscribed(client, a);
    const chB = await subscribed(client, b);
    const gotA = waitFor(chA, 'first');
    const gotB = waitFor(chB, 'second');
    const gotA2 = waitFor(chA, 'third');
    const res = await h.sdk.triggerBatch([
      { channel: a, name: 'first', data: { i: 1 } },
      { channel: b, name: 'second', data: 'not json / plain text' },
      { channel: a, name: 'third', data: { i: 3, slash: 'a/b' } },
    ]);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    assert.deepEqual(await gotA, { i: 1 });
    assert.equal(await gotB, 'not json / plain text');
    assert.deepEqual(await gotA2, { i: 3, slash: 'a/b' });
  });

  test('batch of 11 events is 400', async () => {
    const name = uniq('batch-big-');
    const batch = Array.from({ length: 11 }, (_, i) => ({ channel: name, name: 'e', data: { i } }));
    await expectHttpError(h.sdk.triggerBatch(batch), 400);
  });

  test('socket_id exclusion skips the sender', async () => {
    const name = uniq('exclude-');
    const sender = await h.connected();
    const other = await h.connected();
    const chSender = await subscribed(sender, name);
    const chOther = await subscribed(other, name);
    const none = expectNone(chSender, 'excluded', 800);
    const got = waitFor(chOther, 'excluded');
    await h.sdk.trigger(name, 'excluded', { from: 'sender' }, { socket_id: sender.connection.socket_id });
    assert.deepEqual(await got, { from: 'sender' });
    await none;
  });

  test('pusher:subscription_count follows subscribe and unsubscribe', async () => {
    const name = uniq('count-');
    const first = await h.connected();
    const second = await h.connected();
    const ch1 = first.subscribe(name);
    const c1 = waitFor(ch1, 'pusher:subscription_count', 5000, { filter: (d) => d.subscription_count === 1 });
    await waitFor(ch1, 'pusher:subscription_succeeded');
    assert.deepEqual(await c1, { subscription_count: 1 });

    const toTwo = waitFor(ch1, 'pusher:subscription_count', 5000, { filter: (d) => d.subscription_count === 2 });
    const ch2 = second.subscribe(name);
    const c2 = waitFor(ch2, 'pusher:subscription_count', 5000, { filter: (d) => d.subscription_count === 2 });
    await toTwo;
    await c2;
    assert.equal(ch1.subscriptionCount, 2);

    const toOne = waitFor(ch1, 'pusher:subscription_count', 5000, { filter: (d) => d.subscription_count === 1 });
    second.unsubscribe(name);
    await toOne;
    assert.equal(ch1.subscriptionCount, 1);

    const expected = { occupied: true, subscription_count: 1 };
    const info = await settled(
      async () => (await h.sdk.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json(),
      expected,
    );
    assert.deepEqual(info, expected);
  });

  test('pusher-js activity ping is answered with pusher:pong', async () => {
    // A short client activityTimeout makes pusher-js ping after 400 ms idle and
    // give up (reconnect) if no pong comes within pongTimeout.
    const client = await h.connected({ options: { activityTimeout: 400, pongTimeout: 1500 } });
    const socketId = client.connection.socket_id;
    const pong = waitForFrame(client, (m) => m.event === 'pusher:pong', 5000, 'pusher:pong');
    await pong;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(client.connection.state, 'connected');
    assert.equal(client.connection.socket_id, socketId, 'pusher-js reconnected: pong missing or late');
  });

  test('pusher-js reconnects after a dropped socket and resubscribes', async () => {
    const name = uniq('private-resub-');
    const client = await h.connected({ userId: 'r1' });
    const channel = await subscribed(client, name);
    const firstId = client.connection.socket_id;
    const again = waitFor(channel, 'pusher:subscription_succeeded', 8000);
    // Drop the transport from the client side, as a network blip would.
    client.connection.connection.transport.socket.close();
    await again;
    assert.notEqual(client.connection.socket_id, firstId);
    const got = waitFor(channel, 'after-reconnect');
    await h.sdk.trigger(name, 'after-reconnect', { ok: true });
    assert.deepEqual(await got, { ok: true });
  });

  test('unsubscribe stops delivery', async () => {
    const name = uniq('unsub-');
    const client = await h.connected();
    const channel = await subscribed(client, name);
    client.unsubscribe(name);
    // pusher-js drops the channel object; watch the connection for any frame of it.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const none = expectNone(client.connection, 'message', 700, (m) => m.channel === name);
    await h.sdk.trigger(name, 'after-unsub', {});
    await none;
    assert.ok(channel);
    await connectedState(client);
  });
});
