'use strict';
// Express + the `pusher` npm package (pusher-http-node), unchanged from a hosted
// Pusher app: only the PUSHER_* environment points it at Vask.
//
//   PUSHER_APP_ID=1 PUSHER_APP_KEY=vask-key PUSHER_APP_SECRET=vask-secret \
//   PUSHER_HOST=127.0.0.1 PUSHER_PORT=6001 PUSHER_SCHEME=http PORT=3000 node server.js
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const express = require('express');
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

// What the page's pusher-js needs (never the secret).
const browserConfig = {
  key: config.key,
  wsHost: env.PUSHER_WS_HOST || config.host,
  wsPort: Number(env.PUSHER_WS_PORT || config.port),
  forceTLS: config.useTLS,
  publicChannel: 'feed',
  presenceChannel: 'presence-room',
};

// Demo users and a minimal signed-cookie session (use your real auth instead).
const USERS = { alice: { id: '1', name: 'Alice' }, bob: { id: '2', name: 'Bob' } };
const SESSION_SECRET = env.SESSION_SECRET || crypto.randomBytes(32).toString('hex');
const sign = (v) => crypto.createHmac('sha256', SESSION_SECRET).update(v).digest('hex');
function currentUser(req) {
  const m = /(?:^|;\s*)session=([a-z]+)\.([0-9a-f]{64})/.exec(req.headers.cookie || '');
  if (!m || !USERS[m[1]]) return null;
  const a = Buffer.from(sign(m[1]), 'hex');
  const b = Buffer.from(m[2], 'hex');
  return crypto.timingSafeEqual(a, b) ? { username: m[1], ...USERS[m[1]] } : null;
}

const app = express();
app.disable('x-powered-by');
app.use(express.urlencoded({ extended: false }));
app.use(express.json());

// State-changing calls from the page carry a custom header, which a cross-site
// form cannot send (a simple CSRF defence; pusher-js forwards it on auth calls).
function requireUser(req, res, next) {
  const user = currentUser(req);
  if (!user) return res.status(403).json({ error: 'login required' });
  if (req.get('X-Requested-By') !== 'vask-example') return res.status(403).json({ error: 'missing X-Requested-By' });
  req.user = user;
  return next();
}

app.get('/login', (req, res) => {
  res.type('html').send(`<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>Log in</title>
<h1>Log in as</h1>
${Object.entries(USERS).map(([u, { name }]) => `<form method="post" action="/login"><button name="username" value="${u}" id="login-${u}">${name}</button></form>`).join('\n')}`);
});
app.post('/login', (req, res) => {
  const username = String(req.body.username || '');
  if (!USERS[username]) return res.status(400).send('unknown user');
  res.cookie('session', `${username}.${sign(username)}`, { httpOnly: true, sameSite: 'strict', path: '/' });
  return res.redirect(303, '/');
});
app.post('/logout', (req, res) => res.clearCookie('session').redirect(303, '/login'));

const indexHtml = fs.readFileSync(path.join(__dirname, 'public/index.html'), 'utf8');
app.get('/', (req, res) => {
  const user = currentUser(req);
  if (!user) return res.redirect('/login');
  const pageConfig = { ...browserConfig, privateChannel: `private-user-${user.id}`, userId: user.id, userName: user.name };
  return res.type('html').send(indexHtml
    .replace('__NAME__', user.name)
    .replace('__CONFIG__', JSON.stringify(pageConfig).replace(/</g, '\\u003c')));
});
app.use('/static', express.static(path.join(__dirname, 'public')));
// pusher-js straight from node_modules: no CDN.
app.use('/vendor', express.static(path.dirname(require.resolve('pusher-js/dist/web/pusher.min.js'))));

// Channel authorization for pusher-js (private and presence channels).
app.post('/pusher/auth', requireUser, (req, res) => {
  const { socket_id: socketId, channel_name: channel } = req.body;
  const user = req.user;
  let presenceData;
  if (channel === browserConfig.presenceChannel) {
    presenceData = { user_id: user.id, user_info: { name: user.name } };
  } else if (channel !== `private-user-${user.id}`) {
    return res.status(403).json({ error: 'not your channel' });
  }
  try {
    return res.json(pusher.authorizeChannel(socketId, channel, presenceData));
  } catch (e) {
    return res.status(400).json({ error: e.message });
  }
});

// User authentication for pusher.signin() (enables send-to-user).
app.post('/pusher/user-auth', requireUser, (req, res) => {
  try {
    return res.json(pusher.authenticateUser(req.body.socket_id, { id: req.user.id, user_info: { name: req.user.name } }));
  } catch (e) {
    return res.status(400).json({ error: e.message });
  }
});

// Publish: to the public feed, or to one user's private channel.
app.post('/trigger', requireUser, async (req, res) => {
  const text = String(req.body.message || '').trim().slice(0, 500);
  const to = String(req.body.to || '');
  if (!text) return res.status(400).json({ error: 'message is required' });
  if (to && !/^\d+$/.test(to)) return res.status(400).json({ error: 'to must be a user id' });
  const [channel, event] = to ? [`private-user-${to}`, 'direct'] : [browserConfig.publicChannel, 'message'];
  const data = { text, from: req.user.name };
  try {
    const r = await pusher.trigger(channel, event, data);
    return res.json({ ok: r.status === 200, channel, event, data });
  } catch (e) {
    return res.status(502).json({ error: `trigger failed: ${e.status || e.message}` });
  }
});

// Send to every connection of a signed-in user (pusher.signin() on the page).
app.post('/notify', requireUser, async (req, res) => {
  const text = String(req.body.message || '').trim().slice(0, 500);
  const to = String(req.body.to || '');
  if (!text || !to) return res.status(400).json({ error: 'message and to are required' });
  try {
    await pusher.sendToUser(to, 'notice', { text, from: req.user.name });
    return res.json({ ok: true });
  } catch (e) {
    return res.status(502).json({ error: `sendToUser failed: ${e.status || e.message}` });
  }
});

const port = Number(env.PORT || 3000);
const host = env.HOST || '127.0.0.1';
app.listen(port, host, () => console.log(`listening on http://${host}:${port} (Pusher API at ${config.host}:${config.port})`));
