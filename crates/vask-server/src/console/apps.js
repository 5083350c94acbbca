'use strict';
// The apps page: every app with its live connection count and today's usage,
// refreshed every two seconds.

async function refresh() {
  const status = document.getElementById('apps-status');
  try {
    const res = await fetch('/console/api/apps', { cache: 'no-store' });
    if (res.status === 401) { location.href = '/console'; return; }
    const body = await res.json();
    const tbody = document.querySelector('#apps tbody');
    const rows = body.apps.map((a) => {
      const tr = row(['', a.key, a.enabled ? 'enabled' : 'disabled', fmt(a.connections), fmt(a.broadcasts), fmt(a.deliveries)], [3, 4, 5]);
      tr.dataset.app = a.id;
      const link = el('a', '', a.id);
      link.href = `/console/apps/${encodeURIComponent(a.id)}`;
      tr.firstChild.appendChild(link);
      return tr;
    });
    tbody.replaceChildren(...rows);
    status.textContent = `${body.apps.length} app(s), updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    status.textContent = `Could not load the apps: ${e}`;
  }
}

refresh();
setInterval(refresh, 2000);
