'use strict';
// Shared pieces of the e2e tests: free ports, child processes that are always
// killed, a Vask server, headless Chromium, and bounded waits.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const E2E = path.resolve(__dirname, '..');
const ROOT = path.resolve(E2E, '../..');
const EXAMPLES = path.join(ROOT, 'examples');
const LOG_DIR = process.env.E2E_LOG_DIR || path.join(E2E, '.tmp');
fs.mkdirSync(LOG_DIR, { recursive: true });

const APP = { id: '1', key: 'e2e-key', secret: 'e2e-secret' };
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
// Negative control: E2E_FAULT=stop-vask kills the Vask server mid-test (after
// the pages are connected); every test that needs Vask afterwards must fail.
const FAULT = process.env.E2E_FAULT || '';

const children = new Set();
function killAll() {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
  }
  children.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(130); });

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts a long-running process, output to LOG_DIR/name.log. Its pid is also
 * appended to LOG_DIR/pids, so that run.sh can kill it even if this process dies.
 */
function start(name, cmd, args, opts = {}) {
  const logFile = path.join(LOG_DIR, `${name}.log`);
  const out = fs.openSync(logFile, 'w');
  const child = spawn(cmd, args, {
    cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  children.add(child);
  fs.appendFileSync(path.join(LOG_DIR, 'pids'), `${child.pid} ${name}\n`);
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  child.logFile = logFile;
  child.name = name;
  child.stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try { child.kill('SIGTERM'); } catch { return; }
    const done = await Promise.race([child.exited.then(() => true), sleep(5000).then(() => false)]);
    if (!done) { try { child.kill('SIGKILL'); } catch { /* gone */ } await child.exited; }
  };
  return child;
}

/** Runs a short command to completion (bounded), throwing with its output on failure. */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd, env: { ...process.env, ...opts.env }, encoding: 'utf8', timeout: opts.timeout || 60000,
  });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal ?? r.error}):\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

function tail(file, lines = 40) {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n'); } catch { return ''; }
}

/** Polls url until it answers with `status` (any status if omitted), or throws after timeoutMs. */
async function waitForHttp(url, { timeoutMs = 20000, status, proc } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (proc && proc.exitCode !== null) {
      throw new Error(`${proc.name} exited (${proc.exitCode}) before ${url} answered:\n${tail(proc.logFile)}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000), redirect: 'manual' });
      await res.arrayBuffer();
      if (status === undefined || res.status === status) return res;
      last = `status ${res.status}`;
    } catch (e) { last = String(e.cause || e); }
    await sleep(100);
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms (${last})${proc ? `\n${tail(proc.logFile)}` : ''}`);
}

/**
 * Starts vask-server ($VASK_BIN, default target/debug/vask-server) on a free port;
 * `env` adds to its environment (e.g. VASK_ADMIN_TOKEN).
 */
async function startVask(name = 'vask', env = {}) {
  const bin = process.env.VASK_BIN || path.join(ROOT, 'target/debug/vask-server');
  if (!fs.existsSync(bin)) throw new Error(`vask-server not found at ${bin} (cargo build -p vask-server)`);
  const port = await freePort();
  const proc = start(name, bin, ['--config', path.join(E2E, 'vask.e2e.toml'), '--host', '127.0.0.1', '--port', String(port)], {
    env: { VASK_LOG: process.env.VASK_LOG || 'info', ...env },
  });
  await waitForHttp(`http://127.0.0.1:${port}/up`, { status: 200, proc, timeoutMs: 15000 });
  return { ...APP, host: '127.0.0.1', port, proc, stop: () => proc.stop() };
}

/** The env that points an app's server SDK at this Vask. */
function pusherEnv(vask) {
  return {
    PUSHER_APP_ID: vask.id, PUSHER_APP_KEY: vask.key, PUSHER_APP_SECRET: vask.secret,
    PUSHER_HOST: vask.host, PUSHER_PORT: String(vask.port), PUSHER_SCHEME: 'http',
  };
}

async function launchBrowser() {
  const { chromium } = require('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30000 });
}

/**
 * Opens a page and records what a test needs to see: WebSocket URLs and frames,
 * console output, page errors.
 */
function watchPage(page, label) {
  const rec = { label, sockets: [], frames: [], console: [], errors: [] };
  page.on('websocket', (ws) => {
    rec.sockets.push({ url: ws.url(), closed: false, ws });
    const entry = rec.sockets[rec.sockets.length - 1];
    ws.on('framesent', (f) => rec.frames.push({ dir: 'out', t: Date.now(), payload: String(f.payload) }));
    ws.on('framereceived', (f) => rec.frames.push({ dir: 'in', t: Date.now(), payload: String(f.payload) }));
    ws.on('close', () => { entry.closed = true; });
  });
  page.on('console', (m) => rec.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => rec.errors.push(String(e)));
  rec.dump = () => [
    `--- ${label}: sockets ${rec.sockets.map((s) => s.url + (s.closed ? ' (closed)' : '')).join(', ')}`,
    ...rec.frames.slice(-30).map((f) => `${f.dir} ${f.payload}`),
    ...rec.console.slice(-20).map((c) => `console ${c}`),
    ...rec.errors.map((e) => `pageerror ${e}`),
  ].join('\n');
  return rec;
}

/** Waits until some element matching selector has text containing `text`. */
async function waitText(page, selector, text, timeout = 10000) {
  try {
    await page.waitForFunction(
      ([sel, txt]) => [...document.querySelectorAll(sel)].some((e) => e.textContent.includes(txt)),
      [selector, text], { timeout, polling: 50 },
    );
  } catch (e) {
    const seen = await page.evaluate((sel) => [...document.querySelectorAll(sel)].map((e) => e.textContent), selector).catch(() => []);
    throw new Error(`"${text}" did not appear in ${selector} within ${timeout} ms; saw ${JSON.stringify(seen)}`);
  }
}

/** Waits until fn(page) (evaluated in the page with arg) returns truthy. */
async function waitFor(page, fn, arg, what, timeout = 10000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (e) {
    throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
  }
}

/** Asserts nothing matching selector contains text for `ms` (to check a message did not leak). */
async function assertNoText(page, selector, text, ms = 500) {
  await sleep(ms);
  const seen = await page.evaluate((sel) => [...document.querySelectorAll(sel)].map((e) => e.textContent), selector);
  if (seen.some((s) => s.includes(text))) throw new Error(`"${text}" unexpectedly appeared in ${selector}: ${JSON.stringify(seen)}`);
}

async function members(page, selector) {
  return page.evaluate((sel) => [...document.querySelectorAll(sel)].map((e) => e.getAttribute('data-user-id')).sort(), selector);
}

async function waitMembers(page, selector, expected, timeout = 10000) {
  const want = [...expected].sort();
  try {
    await page.waitForFunction(
      ([sel, w]) => JSON.stringify([...document.querySelectorAll(sel)].map((e) => e.getAttribute('data-user-id')).sort()) === JSON.stringify(w),
      [selector, want], { timeout, polling: 50 },
    );
  } catch {
    throw new Error(`members ${selector} did not become ${JSON.stringify(want)} within ${timeout} ms; saw ${JSON.stringify(await members(page, selector))}`);
  }
}

/** Asserts a process started by start() is still running. */
function assertRunning(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    throw new Error(`${proc.name} is not running (exit ${proc.exitCode}, signal ${proc.signalCode}):\n${tail(proc.logFile)}`);
  }
}

/** node:test's test(), remembering whether any test failed (for dumping diagnostics in after()). */
function trackedTest() {
  const { test } = require('node:test');
  let failed = false;
  const tracked = (name, fn) => test(name, async (t) => {
    try { return await fn(t); } catch (e) { failed = true; throw e; }
  });
  tracked.failed = () => failed;
  return tracked;
}

/** Kills Vask when E2E_FAULT=stop-vask (negative control); returns whether it did. */
async function maybeInjectFault(vask) {
  if (FAULT !== 'stop-vask') return false;
  console.log('# E2E_FAULT=stop-vask: killing vask-server now');
  try { vask.proc.kill('SIGKILL'); } catch { /* gone */ }
  await vask.proc.exited;
  return true;
}

module.exports = {
  APP, E2E, ROOT, EXAMPLES, LOG_DIR, CHROMIUM, CHROMIUM_ARGS, FAULT,
  freePort, sleep, start, run, tail, waitForHttp, startVask, pusherEnv, launchBrowser,
  watchPage, waitText, waitFor, assertNoText, members, waitMembers, maybeInjectFault, killAll, assertRunning, trackedTest,
};
