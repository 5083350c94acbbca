'use strict';
// The HTTP API through pusher-http-node: channel queries and error paths
// (400/401/403/404/413 with Vask's JSON error body), plus app-level
// connection refusals seen by pusher-js (4001, 4003).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  Harness,
  HOST,
  API_PORT,
  settled,
  APP,
  DISABLED_APP,
  RUN,
  uniq,
  backend,
  subscribed,
  waitFor,
  expectHttpError,
  recordErrors,
  errorCodes,
} = require('../lib/helpers');

describe('http api', () => {
  const h = new Harness();
  before(() => h.start());
  after(() => h.stop());

  test('GET /up is 200', async () => {
    const res = await fetch(`http://${HOST}:${API_PORT}/up`);
    assert.equal(res.status, 200);
  });

  test('channel queries: /channels, /channels/{name}, /channels/{name}/users', async () => {
    const prefix = `presence-q${RUN}-`;
    const roomA = `${prefix}a`;
    const roomB = `${prefix}b`;
    const pub = uniq('query-pub-');
    const u1 = await h.connected({ userId: 'u1' });
    const u1b = await h.connected({ userId: 'u1' });
    const u2 = await h.connected({ userId: 'u2' });
    await subscribed(u1, roomA);
    await subscribed(u1b, roomA);
    await subscribed(u2, roomA);
    await subscribed(u2, roomB);
    await subscribed(u1, pub);
    await subscribed(u2, pub);

    const expected = { channels: { [roomA]: { user_count: 2 }, [roomB]: { user_count: 1 } } };
    const list = await settled(
      async () =>
        (await h.sdk.get({ path: '/channels', params: { filter_by_prefix: prefix, info: 'user_count' } })).json(),
      expected,
    );
    assert.deepEqual(list, expected);
    const pubExpected = { occupied: true, subscription_count: 2 };
    await settled(
      async () => (await h.sdk.get({ path: `/channels/${pub}`, params: { info: 'subscription_count' } })).json(),
      pubExpected,
    );

    const plain = await (await h.sdk.get({ path: '/channels', params: { filter_by_prefix: prefix } })).json();
    assert.deepEqual(plain, { channels: { [roomA]: {}, [roomB]: {} } });

    const all = await (await h.sdk.get({ path: '/channels' })).json();
    assert.ok(all.channels[pub], `public channel missing from ${JSON.stringify(all)}`);
    assert.ok(all.channels[roomA], `presence channel missing from ${JSON.stringify(all)}`);

    const pubInfo = await (
      await h.sdk.get({ path: `/channels/${pub}`, params: { info: 'subscription_count' } })
    ).json();
    assert.deepEqual(pubInfo, { occupied: true, subscription_count: 2 });

    const roomInfo = await (await h.sdk.get({ path: `/channels/${roomA}`, params: { info: 'user_count' } })).json();
    assert.deepEqual(roomInfo, { occupied: true, user_count: 2 });

    const users = await (await h.sdk.get({ path: `/channels/${roomA}/users` })).json();
    assert.deepEqual(
      users.users.slice().sort((x, y) => x.id.localeCompare(y.id)),
      [{ id: 'u1' }, { id: 'u2' }],
    );

    const empty = await (await h.sdk.get({ path: `/channels/${uniq('nobody-')}` })).json();
    assert.deepEqual(empty, { occupied: false });
  });

  test('channel queries: inapplicable attributes are 400', async () => {
    const pub = uniq('query-bad-');
    const client = await h.connected();
    await subscribed(client, pub);
    // user_count needs filter_by_prefix=presence-.
    await expectHttpError(h.sdk.get({ path: '/channels', params: { info: 'user_count' } }), 400);
    // users of a non-presence channel.
    await expectHttpError(h.sdk.get({ path: `/channels/${pub}/users` }), 400);
  });

  test('401: wrong secret', async () => {
    const wrong = backend({ secret: 'not-the-secret' });
    const body = await expectHttpError(wrong.trigger(uniq('x-'), 'e', {}), 401);
    assert.equal(body.code, 401);
    await expectHttpError(wrong.get({ path: '/channels' }), 401);
  });

  test('401: unknown auth_key', async () => {
    await expectHttpError(backend({ key: 'no-such-key' }).trigger(uniq('x-'), 'e', {}), 401);
  });

  test('404: unknown app id', async () => {
    await expectHttpError(backend({ appId: '999' }).trigger(uniq('x-'), 'e', {}), 404);
  });

  test('403: disabled app', async () => {
    const disabled = backend({ appId: DISABLED_APP.id, key: DISABLED_APP.key, secret: DISABLED_APP.secret });
    await expectHttpError(disabled.trigger(uniq('x-'), 'e', {}), 403);
  });

  test('413: event data over 64 KB', async () => {
    const big = 'x'.repeat(70 * 1024);
    await expectHttpError(h.sdk.trigger(uniq('big-'), 'big', big), 413);
  });

  test('event data just under 64 KB is delivered', async () => {
    const name = uniq('large-');
    const client = await h.connected();
    const channel = await subscribed(client, name);
    const payload = 'y'.repeat(60 * 1024);
    const got = waitFor(channel, 'large');
    await h.sdk.trigger(name, 'large', payload);
    assert.equal(await got, payload);
  });

  test('400: pusher:-prefixed event name', async () => {
    await expectHttpError(h.sdk.trigger(uniq('x-'), 'pusher:forged', {}), 400);
  });

  test('the app key works in place of the app id', async () => {
    const name = uniq('bykey-');
    const client = await h.connected();
    const channel = await subscribed(client, name);
    const got = waitFor(channel, 'via-key');
    const res = await backend({ appId: APP.key }).trigger(name, 'via-key', { ok: true });
    assert.equal(res.status, 200);
    assert.deepEqual(await got, { ok: true });
  });

  test('trigger with info=subscription_count returns the counts', async () => {
    const name = uniq('info-');
    const client = await h.connected();
    await subscribed(client, name);
    await settled(
      async () => (await h.sdk.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json(),
      { occupied: true, subscription_count: 1 },
    );
    const res = await h.sdk.trigger(name, 'e', {}, { info: 'subscription_count' });
    assert.deepEqual(await res.json(), { channels: { [name]: { subscription_count: 1 } } });
  });

  test('401: request timestamp more than 600 s off', async () => {
    const realNow = Date.now;
    Date.now = () => realNow() - 700 * 1000;
    let pending;
    try {
      // The SDK signs synchronously inside trigger(); restore the clock right after.
      pending = h.sdk.trigger(uniq('x-'), 'e', {});
    } finally {
      Date.now = realNow;
    }
    await expectHttpError(pending, 401);
  });

  test('channel names with every allowed punctuation character round-trip', async () => {
    const name = uniq('private-a_b-c=d@e,f.g;h-');
    const client = await h.connected({ userId: 'punct' });
    const channel = await subscribed(client, name);
    const got = waitFor(channel, 'punct');
    await h.sdk.trigger(name, 'punct', { ok: 1 });
    assert.deepEqual(await got, { ok: 1 });
    const expected = { occupied: true, subscription_count: 1 };
    const info = await settled(
      async () => (await h.sdk.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json(),
      expected,
    );
    assert.deepEqual(info, expected);
  });

  test('UTF-8 payloads arrive intact', async () => {
    const name = uniq('utf8-');
    const client = await h.connected();
    const channel = await subscribed(client, name);
    const payload = { text: 'h\u00e9llo \u4e16\u754c \ud83d\ude80', quote: '"\\' };
    const got = waitFor(channel, 'utf8');
    await h.sdk.trigger(name, 'utf8', payload);
    assert.deepEqual(await got, payload);
  });

  test('400: malformed trigger bodies', async () => {
    const c = uniq('bad-');
    const cases = {
      'more than 100 channels': { name: 'e', data: '{}', channels: Array.from({ length: 101 }, (_, i) => `${c}-${i}`) },
      'event name over 200 chars': { name: 'e'.repeat(201), data: '{}', channels: [c] },
      'missing name': { data: '{}', channels: [c] },
      'missing data': { name: 'e', channels: [c] },
      'no channels': { name: 'e', data: '{}' },
      'invalid channel name': { name: 'e', data: '{}', channels: ['has space'] },
    };
    for (const [label, body] of Object.entries(cases)) {
      await expectHttpError(h.sdk.post({ path: '/events', body }), 400).catch((e) => {
        throw new Error(`${label}: ${e.message}`);
      });
    }
  });

  test('a single `channel` field is accepted like `channels`', async () => {
    const name = uniq('single-');
    const client = await h.connected();
    const channel = await subscribed(client, name);
    const got = waitFor(channel, 'single');
    const res = await h.sdk.post({ path: '/events', body: { name: 'single', data: '"x"', channel: name } });
    assert.deepEqual(await res.json(), {});
    assert.equal(await got, 'x');
  });

  test('401: body_md5 that does not match the body', async () => {
    const path = `/apps/${APP.id}/events`;
    const signed = JSON.stringify({ name: 'e', data: '{}', channels: [uniq('md5-')] });
    const sent = JSON.stringify({ name: 'e', data: '{"tampered":1}', channels: [uniq('md5-')] });
    const qs = h.sdk.createSignedQueryString({ method: 'POST', path, body: signed });
    const res = await fetch(`http://${HOST}:${API_PORT}${path}?${qs}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: sent,
    });
    assert.equal(res.status, 401);
    const body = await res.json();
    assert.equal(body.code, 401);
    assert.equal(typeof body.error, 'string');
  });

  test('405: wrong method on /events, 404: unknown route', async () => {
    await expectHttpError(h.sdk.get({ path: '/events' }), 405);
    await expectHttpError(h.sdk.get({ path: '/no-such-route' }), 404);
  });

  test('a channel is unoccupied again once its last subscriber leaves', async () => {
    const name = uniq('vacate-');
    const client = await h.connected();
    await subscribed(client, name);
    // In cluster mode the SDK asks another node: the subscription reaches
    // it over the bus a moment later.
    let info = await settled(
      async () => (await h.sdk.get({ path: `/channels/${name}` })).json(),
      { occupied: true },
    );
    assert.deepEqual(info, { occupied: true });
    client.unsubscribe(name);
    let tries = 0;
    do {
      await new Promise((resolve) => setTimeout(resolve, 100));
      info = await (await h.sdk.get({ path: `/channels/${name}` })).json();
    } while (info.occupied && ++tries < 20);
    assert.deepEqual(info, { occupied: false });
    const list = await (await h.sdk.get({ path: '/channels', params: { filter_by_prefix: name } })).json();
    assert.deepEqual(list, { channels: {} });
  });

  test('pusher-js: disabled app key is refused with 4003', async () => {
    const client = h.client({ key: DISABLED_APP.key });
    const errors = recordErrors(client);
    await waitFor(client.connection, 'state_change', 5000, {
      filter: (s) => ['disconnected', 'failed', 'unavailable'].includes(s.current),
    });
    assert.ok(errorCodes(errors).includes(4003), JSON.stringify(errors));
    client.disconnect();
  });

  test('pusher-js: unknown app key is refused with 4001', async () => {
    const client = h.client({ key: 'no-such-app-key' });
    const errors = recordErrors(client);
    await waitFor(client.connection, 'state_change', 5000, {
      filter: (s) => ['disconnected', 'failed', 'unavailable'].includes(s.current),
    });
    assert.ok(errorCodes(errors).includes(4001), JSON.stringify(errors));
    client.disconnect();
  });
});
