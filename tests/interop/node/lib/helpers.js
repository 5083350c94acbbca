'use strict';
// Shared plumbing for the Node interop suites: the unmodified `pusher` server
// SDK (pusher-http-node) and `pusher-js` client, pointed at a running Vask.
//
// Environment: VASK_HOST (default 127.0.0.1), VASK_PORT (default 6001: where
// pusher-js connects), VASK_API_PORT (default VASK_PORT: where the server SDK
// publishes; another node in cluster mode).

const http = require('node:http');
const crypto = require('node:crypto');
const assert = require('node:assert/strict');
const PusherServer = require('pusher');
const PusherClient = require('pusher-js');

const HOST = process.env.VASK_HOST || '127.0.0.1';
const PORT = Number(process.env.VASK_PORT || 6001);
const API_PORT = Number(process.env.VASK_API_PORT || PORT);

// Must match tests/interop/vask.interop.toml.
const APP = { id: '1', key: 'interop-key', secret: 'interop-secret' };
const DISABLED_APP = { id: '2', key: 'disabled-key', secret: 'disabled-secret' };

// End-to-end encryption master key (bytes 0x00..0x1f). Only the SDK and the
// auth endpoint know it; Vask never sees it.
const MASTER_KEY_B64 = Buffer.from([...Array(32).keys()]).toString('base64');

// Channel names are unique per process so suites and reruns never collide.
const RUN = crypto.randomBytes(4).toString('hex');
let counter = 0;
function uniq(prefix) {
  counter += 1;
  return `${prefix}${RUN}-${counter}`;
}

/**
 * Polls `query` (an async function giving JSON) until its answer deep-equals
 * `expected` or `ms` pass, and returns the last answer: in cluster mode a query
 * through another node sees a change a few milliseconds later.
 */
async function settled(query, expected, ms = 2000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await query();
    if (require('node:util').isDeepStrictEqual(got, expected) || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A pusher-http-node instance for the interop app (overrides for error cases). */
function backend(overrides = {}) {
  return new PusherServer({
    appId: APP.id,
    key: APP.key,
    secret: APP.secret,
    host: HOST,
    port: API_PORT,
    useTLS: false,
    encryptionMasterKeyBase64: MASTER_KEY_B64,
    timeout: 5000,
    ...overrides,
  });
}

/**
 * Resolves with the first `event` emitted by a pusher-js emitter (channel,
 * connection, user) whose data satisfies `filter`; rejects after `ms`.
 * Resolves with `{data, metadata}` when `full` is set.
 */
function waitFor(emitter, event, ms = 5000, { filter = () => true, full = false, failOn } = {}) {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      emitter.unbind(event, onEvent);
      if (failOn) emitter.unbind(failOn, onFail);
    };
    const onEvent = (data, metadata) => {
      if (!filter(data, metadata)) return;
      done();
      resolve(full ? { data, metadata } : data);
    };
    const onFail = (data) => {
      done();
      reject(new Error(`got ${failOn} while waiting for ${event}: ${JSON.stringify(data)}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${ms} ms waiting for ${event}`));
    }, ms);
    emitter.bind(event, onEvent);
    if (failOn) emitter.bind(failOn, onFail);
  });
}

/** Resolves if `event` is NOT emitted within `ms`; rejects if it is. */
function expectNone(emitter, event, ms = 600, filter = () => true) {
  return new Promise((resolve, reject) => {
    const onEvent = (data, metadata) => {
      if (!filter(data, metadata)) return;
      clearTimeout(timer);
      emitter.unbind(event, onEvent);
      reject(new Error(`unexpected ${event}: ${JSON.stringify(data)} ${JSON.stringify(metadata || {})}`));
    };
    const timer = setTimeout(() => {
      emitter.unbind(event, onEvent);
      resolve();
    }, ms);
    emitter.bind(event, onEvent);
  });
}

/** Collects every `event` an emitter fires until `stop()`; returns the list. */
function collect(emitter, event) {
  const seen = [];
  const onEvent = (data, metadata) => seen.push({ data, metadata });
  emitter.bind(event, onEvent);
  return {
    seen,
    stop() {
      emitter.unbind(event, onEvent);
      return seen;
    },
  };
}

/** Resolves with the first decoded frame on the connection matching `pred`. */
function waitForFrame(client, pred, ms = 5000, what = 'frame') {
  return waitFor(client.connection, 'message', ms, { filter: pred }).catch((e) => {
    throw new Error(`${e.message} (${what})`);
  });
}

/** Records every decoded frame a pusher-js client receives. */
function recordFrames(client) {
  const frames = [];
  client.connection.bind('message', (m) => frames.push(m));
  return frames;
}

/** Records every error the pusher-js connection emits. */
function recordErrors(client) {
  const errors = [];
  client.connection.bind('error', (e) => errors.push(e));
  return errors;
}

/** Finds a Pusher error code (e.g. 4009) anywhere in a pusher-js error object. */
function errorCodes(errors) {
  const codes = [];
  const walk = (v) => {
    if (v && typeof v === 'object') {
      if (typeof v.code === 'number') codes.push(v.code);
      for (const k of Object.keys(v)) walk(v[k]);
    }
  };
  errors.forEach(walk);
  return codes;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Parses a pusher-http-node RequestError body and checks Vask's error shape. */
function assertJsonError(err, status) {
  assert.equal(err.name, 'PusherRequestError', `expected a RequestError, got ${err}`);
  assert.equal(err.status, status, `status ${err.status}, body ${err.body}`);
  let body;
  try {
    body = JSON.parse(err.body);
  } catch (e) {
    assert.fail(`error body is not JSON: ${JSON.stringify(err.body)}`);
  }
  assert.equal(typeof body.error, 'string', `body ${err.body}`);
  assert.ok(body.error.length > 0, `empty error text: ${err.body}`);
  assert.equal(body.code, status, `body ${err.body}`);
  return body;
}

/** Runs `promise`, expects a RequestError with `status` and the JSON error body. */
async function expectHttpError(promise, status) {
  let err;
  try {
    const res = await promise;
    const text = res && res.text ? await res.text() : '';
    assert.fail(`expected HTTP ${status}, got ${res && res.status}: ${text}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    err = e;
  }
  return assertJsonError(err, status);
}

/**
 * The test harness: a tiny auth endpoint (the app's backend, using the SDK's
 * authorizeChannel / authenticateUser) and a pusher-js client factory.
 */
class Harness {
  constructor() {
    this.sdk = backend();
    this.clients = new Set();
    this.sockets = new Set();
    this.authUrl = null;
    this.server = null;
  }

  async start() {
    this.server = http.createServer((req, res) => this.handleAuth(req, res));
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.authUrl = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  handleAuth(req, res) {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      const form = new URLSearchParams(body);
      const socketId = form.get('socket_id');
      const userId = form.get('user_id') || 'anonymous';
      const name = form.get('user_name') || userId;
      let payload;
      try {
        if (req.url === '/pusher/auth') {
          const channel = form.get('channel_name');
          payload = channel.startsWith('presence-')
            ? this.sdk.authorizeChannel(socketId, channel, { user_id: userId, user_info: { name } })
            : this.sdk.authorizeChannel(socketId, channel);
        } else if (req.url === '/pusher/user-auth') {
          const user = { id: userId, user_info: { name } };
          const watchlist = form.get('watchlist');
          if (watchlist) user.watchlist = watchlist.split(',');
          payload = this.sdk.authenticateUser(socketId, user);
        } else {
          res.writeHead(404).end();
          return;
        }
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
    });
  }

  /**
   * A pusher-js client. `userId` is sent to the auth endpoint as a param, so
   * presence membership and sign-in use it; `watchlist` (user ids) goes into
   * the signed user_data. Extra pusher-js options override.
   */
  client({ userId = 'anonymous', name, watchlist, key = APP.key, options = {} } = {}) {
    const params = { user_id: userId, user_name: name || userId };
    if (watchlist) params.watchlist = watchlist.join(',');
    const client = new PusherClient(key, {
      cluster: 'mt1',
      wsHost: HOST,
      wsPort: PORT,
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      channelAuthorization: { endpoint: `${this.authUrl}/pusher/auth`, transport: 'ajax', params },
      userAuthentication: { endpoint: `${this.authUrl}/pusher/user-auth`, transport: 'ajax', params },
      ...options,
    });
    this.clients.add(client);
    // Keep the underlying faye-websocket client: see stop().
    client.connection.bind('connected', () => {
      const conn = client.connection.connection;
      if (conn && conn.transport && conn.transport.socket) this.sockets.add(conn.transport.socket);
    });
    return client;
  }

  /** A connected pusher-js client. */
  async connected(opts) {
    const client = this.client(opts);
    await connectedState(client);
    return client;
  }

  async stop() {
    for (const client of this.clients) {
      try {
        client.disconnect();
      } catch (_) {
        // already gone
      }
    }
    this.clients.clear();
    // When the server closes a socket with a 40xx code, pusher-js (Node build)
    // calls close() on the already-closed faye-websocket client, which arms a
    // 30 s close timer that would keep node alive. Clear those timers.
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (const socket of this.sockets) {
      if (socket._closeTimer) clearTimeout(socket._closeTimer);
    }
    this.sockets.clear();
    if (this.server) {
      this.server.closeAllConnections();
      await new Promise((resolve) => this.server.close(resolve));
      this.server = null;
    }
  }
}

async function connectedState(client, ms = 5000) {
  if (client.connection.state === 'connected') return client;
  await waitFor(client.connection, 'state_change', ms, {
    filter: (s) => s.current === 'connected',
  }).catch((e) => {
    throw new Error(`${e.message}: client never connected (state ${client.connection.state})`);
  });
  return client;
}

/** Subscribes and waits for pusher:subscription_succeeded (fails fast on subscription_error). */
async function subscribed(client, name, ms = 5000) {
  const channel = client.subscribe(name);
  await waitFor(channel, 'pusher:subscription_succeeded', ms, { failOn: 'pusher:subscription_error' }).catch((e) => {
    throw new Error(`subscribe ${name}: ${e.message}`);
  });
  return channel;
}

/** Waits until the client's connection state is `state`. */
async function reachesState(client, state, ms = 5000) {
  if (client.connection.state === state) return;
  await waitFor(client.connection, 'state_change', ms, { filter: (s) => s.current === state }).catch((e) => {
    throw new Error(`${e.message}: expected state ${state}, still ${client.connection.state}`);
  });
}

module.exports = {
  HOST,
  PORT,
  API_PORT,
  settled,
  APP,
  DISABLED_APP,
  MASTER_KEY_B64,
  RUN,
  uniq,
  backend,
  waitFor,
  expectNone,
  collect,
  waitForFrame,
  recordFrames,
  recordErrors,
  errorCodes,
  sleep,
  assertJsonError,
  expectHttpError,
  Harness,
  connectedState,
  subscribed,
  reachesState,
};
