'use strict';
// Webhooks from Vask, verified by the unmodified `pusher` SDK's webhook()
// helper, as an app's webhook endpoint would. Starts its own Vask (the
// binary in VASK_BIN, default target/debug/vask-server) with a webhook
// pointing at a receiver in this process.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const PusherServer = require('pusher');
const PusherClient = require('pusher-js');

const BIN = process.env.VASK_BIN || path.resolve(__dirname, '../../../../target/debug/vask-server');
const APP = { id: '7', key: 'webhook-key', secret: 'webhook-secret' };

let receiver;
let received = [];
let waiters = [];
let vask;
let vaskPort;
let tmp;

function freePort() {
  return new Promise((resolve) => {
    const s = http.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function nextWebhook(pred, ms = 5000) {
  const found = received.find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no matching webhook in time')), ms);
    waiters.push({ pred, resolve: (w) => { clearTimeout(timer); resolve(w); } });
  });
}

before(async () => {
  receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const w = { headers: req.headers, rawBody: Buffer.concat(chunks).toString('utf8') };
      received.push(w);
      waiters = waiters.filter((x) => (x.pred(w) ? (x.resolve(w), false) : true));
      res.writeHead(200).end();
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  vaskPort = await freePort();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vask-webhooks-'));
  const config = path.join(tmp, 'vask.toml');
  fs.writeFileSync(config, [
    '[server.webhooks]',
    'batch_ms = 50',
    'hold_ms = 200',
    '[[apps]]',
    `id = "${APP.id}"`,
    `key = "${APP.key}"`,
    `secret = "${APP.secret}"`,
    'client_events = true',
    '[[apps.webhooks]]',
    `url = "http://127.0.0.1:${receiver.address().port}/pusher/webhooks"`,
    '',
  ].join('\n'));
  vask = spawn(BIN, ['--config', config, '--port', String(vaskPort)], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    try {
      const ok = await new Promise((resolve) => {
        http.get(`http://127.0.0.1:${vaskPort}/up`, (r) => { r.resume(); resolve(r.statusCode === 200); })
          .on('error', () => resolve(false));
      });
      if (ok) return;
    } catch (_) { /* retry */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('vask did not start');
});

after(() => {
  if (vask) vask.kill();
  if (receiver) receiver.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function sdk(secret = APP.secret) {
  return new PusherServer({ appId: APP.id, key: APP.key, secret, host: '127.0.0.1', port: vaskPort, useTLS: false });
}

function names(w) {
  return JSON.parse(w.rawBody).events.map((e) => e.name);
}

test('pusher webhook() accepts what Vask sends, for occupied, member and vacated events', async () => {
  const pusher = sdk();
  const client = new PusherClient(APP.key, {
    wsHost: '127.0.0.1', wsPort: vaskPort, forceTLS: false, enabledTransports: ['ws'], cluster: 'mt1',
    disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => {
        cb(null, pusher.authorizeChannel(socketId, channelName, { user_id: 'u1', user_info: { name: 'Ann' } }));
      },
    },
  });
  try {
    client.subscribe('presence-hooks');
    const joined = await nextWebhook((w) => names(w).includes('member_added'));
    const hook = pusher.webhook({ headers: joined.headers, rawBody: joined.rawBody });
    assert.equal(hook.isValid(), true);
    const events = hook.getEvents();
    assert.deepEqual(events.find((e) => e.name === 'member_added'), { name: 'member_added', channel: 'presence-hooks', user_id: 'u1' });
    assert.ok(events.some((e) => e.name === 'channel_occupied' && e.channel === 'presence-hooks'));
    assert.ok(hook.getTime() instanceof Date);
    assert.equal(joined.headers['x-pusher-key'], APP.key);
    assert.equal(joined.headers['content-type'], 'application/json');

    client.disconnect();
    const left = await nextWebhook((w) => names(w).includes('channel_vacated'));
    const leftHook = pusher.webhook({ headers: left.headers, rawBody: left.rawBody });
    assert.equal(leftHook.isValid(), true);
    assert.ok(leftHook.getEvents().some((e) => e.name === 'member_removed' && e.user_id === 'u1'));
  } finally {
    client.disconnect();
  }
});

test('a tampered body or another secret fails the SDK check', async () => {
  const w = received[0] || (await nextWebhook(() => true));
  assert.equal(sdk().webhook({ headers: w.headers, rawBody: w.rawBody.replace('presence-hooks', 'presence-hookz') }).isValid(), false);
  assert.equal(sdk('another-secret').webhook({ headers: w.headers, rawBody: w.rawBody }).isValid(), false);
});
