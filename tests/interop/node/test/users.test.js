'use strict';
// User authentication with pusher-js: signin, the automatic
// #server-to-user-<id> subscription, SDK sendToUser, and
// terminateUserConnections (4009, client stops reconnecting).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  Harness,
  uniq,
  subscribed,
  waitFor,
  waitForFrame,
  expectNone,
  recordErrors,
  errorCodes,
  reachesState,
  sleep,
  RUN,
} = require('../lib/helpers');

/** Signs a pusher-js client in and waits until its server-to-user channel is subscribed. */
async function signedIn(client, userId) {
  const success = waitForFrame(client, (m) => m.event === 'pusher:signin_success', 5000, 'pusher:signin_success');
  const userChannel = waitForFrame(
    client,
    (m) => m.event === 'pusher_internal:subscription_succeeded' && m.channel === `#server-to-user-${userId}`,
    5000,
    `subscription_succeeded for #server-to-user-${userId}`,
  );
  const errors = recordErrors(client);
  client.signin();
  const frame = await success.catch((e) => {
    throw new Error(`${e.message}; connection errors: ${JSON.stringify(errors)}`);
  });
  await userChannel;
  await client.user.signinDonePromise;
  assert.equal(client.user.user_data.id, userId);
  return frame;
}

describe('users', () => {
  const h = new Harness();
  before(() => h.start());
  after(() => h.stop());

  test('signin: pusher:signin_success echoes user_data', async () => {
    const user = `carol-${RUN}`;
    const client = await h.connected({ userId: user, name: 'Carol' });
    const frame = await signedIn(client, user);
    assert.equal(typeof frame.data.user_data, 'string');
    assert.deepEqual(JSON.parse(frame.data.user_data), { id: user, user_info: { name: 'Carol' } });
    assert.deepEqual(client.user.user_data, { id: user, user_info: { name: 'Carol' } });
  });

  test('sendToUser reaches every signed-in connection of that user only', async () => {
    const user = `dan-${RUN}`;
    const other = `erin-${RUN}`;
    const tab1 = await h.connected({ userId: user });
    const tab2 = await h.connected({ userId: user });
    const stranger = await h.connected({ userId: other });
    await signedIn(tab1, user);
    await signedIn(tab2, user);
    await signedIn(stranger, other);
    const got1 = waitFor(tab1.user, 'note');
    const got2 = waitFor(tab2.user, 'note');
    const none = expectNone(stranger.user, 'note', 800);
    const res = await h.sdk.sendToUser(user, 'note', { text: 'for you' });
    assert.equal(res.status, 200);
    assert.deepEqual(await got1, { text: 'for you' });
    assert.deepEqual(await got2, { text: 'for you' });
    await none;
  });

  test('terminateUserConnections closes only that user\'s signed-in connections with 4009', async () => {
    const user = `frank-${RUN}`;
    const tab1 = await h.connected({ userId: user });
    const tab2 = await h.connected({ userId: user });
    // Same user id, but only as a presence member: not signed in, must survive.
    const presenceOnly = await h.connected({ userId: user });
    await subscribed(presenceOnly, uniq('presence-term-'));
    const other = await h.connected({ userId: `gina-${RUN}` });
    await signedIn(tab1, user);
    await signedIn(tab2, user);
    await signedIn(other, `gina-${RUN}`);

    const errors1 = recordErrors(tab1);
    const errors2 = recordErrors(tab2);
    const frame1 = waitForFrame(tab1, (m) => m.event === 'pusher:error', 5000, 'pusher:error on tab1');
    const down1 = reachesState(tab1, 'disconnected');
    const down2 = reachesState(tab2, 'disconnected');
    const stays = [presenceOnly, other].map((c) =>
      expectNone(c.connection, 'state_change', 1500, (s) => s.current !== 'connected'),
    );

    const res = await h.sdk.terminateUserConnections(user);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});

    const frame = await frame1;
    assert.equal(frame.data.code, 4009, JSON.stringify(frame));
    assert.equal(typeof frame.data.message, 'string');
    await down1;
    await down2;
    assert.ok(errorCodes(errors1).includes(4009), JSON.stringify(errors1));
    assert.ok(errorCodes(errors2).includes(4009), JSON.stringify(errors2));
    await Promise.all(stays);
    assert.equal(presenceOnly.connection.state, 'connected');
    assert.equal(other.connection.state, 'connected');

    // pusher-js treats 4009 as "refused": it must not come back on its own.
    await sleep(1200);
    assert.equal(tab1.connection.state, 'disconnected');
    assert.equal(tab2.connection.state, 'disconnected');
  });

  test('a bad signin signature gets pusher:error 4009 and no signin_success', async () => {
    const client = await h.connected({
      userId: 'mallory',
      options: {
        userAuthentication: {
          customHandler: (params, cb) =>
            cb(null, { auth: `interop-key:${'0'.repeat(64)}`, user_data: JSON.stringify({ id: 'mallory' }) }),
        },
      },
    });
    const noSuccess = expectNone(client.connection, 'message', 1000, (m) => m.event === 'pusher:signin_success');
    const err = waitForFrame(client, (m) => m.event === 'pusher:error', 5000, 'pusher:error for bad signin');
    client.signin();
    const frame = await err;
    assert.equal(frame.data.code, 4009, JSON.stringify(frame));
    await noSuccess;
    // Without a sign-in timeout the connection stays open, unauthenticated.
    assert.equal(client.connection.state, 'connected');
  });

  test('watchlist: online and offline events reach pusher.user.watchlist', async () => {
    const watcherId = `wa-${RUN}`;
    const watchedId = `wb-${RUN}`;
    const lateId = `wc-${RUN}`;
    const watcher = await h.connected({ userId: watcherId, watchlist: [watchedId, lateId] });
    const watched = await h.connected({ userId: watchedId });
    await signedIn(watched, watchedId);

    // Already online when the watcher signs in: reported right after signin.
    const initial = waitFor(watcher.user.watchlist, 'online', 5000, {
      filter: (e) => e.user_ids.includes(watchedId),
    });
    await signedIn(watcher, watcherId);
    const first = await initial;
    assert.equal(first.name, 'online');
    assert.ok(!first.user_ids.includes(lateId), JSON.stringify(first));

    // Comes online later.
    const late = await h.connected({ userId: lateId });
    const online = waitFor(watcher.user.watchlist, 'online', 5000, { filter: (e) => e.user_ids.includes(lateId) });
    await signedIn(late, lateId);
    assert.deepEqual(await online, { name: 'online', user_ids: [lateId] });

    // Last connection goes away.
    const offline = waitFor(watcher.user.watchlist, 'offline', 5000, {
      filter: (e) => e.user_ids.includes(watchedId),
    });
    watched.disconnect();
    assert.deepEqual(await offline, { name: 'offline', user_ids: [watchedId] });
  });
});
