'use strict';
// examples/node (Express + the `pusher` npm package + pusher-js) against a real
// Vask, two users in two headless Chromium contexts.
const { describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('../lib/harness');

const NODE_DIR = path.join(h.EXAMPLES, 'node');

describe('Express + pusher (npm) + pusher-js on Vask', () => {
  const test = h.trackedTest();
  let vask; let server; let base; let browser;
  const users = { alice: { id: '1' }, bob: { id: '2' } };

  before(async () => {
    assert.ok(fs.existsSync(path.join(NODE_DIR, 'node_modules/express')), 'run npm ci in examples/node');
    vask = await h.startVask('node-vask');
    const port = await h.freePort();
    base = `http://127.0.0.1:${port}`;
    server = h.start('node-app', process.execPath, ['server.js'], { cwd: NODE_DIR, env: { ...h.pusherEnv(vask), PORT: String(port) } });
    await h.waitForHttp(`${base}/login`, { status: 200, proc: server });
    browser = await h.launchBrowser();
  });

  after(async () => {
    if (test.failed()) for (const u of Object.values(users)) if (u.rec) console.log(u.rec.dump());
    if (browser) await browser.close().catch(() => {});
    if (server) await server.stop();
    if (vask) await vask.stop();
  });

  async function logIn(username) {
    const u = users[username];
    u.context = await browser.newContext();
    u.page = await u.context.newPage();
    u.page.setDefaultTimeout(10000);
    u.rec = h.watchPage(u.page, username);
    u.auth = [];
    u.page.on('response', async (res) => {
      if (!/\/pusher\/(auth|user-auth)$/.test(res.url())) return;
      u.auth.push({ url: res.url(), headers: await res.request().allHeaders(), body: res.request().postData(), status: res.status() });
    });
    await u.page.goto(`${base}/`);
    assert.match(u.page.url(), /\/login$/);
    await Promise.all([u.page.waitForURL(`${base}/`), u.page.click(`#login-${username}`)]);
    return u;
  }

  test('both users connect to Vask, subscribe and sign in', async () => {
    for (const name of ['alice', 'bob']) {
      const u = await logIn(name);
      await h.waitText(u.page, '#connection-state', 'connected');
      assert.ok(u.rec.sockets.some((s) => s.url.startsWith(`ws://127.0.0.1:${vask.port}/app/${vask.key}?protocol=7`)),
        `no WebSocket to Vask: ${JSON.stringify(u.rec.sockets.map((s) => s.url))}`);
      await h.waitText(u.page, '#public-status', 'subscribed');
      await h.waitText(u.page, '#private-status', 'subscribed');
      await h.waitText(u.page, '#user-status', `signed in as ${u.id}`);
      const auth = u.auth.find((a) => a.url.endsWith('/pusher/auth') && a.body.includes(`private-user-${u.id}`));
      assert.ok(auth && auth.status === 200, `private channel auth: ${JSON.stringify(u.auth)}`);
      assert.equal(auth.headers['x-requested-by'], 'vask-example', 'pusher-js forwards channelAuthorization.headers');
      assert.ok(u.rec.frames.some((f) => f.dir === 'in' && f.payload.includes('pusher:signin_success')), 'pusher:signin_success received');
    }
  });

  test('presence shows both users', async () => {
    for (const name of ['alice', 'bob']) {
      await h.waitText(users[name].page, '#presence-status', 'subscribed');
      await h.waitMembers(users[name].page, '#members li', ['1', '2']);
    }
  });

  test('an event triggered by the Express route appears on both pages', async () => {
    await h.maybeInjectFault(vask);
    const text = `hello from bob ${Date.now()}`;
    await users.bob.page.fill('#message', text);
    await users.bob.page.click('#send');
    await h.waitText(users.bob.page, '#send-status', 'sent');
    for (const name of ['alice', 'bob']) await h.waitText(users[name].page, '#feed li', `Bob: ${text}`);
  });

  test('a private-channel event reaches only its user', async () => {
    const text = `private ${Date.now()}`;
    await users.alice.page.selectOption('#to', '2');
    await users.alice.page.fill('#message', text);
    await users.alice.page.click('#send');
    await h.waitText(users.bob.page, '#private li', `Alice: ${text}`);
    await h.assertNoText(users.alice.page, '#private li', text, 300);
  });

  test('sendToUser reaches the signed-in user only', async () => {
    const text = `notice ${Date.now()}`;
    await users.bob.page.selectOption('#to', '1');
    await users.bob.page.fill('#message', text);
    await users.bob.page.click('#notify');
    await h.waitText(users.alice.page, '#notices li', `Bob: ${text}`);
    await h.assertNoText(users.bob.page, '#notices li', text, 300);
  });

  test('presence: when alice leaves, bob sees only himself', async () => {
    await users.alice.context.close();
    await h.waitMembers(users.bob.page, '#members li', ['2']);
    assert.equal(await users.bob.page.textContent('#member-count'), '1');
  });

  test('the auth endpoints refuse anonymous users with 403', async () => {
    const body = new URLSearchParams({ socket_id: '123.456', channel_name: 'private-user-1' });
    for (const p of ['/pusher/auth', '/pusher/user-auth']) {
      const res = await fetch(`${base}${p}`, { method: 'POST', body, headers: { 'X-Requested-By': 'vask-example' } });
      assert.equal(res.status, 403, p);
      assert.deepEqual(await res.json(), { error: 'login required' });
    }
    // Logged in, but another user's private channel.
    const status = await users.bob.page.evaluate(() => new Promise((resolve) => {
      const c = window.pusher.subscribe('private-user-1');
      c.bind('pusher:subscription_error', (e) => resolve(e.status));
      c.bind('pusher:subscription_succeeded', () => resolve('succeeded'));
    }));
    assert.equal(status, 403);
  });

  test('Vask and the app stayed up', () => {
    h.assertRunning(vask.proc);
    h.assertRunning(server);
  });
});
