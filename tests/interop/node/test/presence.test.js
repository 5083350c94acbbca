'use strict';
// Presence channels with pusher-js: members snapshot, member_added only on a
// user's first connection ("two tabs"), member_removed only on the last, and
// client events (private: not echoed; presence: user_id in metadata).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  Harness,
  uniq,
  subscribed,
  waitFor,
  expectNone,
  collect,
  recordErrors,
  reachesState,
  sleep,
  settled,
} = require('../lib/helpers');

function memberIds(channel) {
  const ids = [];
  channel.members.each((m) => ids.push(m.id));
  return ids.sort();
}

describe('presence', () => {
  const h = new Harness();
  before(() => h.start());
  after(() => h.stop());

  test('two tabs of one user: one member_added, member_removed only when the last tab leaves', async () => {
    const name = uniq('presence-tabs-');
    const bob = await h.connected({ userId: 'bob', name: 'Bob' });
    const bobCh = await subscribed(bob, name);
    assert.equal(bobCh.members.count, 1);
    assert.deepEqual(bobCh.members.me, { id: 'bob', info: { name: 'Bob' } });

    // First tab of alice: bob sees member_added.
    const tab1 = await h.connected({ userId: 'alice', name: 'Alice' });
    const added = waitFor(bobCh, 'pusher:member_added');
    const tab1Ch = await subscribed(tab1, name);
    assert.deepEqual(await added, { id: 'alice', info: { name: 'Alice' } });
    assert.equal(tab1Ch.members.count, 2);
    assert.deepEqual(memberIds(tab1Ch), ['alice', 'bob']);
    assert.deepEqual(tab1Ch.members.me, { id: 'alice', info: { name: 'Alice' } });

    // Second tab of alice: no member_added for bob or tab1; count stays 2.
    const addsBob = collect(bobCh, 'pusher:member_added');
    const addsTab1 = collect(tab1Ch, 'pusher:member_added');
    const tab2 = await h.connected({ userId: 'alice', name: 'Alice' });
    const tab2Ch = await subscribed(tab2, name);
    assert.equal(tab2Ch.members.count, 2);
    assert.deepEqual(memberIds(tab2Ch), ['alice', 'bob']);
    await sleep(600);
    assert.deepEqual(addsBob.stop(), [], 'bob got member_added for a second tab');
    assert.deepEqual(addsTab1.stop(), [], 'tab1 got member_added for its own second tab');
    assert.equal(bobCh.members.count, 2);

    // The HTTP API counts users, not connections.
    const users = await (await h.sdk.get({ path: `/channels/${name}/users` })).json();
    assert.deepEqual(
      users.users.map((u) => u.id).sort(),
      ['alice', 'bob'],
    );
    const info = await (await h.sdk.get({ path: `/channels/${name}`, params: { info: 'user_count' } })).json();
    assert.deepEqual(info, { occupied: true, user_count: 2 });

    // Tab 1 closes (disconnect): alice still has tab 2, so no member_removed.
    const noRemove = expectNone(bobCh, 'pusher:member_removed', 800);
    tab1.disconnect();
    await noRemove;
    assert.equal(bobCh.members.count, 2);

    // Tab 2 leaves (unsubscribe): last connection of alice, member_removed.
    const removed = waitFor(bobCh, 'pusher:member_removed');
    tab2.unsubscribe(name);
    assert.deepEqual(await removed, { id: 'alice', info: { name: 'Alice' } });
    assert.equal(bobCh.members.count, 1);

    // Through another node in cluster mode: fresh within a second.
    const after = await settled(
      async () => (await h.sdk.get({ path: `/channels/${name}/users` })).json(),
      { users: [{ id: 'bob' }] },
      1000,
    );
    assert.deepEqual(after, { users: [{ id: 'bob' }] });
  });

  test('member_removed when the only connection of a user disconnects', async () => {
    const name = uniq('presence-drop-');
    const watcher = await h.connected({ userId: 'w' });
    const watcherCh = await subscribed(watcher, name);
    const leaver = await h.connected({ userId: 'leaver' });
    const added = waitFor(watcherCh, 'pusher:member_added');
    await subscribed(leaver, name);
    await added;
    const removed = waitFor(watcherCh, 'pusher:member_removed');
    leaver.disconnect();
    assert.equal((await removed).id, 'leaver');
  });

  test('client events on a private channel reach others and are not echoed', async () => {
    const name = uniq('private-chat-');
    const a = await h.connected({ userId: 'a' });
    const b = await h.connected({ userId: 'b' });
    const chA = await subscribed(a, name);
    const chB = await subscribed(b, name);
    const echo = expectNone(chA, 'client-typing', 800);
    const got = waitFor(chB, 'client-typing', 5000, { full: true });
    assert.equal(chA.trigger('client-typing', { typing: true, who: 'a' }), true);
    const { data } = await got;
    assert.deepEqual(data, { typing: true, who: 'a' });
    await echo;
  });

  test('client events on a presence channel carry the sender user_id', async () => {
    const name = uniq('presence-chat-');
    const alice = await h.connected({ userId: 'alice' });
    const bob = await h.connected({ userId: 'bob' });
    const chAlice = await subscribed(alice, name);
    const chBob = await subscribed(bob, name);
    const echo = expectNone(chAlice, 'client-hello', 800);
    const got = waitFor(chBob, 'client-hello', 5000, { full: true });
    chAlice.trigger('client-hello', { text: 'hi bob' });
    const { data, metadata } = await got;
    assert.deepEqual(data, { text: 'hi bob' });
    assert.equal(metadata.user_id, 'alice');
    await echo;
  });

  test('client events on a public channel are refused with pusher:error, connection stays', async () => {
    const name = uniq('public-client-');
    const a = await h.connected();
    const b = await h.connected();
    const chA = await subscribed(a, name);
    const chB = await subscribed(b, name);
    const errors = recordErrors(a);
    const none = expectNone(chB, 'client-nope', 800);
    const err = waitFor(a.connection, 'error', 5000, { filter: (e) => e && e.type === 'PusherError' });
    chA.trigger('client-nope', { x: 1 });
    await none;
    const e = await err;
    assert.equal(typeof e.data.message, 'string', JSON.stringify(errors));
    await sleep(200);
    assert.equal(a.connection.state, 'connected');
  });

  test('presence channel: user_info and members reach a late joiner', async () => {
    const name = uniq('presence-info-');
    const first = await h.connected({ userId: '42', name: 'Numeric Id' });
    await subscribed(first, name);
    const second = await h.connected({ userId: 'x' });
    const ch = await subscribed(second, name);
    assert.deepEqual(ch.members.get('42'), { id: '42', info: { name: 'Numeric Id' } });
    assert.equal(ch.members.count, 2);
    await reachesState(second, 'connected');
  });
});
