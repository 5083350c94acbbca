'use strict';
// A stand-in for a Laravel backend, in one Node process with no dependencies but
// the `pusher` npm package: serves the Echo page (laravel-echo and pusher-js
// straight from node_modules), answers /broadcasting/auth and
// /broadcasting/user-auth like Laravel's Broadcast::routes(), and broadcasts
// events the way Laravel's pusher driver does (App\Events\... names, toOthers()
// via X-Socket-ID).
//
//   PUSHER_APP_ID=1 PUSHER_APP_KEY=vask-key PUSHER_APP_SECRET=vask-secret \
//   PUSHER_HOST=127.0.0.1 PUSHER_PORT=6001 PUSHER_SCHEME=http PORT=3001 node server.js
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const Pusher = require('pusher');

const env = process.env;
const config = {
  appId: env.PUSHER_APP_ID || '1',
  key: env.PUSHER_APP_KEY || 'vask-key',
  secret: env.PUSHER_APP_SECRET || 'vask-secret',
  host: env.PUSHER_HOST || '127.0.0.1',
  port: env.PUSHER_PORT || '6001',
  useTLS: (env.PUSHER_SCHEME || 'http') === 'https',
};
const pusher = new Pusher(config);

// Demo users, a signed-cookie session and a per-session CSRF token, as Laravel
// would have (Echo sends <meta name="csrf-token"> as X-CSRF-TOKEN on auth calls).
const USERS = { alice: { id: 1, name: 'Alice' }, bob: { id: 2, name: 'Bob' } };
const APP_KEY = env.APP_KEY || crypto.randomBytes(32).toString('hex');
const hmac = (v) => crypto.createHmac('sha256', APP_KEY).update(v).digest('hex');
const csrfFor = (username) => hmac(`csrf:${username}`);
function sessionUser(req) {
  const m = /(?:^|;\s*)session=([a-z]+)\.([0-9a-f]{64})/.exec(req.headers.cookie || '');
  if (!m || !USERS[m[1]]) return null;
  if (!crypto.timingSafeEqual(Buffer.from(hmac(m[1]), 'hex'), Buffer.from(m[2], 'hex'))) return null;
  return { username: m[1], ...USERS[m[1]] };
}
function csrfOk(req, user) {
  const token = String(req.headers['x-csrf-token'] || '');
  const want = csrfFor(user.username);
  return token.length === want.length && crypto.timingSafeEqual(Buffer.from(token), Buffer.from(want));
}

// routes/channels.php, in JavaScript: who may join which channel.
// Returns false (403), true (private channel) or the user_info (presence).
function channelAllowed(channel, user) {
  if (channel === 'private-chat') return true;
  if (channel === `private-App.Models.User.${user.id}`) return true;
  if (channel === 'presence-room') return { id: user.id, name: user.name };
  return false;
}

const FILES = {
  '/vendor/pusher.min.js': require.resolve('pusher-js/dist/web/pusher.min.js'),
  '/vendor/echo.iife.js': path.join(path.dirname(require.resolve('laravel-echo')), 'echo.iife.js'),
  '/app.js': path.join(__dirname, 'public/app.js'),
};
const indexHtml = fs.readFileSync(path.join(__dirname, 'public/index.html'), 'utf8');

function send(res, status, body, headers = {}) {
  const isJson = typeof body !== 'string';
  res.writeHead(status, { 'Content-Type': isJson ? 'application/json' : 'text/html; charset=utf-8', ...headers });
  res.end(isJson ? JSON.stringify(body) : body);
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > 64 * 1024) throw Object.assign(new Error('body too large'), { httpStatus: 413 });
    chunks.push(c);
  }
  const raw = Buffer.concat(chunks).toString('utf8');
  if ((req.headers['content-type'] || '').startsWith('application/json')) {
    try { return raw ? JSON.parse(raw) : {}; } catch { throw Object.assign(new Error('invalid JSON'), { httpStatus: 400 }); }
  }
  return Object.fromEntries(new URLSearchParams(raw));
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const route = `${req.method} ${url.pathname}`;

  if (req.method === 'GET' && FILES[url.pathname]) {
    res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' });
    return fs.createReadStream(FILES[url.pathname]).pipe(res);
  }
  if (route === 'GET /login') {
    return send(res, 200, `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>Log in</title><h1>Log in as</h1>
${Object.entries(USERS).map(([u, { name }]) => `<form method="post" action="/login"><button name="username" value="${u}" id="login-${u}">${name}</button></form>`).join('\n')}`);
  }
  if (route === 'POST /login') {
    const { username } = await readBody(req);
    if (!USERS[username]) return send(res, 400, { error: 'unknown user' });
    return send(res, 303, '', {
      Location: '/',
      'Set-Cookie': `session=${username}.${hmac(username)}; Path=/; HttpOnly; SameSite=Strict`,
    });
  }

  const user = sessionUser(req);
  if (route === 'GET /') {
    if (!user) return send(res, 302, '', { Location: '/login' });
    const pageConfig = {
      key: config.key,
      wsHost: env.PUSHER_WS_HOST || config.host,
      wsPort: Number(env.PUSHER_WS_PORT || config.port),
      forceTLS: config.useTLS,
      userId: user.id,
      userName: user.name,
    };
    return send(res, 200, indexHtml
      .replace('__CSRF__', csrfFor(user.username))
      .replace('__NAME__', user.name)
      .replace('__CONFIG__', JSON.stringify(pageConfig).replace(/</g, '\\u003c')));
  }

  if (req.method !== 'POST') return send(res, 404, { error: 'not found' });
  // Everything below is Laravel's "auth" + "web" middleware: session and CSRF.
  if (!user) return send(res, 403, { error: 'login required' });
  if (!csrfOk(req, user)) return send(res, 419, { error: 'CSRF token mismatch' });
  const body = await readBody(req);
  const socketId = req.headers['x-socket-id']; // set by Echo's interceptors / the page

  switch (url.pathname) {
    case '/broadcasting/auth': {
      const allowed = channelAllowed(body.channel_name, user);
      if (!allowed) return send(res, 403, { error: 'forbidden' });
      const presence = allowed === true ? undefined : { user_id: String(user.id), user_info: allowed };
      return send(res, 200, pusher.authorizeChannel(body.socket_id, body.channel_name, presence));
    }
    case '/broadcasting/user-auth':
      return send(res, 200, pusher.authenticateUser(body.socket_id, { id: String(user.id), user_info: { name: user.name } }));
    case '/orders/ship': {
      // broadcast(new OrderShipped($order)) / ->toOthers()
      const params = body.toOthers && socketId ? { socket_id: socketId } : undefined;
      await pusher.trigger('orders', 'App\\Events\\OrderShipped', { order: { id: Number(body.id) }, by: user.name }, params);
      return send(res, 200, { ok: true });
    }
    case '/announce':
      // An event with broadcastAs() === 'announcement': listened to as '.announcement'.
      await pusher.trigger('orders', 'announcement', { text: String(body.text || '') });
      return send(res, 200, { ok: true });
    case '/notify': {
      // $user->notify(new ...) with the broadcast channel: App.Models.User.{id}
      const to = Number(body.to);
      await pusher.trigger(`private-App.Models.User.${to}`, 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', {
        id: crypto.randomUUID(), type: 'App\\Notifications\\Hello', text: String(body.text || ''), from: user.name,
      });
      return send(res, 200, { ok: true });
    }
    default:
      return send(res, 404, { error: 'not found' });
  }
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => {
    console.error(e);
    // 4xx for a bad request; anything else (e.g. the Pusher API unreachable) is a 500.
    if (!res.headersSent) send(res, e.httpStatus || 500, { error: String(e.message || e) });
    else res.end();
  });
});
const port = Number(env.PORT || 3001);
const host = env.HOST || '127.0.0.1';
server.listen(port, host, () => console.log(`listening on http://${host}:${port} (Pusher API at ${config.host}:${config.port})`));
