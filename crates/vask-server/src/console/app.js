'use strict';
// The app page: a live feed over a WebSocket (/console/apps/{id}/feed) with
// the app's events as they happen and its state once a second.

const appId = decodeURIComponent(location.pathname.split('/')[3] || '');
document.getElementById('app-id').textContent = appId;
document.title = `Vask console: app ${appId}`;

const KINDS = [
  'connection_opened', 'connection_closed', 'connection_refused',
  'subscribed', 'unsubscribed', 'subscription_refused',
  'api_publish', 'client_event', 'client_event_refused',
  'member_added', 'member_removed', 'channel_occupied', 'channel_vacated', 'cache_miss',
  'webhook_sent', 'webhook_retried', 'webhook_dropped', 'quota_refused',
];
const MAX_EVENTS = 1000; // kept in memory
const MAX_ROWS = 500; // shown

const kindSelect = document.getElementById('filter-kind');
for (const k of KINDS) kindSelect.appendChild(Object.assign(el('option', '', k), { value: k }));
const channelInput = document.getElementById('filter-channel');
const logBody = document.querySelector('#log tbody');
const pauseButton = document.getElementById('pause');
const pausedCount = document.getElementById('paused-count');
const feedStatus = document.getElementById('feed-status');

let events = []; // newest first
let paused = false;
let held = []; // arrived while paused, newest first
let skipped = 0;

function matches(e) {
  const kind = kindSelect.value;
  const ch = channelInput.value.trim();
  if (kind && e.kind !== kind) return false;
  if (ch && !(typeof e.channel === 'string' && e.channel.startsWith(ch))) return false;
  return true;
}

function details(e) {
  const parts = [];
  if (e.code !== undefined && e.code !== null) parts.push(`code ${e.code}`);
  if (e.text) parts.push(e.text);
  if (e.user_id) parts.push(`user ${e.user_id}`);
  if (e.url) parts.push(`${e.url} (${e.events} event(s), attempt ${e.attempts})`);
  if (e.node) parts.push(`from node ${e.node}`);
  if (e.data !== undefined && e.data !== null && e.data !== '') parts.push(`data ${e.data}`);
  return parts.join(' · ');
}

function eventRow(e) {
  const who = e.event ? (e.socket_id ? `${e.event} (${e.socket_id})` : e.event) : (e.socket_id || '');
  const tr = row([clock(e.t), e.kind, e.channel || '', who, details(e)]);
  tr.firstChild.className = 'time';
  tr.firstChild.nextSibling.className = 'kind';
  tr.className = e.kind.replace(/^.*_/, '');
  tr.dataset.kind = e.kind;
  return tr;
}

/** HH:MM:SS.mmm, local time. */
function clock(ms) {
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

function render() {
  const rows = [];
  for (const e of events) {
    if (rows.length >= MAX_ROWS) break;
    if (matches(e)) rows.push(eventRow(e));
  }
  logBody.replaceChildren(...rows);
}

function add(e) {
  if (paused) {
    held.unshift(e);
    if (held.length > MAX_EVENTS) held.length = MAX_EVENTS;
    pausedCount.textContent = `${held.length} new event(s) while paused`;
    return;
  }
  events.unshift(e);
  if (events.length > MAX_EVENTS) events.length = MAX_EVENTS;
  if (matches(e)) {
    logBody.insertBefore(eventRow(e), logBody.firstChild);
    while (logBody.childElementCount > MAX_ROWS) logBody.lastElementChild.remove();
  }
}

pauseButton.addEventListener('click', () => {
  paused = !paused;
  pauseButton.textContent = paused ? 'Resume' : 'Pause';
  if (!paused) {
    events = held.concat(events).slice(0, MAX_EVENTS);
    held = [];
    pausedCount.textContent = '';
    render();
  }
});
document.getElementById('clear').addEventListener('click', () => { events = []; held = []; render(); });
kindSelect.addEventListener('change', render);
channelInput.addEventListener('input', render);

function showState(s) {
  document.getElementById('connections').textContent = fmt(s.connections);
  document.getElementById('channel-total').textContent = fmt(s.channel_total);
  document.getElementById('broadcasts').textContent = fmt(s.usage.broadcasts);
  document.getElementById('deliveries').textContent = fmt(s.usage.deliveries);
  document.getElementById('api-requests').textContent = fmt(s.usage.api_requests);
  const rows = [];
  for (const c of s.channels) {
    const tr = row([c.name, fmt(c.subscriptions), c.users === null ? '' : fmt(c.users)], [1, 2]);
    tr.dataset.channel = c.name;
    rows.push(tr);
    if (c.members) {
      const mtr = document.createElement('tr');
      const td = el('td');
      td.colSpan = 3;
      const ul = el('ul', 'members');
      for (const id of c.members.ids) {
        const li = el('li', 'member', id);
        li.dataset.userId = id;
        ul.appendChild(li);
      }
      if (c.members.more) ul.appendChild(el('li', '', `and ${c.members.more} more`));
      td.appendChild(ul);
      mtr.appendChild(td);
      mtr.dataset.membersOf = c.name;
      rows.push(mtr);
    }
  }
  document.querySelector('#channels tbody').replaceChildren(...rows);
  const more = s.channel_total - s.channels.length;
  document.getElementById('channels-more').textContent = more > 0 ? `and ${more} more channel(s)` : '';
  chart('chart-connections', s.history.connections);
  chart('chart-broadcasts', s.history.broadcasts);
  chart('chart-deliveries', s.history.deliveries);
}

const SVG = 'http://www.w3.org/2000/svg';
/** Bars of the last 60 minutes, oldest left; the peak is written top left. */
function chart(id, values) {
  const svg = document.getElementById(id);
  const max = Math.max(1, ...values);
  const w = 300 / values.length;
  const nodes = [];
  values.forEach((v, i) => {
    if (!v) return;
    const h = Math.max(1, (v / max) * 48);
    const r = document.createElementNS(SVG, 'rect');
    r.setAttribute('class', 'bar');
    r.setAttribute('x', String(i * w + 0.5));
    r.setAttribute('width', String(Math.max(1, w - 1)));
    r.setAttribute('y', String(60 - h));
    r.setAttribute('height', String(h));
    const title = document.createElementNS(SVG, 'title');
    title.textContent = `${values.length - 1 - i} min ago: ${v}`;
    r.appendChild(title);
    nodes.push(r);
  });
  const axis = document.createElementNS(SVG, 'line');
  axis.setAttribute('class', 'axis');
  axis.setAttribute('x1', '0'); axis.setAttribute('x2', '300');
  axis.setAttribute('y1', '59.5'); axis.setAttribute('y2', '59.5');
  nodes.push(axis);
  const label = document.createElementNS(SVG, 'text');
  label.setAttribute('x', '2'); label.setAttribute('y', '9');
  label.textContent = `max ${fmt(Math.max(...values))}`;
  nodes.push(label);
  svg.replaceChildren(...nodes);
}

let retry = 500;
function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/console/apps/${encodeURIComponent(appId)}/feed`);
  ws.onopen = () => { feedStatus.textContent = 'live'; feedStatus.className = 'badge live'; retry = 500; };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === 'event') add(msg);
    else if (msg.type === 'state') showState(msg);
    else if (msg.type === 'skipped') {
      skipped += msg.n;
      document.getElementById('skipped').textContent = `${skipped} events skipped`;
    } else if (msg.type === 'deleted') {
      feedStatus.textContent = 'app deleted';
    }
  };
  ws.onclose = async () => {
    feedStatus.textContent = 'reconnecting';
    feedStatus.className = 'badge down';
    try {
      const res = await fetch('/console/api/apps', { cache: 'no-store' });
      if (res.status === 401) { location.href = '/console'; return; }
    } catch { /* server away: retry */ }
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
}
connect();

document.getElementById('send').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const status = document.getElementById('send-status');
  const data = document.getElementById('send-data').value;
  try { JSON.parse(data); } catch (e) { status.textContent = `Data is not JSON: ${e.message}`; return; }
  status.textContent = 'sending';
  try {
    const res = await fetch(`/console/apps/${encodeURIComponent(appId)}/events`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        channel: document.getElementById('send-channel').value,
        event: document.getElementById('send-event').value,
        data,
      }),
    });
    const body = await res.json().catch(() => ({}));
    status.textContent = res.ok ? 'sent' : `refused (${res.status}): ${body.error || ''}`;
  } catch (e) {
    status.textContent = `failed: ${e}`;
  }
});
