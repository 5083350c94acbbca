'use strict';
// examples/django (Django + pusher-http-python + pusher-js) against a real Vask,
// two users in two headless Chromium contexts.
const { describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('../lib/harness');

const DJANGO_DIR = path.join(h.EXAMPLES, 'django');
const PYTHON = process.env.DJANGO_PYTHON || path.join(DJANGO_DIR, '.venv/bin/python');
const PASSWORD = 'vask-demo-password';

describe('Django + pusher-http-python + pusher-js on Vask', () => {
  const test = h.trackedTest(); // prints the pages' frames and console if any test fails
  let vask; let django; let base; let browser; let env;
  const users = {}; // username -> { pk, context, page, rec, authRequests }

  before(async () => {
    assert.ok(fs.existsSync(PYTHON), `no python at ${PYTHON} (run tests/e2e/run.sh, or make the venv)`);
    assert.ok(fs.existsSync(path.join(DJANGO_DIR, 'chat/static/vendor/pusher.min.js')), 'pusher.min.js not vendored (npm ci && npm run vendor in examples/django)');
    vask = await h.startVask('django-vask');
    const dbPath = path.join(h.LOG_DIR, 'django-e2e.sqlite3');
    fs.rmSync(dbPath, { force: true });
    env = { ...h.pusherEnv(vask), DJANGO_DB_PATH: dbPath, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' };
    h.run(PYTHON, ['manage.py', 'migrate', '--noinput', '-v', '0'], { cwd: DJANGO_DIR, env, timeout: 90000 });
    const created = h.run(PYTHON, ['manage.py', 'create_demo_users'], { cwd: DJANGO_DIR, env });
    for (const m of created.matchAll(/(\w+) \(pk=(\d+)\)/g)) users[m[1]] = { pk: m[2] };
    assert.ok(users.alice && users.bob, `demo users not created: ${created}`);
    const port = await h.freePort();
    base = `http://127.0.0.1:${port}`;
    django = h.start('django', PYTHON, ['manage.py', 'runserver', `127.0.0.1:${port}`, '--noreload'], { cwd: DJANGO_DIR, env });
    await h.waitForHttp(`${base}/accounts/login/`, { status: 200, proc: django, timeoutMs: 30000 });
    browser = await h.launchBrowser();
  });

  after(async () => {
    if (test.failed()) for (const u of Object.values(users)) if (u.rec) console.log(u.rec.dump());
    if (browser) await browser.close().catch(() => {});
    if (django) await django.stop();
    if (vask) await vask.stop();
  });

  async function logIn(username) {
    const u = users[username];
    u.context = await browser.newContext();
    u.page = await u.context.newPage();
    u.page.setDefaultTimeout(10000);
    u.rec = h.watchPage(u.page, username);
    u.authRequests = [];
    u.page.on('response', async (res) => {
      if (!res.url().endsWith('/pusher/auth/')) return;
      const req = res.request();
      u.authRequests.push({ headers: await req.allHeaders(), body: req.postData(), status: res.status(), json: await res.json().catch(() => null) });
    });
    await u.page.goto(`${base}/`);
    assert.match(u.page.url(), /\/accounts\/login\/\?next=\/$/, 'the page requires login');
    await u.page.fill('#id_username', username);
    await u.page.fill('#id_password', PASSWORD);
    await Promise.all([u.page.waitForURL(`${base}/`), u.page.click('#login-button')]);
    return u;
  }

  test('both users log in and connect to Vask over a WebSocket', async () => {
    for (const name of ['alice', 'bob']) {
      const u = await logIn(name);
      await h.waitText(u.page, '#connection-state', 'connected');
      const sock = u.rec.sockets.find((s) => s.url.startsWith(`ws://127.0.0.1:${vask.port}/app/${vask.key}`));
      assert.ok(sock, `no WebSocket to Vask; saw ${JSON.stringify(u.rec.sockets.map((s) => s.url))}`);
      const established = u.rec.frames.find((f) => f.dir === 'in' && f.payload.includes('pusher:connection_established'));
      assert.ok(established, 'no pusher:connection_established frame');
      const socketId = JSON.parse(JSON.parse(established.payload).data).socket_id;
      assert.equal(await u.page.textContent('#socket-id'), socketId);
      await h.waitText(u.page, '#public-status', 'subscribed');
    }
  });

  test('the private channel authorizes through the Django view, with the CSRF token', async () => {
    for (const name of ['alice', 'bob']) {
      const u = users[name];
      await h.waitText(u.page, '#private-status', 'subscribed');
      const auth = u.authRequests.find((r) => r.body && r.body.includes(`channel_name=private-user-${u.pk}`));
      assert.ok(auth, `no auth request for private-user-${u.pk}: ${JSON.stringify(u.authRequests)}`);
      const token = await u.page.inputValue('#send-form [name=csrfmiddlewaretoken]');
      assert.equal(auth.headers['x-csrftoken'], token, 'X-CSRFToken forwarded by pusher-js');
      assert.equal(auth.status, 200);
      assert.match(auth.json.auth, new RegExp(`^${vask.key}:[0-9a-f]{64}$`));
    }
    // A channel of another user is refused by the view, and pusher-js reports it.
    const alice = users.alice;
    const status = await alice.page.evaluate((ch) => new Promise((resolve) => {
      const c = window.pusher.subscribe(ch);
      c.bind('pusher:subscription_error', (e) => resolve(e.status));
      c.bind('pusher:subscription_succeeded', () => resolve('succeeded'));
    }), `private-user-${users.bob.pk}`);
    assert.equal(status, 403);
  });

  test('presence shows both users', async () => {
    const ids = [users.alice.pk, users.bob.pk];
    for (const name of ['alice', 'bob']) {
      const u = users[name];
      await h.waitText(u.page, '#presence-status', 'subscribed');
      await h.waitMembers(u.page, '#members li', ids);
      assert.equal(await u.page.textContent('#member-count'), '2');
    }
    assert.match(await users.alice.page.textContent(`#members li[data-user-id="${users.bob.pk}"]`), /^Bob$/);
    assert.match(await users.alice.page.textContent(`#members li[data-user-id="${users.alice.pk}"]`), /^Alice \(you\)$/);
  });

  test('an event triggered by the Django view (pusher-http-python) appears on both pages', async () => {
    await h.maybeInjectFault(vask);
    const { page } = users.alice;
    const text = `hello from alice ${Date.now()}`;
    await page.fill('#message', text);
    await page.click('#send');
    await h.waitText(page, '#send-status', 'sent');
    for (const name of ['alice', 'bob']) await h.waitText(users[name].page, '#feed li', `Alice: ${text}`);
  });

  test('a triggered event on a private channel reaches only its user', async () => {
    const { page } = users.bob;
    const text = `psst ${Date.now()}`;
    await page.selectOption('#to', users.alice.pk);
    await page.fill('#message', text);
    await page.click('#send');
    await h.waitText(users.alice.page, '#private li', `Bob: ${text}`);
    await h.assertNoText(users.bob.page, '#private li', text, 300);
    await h.assertNoText(users.bob.page, '#feed li', text, 0);
  });

  test('presence: when bob leaves (context closed), alice sees only herself', async () => {
    await users.bob.context.close();
    await h.waitMembers(users.alice.page, '#members li', [users.alice.pk]);
    assert.equal(await users.alice.page.textContent('#member-count'), '1');
  });

  test('the auth view refuses anonymous users with 403 JSON, and keeps CSRF on', async () => {
    // A real anonymous client: gets a CSRF cookie and token from the login page first.
    const login = await fetch(`${base}/accounts/login/`);
    const html = await login.text();
    const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const token = html.match(/name="csrfmiddlewaretoken" value="([^"]+)"/)[1];
    const body = new URLSearchParams({ socket_id: '123.456', channel_name: `private-user-${users.alice.pk}` });
    const anon = await fetch(`${base}/pusher/auth/`, { method: 'POST', body, headers: { cookie, 'X-CSRFToken': token, referer: `${base}/` } });
    assert.equal(anon.status, 403);
    assert.deepEqual(await anon.json(), { error: 'login required' });
    // Without the token, Django's CSRF middleware refuses first.
    const noCsrf = await fetch(`${base}/pusher/auth/`, { method: 'POST', body, headers: { cookie } });
    assert.equal(noCsrf.status, 403);
    assert.match(await noCsrf.text(), /CSRF/);
    // And the view is POST only.
    const get = await fetch(`${base}/pusher/auth/`);
    assert.equal(get.status, 405);
    // Logged in but without the CSRF header: refused too (from alice's page).
    const status = await users.alice.page.evaluate(async (b) => (await fetch('/pusher/auth/', { method: 'POST', body: new URLSearchParams(b) })).status, Object.fromEntries(body));
    assert.equal(status, 403);
  });

  test('Vask and Django stayed up', () => {
    h.assertRunning(vask.proc);
    h.assertRunning(django);
  });
});
