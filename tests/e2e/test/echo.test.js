'use strict';
// examples/echo (Laravel Echo, pusher broadcaster, pusher-js; a Node stand-in for
// the Laravel backend using the `pusher` npm package) against a real Vask.
const { describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('../lib/harness');

const ECHO_DIR = path.join(h.EXAMPLES, 'echo');

describe('Laravel Echo (pusher broadcaster) on Vask', () => {
  const test = h.trackedTest();
  let vask; let server; let base; let browser;
  const users = { alice: { id: '1' }, bob: { id: '2' } };

  before(async () => {
    assert.ok(fs.existsSync(path.join(ECHO_DIR, 'node_modules/laravel-echo')), 'run npm ci in examples/echo');
    vask = await h.startVask('echo-vask');
    const port = await h.freePort();
    base = `http://127.0.0.1:${port}`;
    server = h.start('echo-app', process.execPath, ['server.js'], { cwd: ECHO_DIR, env: { ...h.pusherEnv(vask), PORT: String(port) } });
    await h.waitForHttp(`${base}/login`, { status: 200, proc: server });
    browser = await h.launchBrowser();
  });

  after(async () => {
    if (test.failed()) for (const u of Object.values(users)) if (u.rec) console.log(u.rec.dump());
    if (browser) await browser.close().catch(() => {});
    if (server) await server.stop();
    if (vask) await vask.stop();
  });

  async function open(username) {
    const u = users[username];
    u.context = await browser.newContext();
    u.page = await u.context.newPage();
    u.page.setDefaultTimeout(10000);
    u.rec = h.watchPage(u.page, username);
    u.auth = [];
    u.page.on('response', async (res) => {
      if (!res.url().endsWith('/broadcasting/auth')) return;
      u.auth.push({ headers: await res.request().allHeaders(), body: res.request().postData(), status: res.status() });
    });
    await u.page.goto(`${base}/login`);
    await Promise.all([u.page.waitForURL(`${base}/`), u.page.click(`#login-${username}`)]);
    await h.waitText(u.page, '#connection-state', 'connected');
    return u;
  }

  test('alice opens the page: Echo connects to Vask, subscribes, and here() lists her', async () => {
    const u = await open('alice');
    assert.ok(u.rec.sockets.some((s) => s.url.startsWith(`ws://127.0.0.1:${vask.port}/app/${vask.key}?protocol=7`)),
      `no WebSocket to Vask: ${JSON.stringify(u.rec.sockets.map((s) => s.url))}`);
    for (const s of ['#orders-status', '#chat-status', '#notifications-status']) await h.waitText(u.page, s, 'subscribed');
    await h.waitText(u.page, '#room-status', 'joined');
    await h.waitText(u.page, '#room-log li', 'here: Alice');
    await h.waitMembers(u.page, '#members li', ['1']);
    const csrf = await u.page.getAttribute('meta[name="csrf-token"]', 'content');
    const chatAuth = u.auth.find((a) => a.body.includes('channel_name=private-chat'));
    assert.ok(chatAuth && chatAuth.status === 200, `auth for private-chat: ${JSON.stringify(u.auth)}`);
    assert.equal(chatAuth.headers['x-csrf-token'], csrf, 'Echo forwards the csrf-token meta as X-CSRF-TOKEN');
  });

  test('join(): bob joining fires joining() on alice; here() on bob lists both', async () => {
    const bob = await open('bob');
    await h.waitText(bob.page, '#room-status', 'joined');
    await h.waitMembers(bob.page, '#members li', ['1', '2']);
    const here = await bob.page.textContent('#room-log li:first-child');
    assert.match(here, /^here: (Alice, Bob|Bob, Alice)$/);
    await h.waitText(users.alice.page, '#room-log li', 'joining: Bob');
    await h.waitMembers(users.alice.page, '#members li', ['1', '2']);
    await h.waitText(bob.page, '#chat-status', 'subscribed');
  });

  test('channel().listen(): a namespaced App\\Events\\OrderShipped event reaches both pages', async () => {
    await h.maybeInjectFault(vask);
    await users.alice.page.fill('#order-id', '42');
    await users.alice.page.click('#ship');
    for (const name of ['alice', 'bob']) await h.waitText(users[name].page, '#orders li', 'order 42 shipped by Alice');
    const frame = users.bob.rec.frames.find((f) => f.dir === 'in' && f.payload.includes('OrderShipped'));
    assert.equal(JSON.parse(frame.payload).event, 'App\\Events\\OrderShipped');
  });

  test("listen('.announcement'): a raw event name (broadcastAs)", async () => {
    await users.bob.page.click('#announce');
    for (const name of ['alice', 'bob']) await h.waitText(users[name].page, '#announcements li', 'announcement from Bob');
  });

  test('toOthers(): X-Socket-ID excludes the sender', async () => {
    await users.alice.page.fill('#order-id', '43');
    await users.alice.page.check('#to-others');
    await users.alice.page.click('#ship');
    await h.waitText(users.bob.page, '#orders li', 'order 43 shipped by Alice');
    await h.assertNoText(users.alice.page, '#orders li', 'order 43', 300);
  });

  test('private(): whisper() / listenForWhisper() between the two pages (client events)', async () => {
    await users.alice.page.click('#whisper');
    await h.waitText(users.bob.page, '#whispers li', 'Alice is typing');
    await users.bob.page.click('#whisper');
    await h.waitText(users.alice.page, '#whispers li', 'Bob is typing');
    // Client events are not echoed to their sender.
    await h.assertNoText(users.alice.page, '#whispers li', 'Alice is typing', 300);
    const sent = users.alice.rec.frames.find((f) => f.dir === 'out' && f.payload.includes('client-typing'));
    assert.deepEqual(JSON.parse(sent.payload), { event: 'client-typing', data: { name: 'Alice' }, channel: 'private-chat' });
  });

  test('notification(): a broadcast notification on App.Models.User.{id}', async () => {
    await users.bob.page.click('#notify-other');
    await h.waitText(users.alice.page, '#notifications li', 'Bob: hello from Bob (App\\Notifications\\Hello)');
    await h.assertNoText(users.bob.page, '#notifications li', 'hello from Bob', 200);
  });

  test('leaving(): closing bob fires leaving() on alice', async () => {
    await users.bob.context.close();
    await h.waitText(users.alice.page, '#room-log li', 'leaving: Bob');
    await h.waitMembers(users.alice.page, '#members li', ['1']);
  });

  test('the auth endpoint refuses anonymous users (403) and a missing CSRF token (419)', async () => {
    const body = new URLSearchParams({ socket_id: '123.456', channel_name: 'private-chat' });
    const anon = await fetch(`${base}/broadcasting/auth`, { method: 'POST', body });
    assert.equal(anon.status, 403);
    const status = await users.alice.page.evaluate(async (b) => (await fetch('/broadcasting/auth', { method: 'POST', body: new URLSearchParams(b) })).status, Object.fromEntries(body));
    assert.equal(status, 419);
  });

  test('Vask and the app stayed up', () => {
    h.assertRunning(vask.proc);
    h.assertRunning(server);
  });
});
