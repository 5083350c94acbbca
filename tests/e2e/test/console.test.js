'use strict';
// The debug console (/console) in headless Chromium against a real Vask with
// an admin token: login, the live feed, the test-event form, presence, data
// shown as text, and nothing fetched from outside 127.0.0.1.
//
// CONSOLE_SCREENSHOT=path also puts the app page under some load (clients
// subscribing and publishing for CONSOLE_LOAD_SECS, default 150) and saves a
// screenshot there (docs/console.png is made so).
const { describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const h = require('../lib/harness');

const NODE_MODULES = path.join(h.EXAMPLES, 'node/node_modules');
const PUSHER_JS = path.join(NODE_MODULES, 'pusher-js/dist/web/pusher.min.js');
const TOKEN = 'console-e2e-token-0123456789';
const XSS = '<img src=x onerror=alert(1)>';
// Everything but 127.0.0.1 fails to resolve: the console must not need it.
const OFFLINE_ARGS = ['--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'];

describe('debug console', () => {
  const test = h.trackedTest();
  let vask; let browser; let base; let sdk; let clients;
  let admin; let client; let adminRec; let clientRec;
  const requests = []; // every URL the console's browser context asked for
  const dialogs = [];

  before(async () => {
    assert.ok(fs.existsSync(PUSHER_JS), 'run npm ci in examples/node (pusher-js)');
    vask = await h.startVask('console-vask', { VASK_ADMIN_TOKEN: TOKEN });
    base = `http://127.0.0.1:${vask.port}`;
    const Pusher = require(path.join(NODE_MODULES, 'pusher'));
    sdk = new Pusher({ appId: vask.id, key: vask.key, secret: vask.secret, host: vask.host, port: String(vask.port), useTLS: false });
    const { chromium } = require('playwright-core');
    browser = await chromium.launch({ executablePath: h.CHROMIUM, args: [...h.CHROMIUM_ARGS, ...OFFLINE_ARGS], timeout: 30000 });

    const adminContext = await browser.newContext();
    adminContext.on('request', (r) => requests.push(r.url()));
    // Anything not for this Vask is refused, and remembered.
    await adminContext.route('**/*', (route) => {
      const u = new URL(route.request().url());
      if (u.hostname === '127.0.0.1') return route.continue();
      return route.abort('blockedbyclient');
    });
    admin = await adminContext.newPage();
    admin.setDefaultTimeout(10000);
    admin.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
    adminRec = h.watchPage(admin, 'console');

    // A pusher-js client on its own page (its presence auth signed by the SDK).
    const clientContext = await browser.newContext();
    client = await clientContext.newPage();
    client.setDefaultTimeout(10000);
    clientRec = h.watchPage(client, 'client');
    await client.exposeFunction('authorize', (socketId, channel, userId) => sdk.authorizeChannel(socketId, channel, {
      user_id: userId, user_info: { name: `user ${userId}` },
    }));
    clients = await clientServer();
    await client.goto(clients.url);
    assert.equal(await client.evaluate(() => typeof window.Pusher), 'function');
  });

  // The client pages come from a small HTTP server on 127.0.0.1 (a page from
  // nowhere, about:blank or a route fulfilled by Playwright, may not open a
  // WebSocket to 127.0.0.1 under Chromium's local network access checks).
  async function clientServer() {
    const port = await h.freePort();
    const srv = http.createServer((req, res) => {
      if (req.url.endsWith('/pusher.min.js')) {
        res.writeHead(200, { 'Content-Type': 'text/javascript' });
        return res.end(fs.readFileSync(PUSHER_JS));
      }
      res.writeHead(200, { 'Content-Type': 'text/html' });
      return res.end('<!doctype html><title>client</title><script src="/pusher.min.js"></script>');
    });
    await new Promise((resolve) => srv.listen(port, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(r); }) };
  }

  after(async () => {
    if (test.failed()) {
      if (adminRec) console.log(adminRec.dump());
      if (clientRec) console.log(clientRec.dump());
    }
    if (browser) await browser.close().catch(() => {});
    if (clients) await clients.close();
    if (vask) await vask.stop();
  });

  test('a wrong token shows the login page again with an error, and is counted', async () => {
    await admin.goto(`${base}/console`);
    await admin.fill('#token', 'not-the-token-at-all');
    await Promise.all([admin.waitForURL(`${base}/console/login`), admin.click('button[type=submit]')]);
    await h.waitText(admin, '#login-error', 'Wrong token');
    assert.equal(await admin.locator('#token').count(), 1, 'the login form is shown again');
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /vask_refused_total\{reason="console_login"\} 1/);
    // The refused login answered 401, which Chromium logs as an error.
    adminRec.console.length = 0;
  });

  test('the right token opens the apps page, which lists the app', async () => {
    await admin.goto(`${base}/console`);
    await admin.fill('#token', TOKEN);
    await Promise.all([admin.waitForURL(`${base}/console`), admin.click('button[type=submit]')]);
    await h.waitText(admin, '#apps tbody td', vask.key);
    const cookies = await admin.context().cookies();
    const c = cookies.find((x) => x.name === 'vask_console');
    assert.ok(c, 'session cookie set');
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, 'Strict');
    assert.equal(c.path, '/console');
    await Promise.all([admin.waitForURL(`${base}/console/apps/${vask.id}`), admin.click(`#apps a[href="/console/apps/${vask.id}"]`)]);
    await h.waitText(admin, '#feed-status', 'live');
  });

  test('a pusher-js client connecting shows in the console within a second', async () => {
    const socketId = await client.evaluate(([key, port]) => new Promise((resolve) => {
      window.received = [];
      window.pusher = new window.Pusher(key, {
        wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'], cluster: 'mt1',
        channelAuthorization: {
          customHandler: ({ socketId: s, channelName }, cb) => window.authorize(s, channelName, window.userId)
            .then((a) => cb(null, a), (e) => cb(e, null)),
        },
      });
      window.pusher.connection.bind('connected', () => resolve(window.pusher.connection.socket_id));
      const news = window.pusher.subscribe('news');
      news.bind_global((event, data) => { if (!event.startsWith('pusher')) window.received.push({ event, data }); });
    }), [vask.key, vask.port]);
    assert.match(socketId, /^\d+\.\d+$/);
    await h.waitText(admin, '#log tr[data-kind="connection_opened"]', socketId, 1000);
    await h.waitText(admin, '#log tr[data-kind="subscribed"]', 'news');
    await h.waitText(admin, '#connections', '1');
    await h.waitText(admin, '#channels tr[data-channel="news"]', 'news');
  });

  test('an SDK publish appears in the log, its data as text', async () => {
    await h.maybeInjectFault(vask);
    await sdk.trigger('news', 'sdk-event', XSS);
    await h.waitText(admin, '#log tr[data-kind="api_publish"]', 'sdk-event');
    await h.waitText(admin, '#log tr[data-kind="api_publish"]', XSS);
    assert.equal(await admin.locator('#log img').count(), 0, 'no element was made of the data');
    assert.deepEqual(dialogs, [], 'no script ran from the data');
    await h.waitFor(client, () => window.received.some((r) => r.event === 'sdk-event'), null, 'the client got the SDK event');
  });

  test('the log can be paused and filtered', async () => {
    await admin.click('#pause');
    await sdk.trigger('news', 'while-paused', 'p');
    await h.waitText(admin, '#paused-count', '1 new event');
    await h.assertNoText(admin, '#log td', 'while-paused', 300);
    await admin.click('#pause');
    await h.waitText(admin, '#log td', 'while-paused');
    await admin.selectOption('#filter-kind', 'connection_opened');
    await h.waitFor(admin, () => [...document.querySelectorAll('#log tbody tr')].every((r) => r.dataset.kind === 'connection_opened'), null, 'only connection_opened rows');
    await admin.selectOption('#filter-kind', '');
    await admin.fill('#filter-channel', 'nothing-like-this');
    await h.waitFor(admin, () => document.querySelectorAll('#log tbody tr').length === 0, null, 'no row for an unknown channel');
    await admin.fill('#filter-channel', '');
  });

  test('the test-event form delivers to the pusher-js client', async () => {
    await admin.fill('#send-channel', 'news');
    await admin.fill('#send-event', 'console-test');
    await admin.fill('#send-data', '{"n": 42}');
    await admin.click('#send button[type=submit]');
    await h.waitText(admin, '#send-status', 'sent');
    await h.waitFor(client, () => window.received.some((r) => r.event === 'console-test' && r.data && r.data.n === 42), null, 'the form\'s event at the client');
    await h.waitText(admin, '#log tr[data-kind="api_publish"]', 'console-test');
    // A bad channel name is refused by the API, and the page says why.
    await admin.fill('#send-channel', 'bad channel name');
    await admin.click('#send button[type=submit]');
    await h.waitText(admin, '#send-status', 'refused (400)');
  });

  test('a presence member appears, then leaves', async () => {
    await client.evaluate(() => new Promise((resolve, reject) => {
      window.userId = 'alice';
      const p = window.pusher.subscribe('presence-room');
      p.bind('pusher:subscription_succeeded', resolve);
      p.bind('pusher:subscription_error', reject);
    }));
    await h.waitMembers(admin, 'tr[data-members-of="presence-room"] li.member', ['alice']);
    await h.waitText(admin, '#log tr[data-kind="member_added"]', 'alice');
    await client.evaluate(() => window.pusher.unsubscribe('presence-room'));
    await h.waitFor(admin, () => !document.querySelector('tr[data-members-of="presence-room"]'), null, 'presence-room gone from the channels');
    await h.waitText(admin, '#log tr[data-kind="member_removed"]', 'alice');
    await h.waitText(admin, '#log tr[data-kind="unsubscribed"]', 'presence-room');
  });

  test('a refused subscription shows with its reason', async () => {
    await client.evaluate(() => {
      // A private channel with a forged signature.
      window.pusher.connection.send_event('pusher:subscribe', { channel: 'private-forged', auth: `${window.pusher.key}:0000` });
    });
    await h.waitText(admin, '#log tr[data-kind="subscription_refused"]', 'private-forged');
    await h.waitText(admin, '#log tr[data-kind="subscription_refused"]', 'Invalid signature');
  });

  test('a closed connection shows with its code', async () => {
    await client.evaluate(() => window.pusher.disconnect());
    await h.waitText(admin, '#log tr[data-kind="connection_closed"]', 'closed by the client');
    await h.waitText(admin, '#connections', '0');
  });

  test('the page asked nothing of the outside, and showed no script error', () => {
    const outside = requests.filter((u) => !u.startsWith(`${base}/`) && !u.startsWith(`ws://127.0.0.1:${vask.port}/`));
    assert.deepEqual(outside, []);
    assert.ok(requests.some((u) => u.endsWith('/console/static/app.js')), 'the scripts came from Vask');
    assert.deepEqual(adminRec.errors, []);
    // Script errors and CSP refusals (the 400 of the refused test event is expected).
    assert.deepEqual(adminRec.console.filter((c) => /Content Security Policy|Uncaught|Error:/.test(c)), []);
  });

  require('node:test').test('screenshot under load (CONSOLE_SCREENSHOT)', { skip: !process.env.CONSOLE_SCREENSHOT }, async () => {
    const secs = Number(process.env.CONSOLE_LOAD_SECS || 150);
    const loadContext = await browser.newContext();
    const pages = [];
    for (let i = 0; i < 4; i++) {
      const p = await loadContext.newPage();
      await p.exposeFunction('authorize', (socketId, channel, userId) => sdk.authorizeChannel(socketId, channel, { user_id: userId }));
      await p.goto(clients.url);
      await p.evaluate(([key, port, i]) => {
        window.userId = `user-${i}`;
        window.pusher = new window.Pusher(key, {
          wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'], cluster: 'mt1',
          channelAuthorization: { customHandler: ({ socketId: s, channelName }, cb) => window.authorize(s, channelName, window.userId).then((a) => cb(null, a)) },
        });
        for (const c of ['news', 'prices', `orders-${i % 2}`, 'presence-lobby']) window.pusher.subscribe(c);
      }, [vask.key, vask.port, i]);
      pages.push(p);
    }
    const end = Date.now() + secs * 1000;
    let n = 0;
    while (Date.now() < end) {
      const ch = ['news', 'prices', 'orders-0', 'orders-1'][n % 4];
      await sdk.trigger(ch, n % 3 ? 'price-update' : 'order-created', { id: n, at: new Date().toISOString() });
      if (n % 7 === 0) {
        // A client event on the presence channel, from one of the clients.
        await pages[n % pages.length].evaluate((k) => window.pusher.channel('presence-lobby').trigger('client-typing', { k }), n);
      }
      if (n % 50 === 25) {
        // One client leaves and comes back.
        await pages[1].evaluate(() => { window.pusher.disconnect(); window.pusher.connect(); });
      }
      n++;
      await h.sleep(150 + (Math.sin(n / 40) + 1) * 200);
    }
    await h.waitText(admin, '#feed-status', 'live');
    await admin.fill('#send-channel', 'news');
    await admin.fill('#send-event', 'test-event');
    await admin.fill('#send-data', '{"message": "hello from the console"}');
    await admin.evaluate(() => { document.getElementById('send-status').textContent = ''; });
    await h.sleep(1500);
    await admin.setViewportSize({ width: 1280, height: 800 });
    await admin.screenshot({ path: path.resolve(h.ROOT, process.env.CONSOLE_SCREENSHOT) });
    await loadContext.close();
  });

  test('Vask stayed up', () => {
    h.assertRunning(vask.proc);
  });
});
