// The page's realtime code: plain pusher-js, configured from the server.
(function () {
  'use strict';

  const cfg = JSON.parse(document.getElementById('pusher-config').textContent);
  const $ = (id) => document.getElementById(id);
  const addItem = (listId, text, attrs) => {
    const li = document.createElement('li');
    li.textContent = text;
    Object.entries(attrs || {}).forEach(([k, v]) => li.setAttribute(k, v));
    $(listId).appendChild(li);
  };
  // Sent on every state-changing call (the server's CSRF defence).
  const headers = { 'X-Requested-By': 'vask-example' };

  const pusher = new Pusher(cfg.key, {
    cluster: 'mt1', // required by pusher-js, unused once wsHost is set
    wsHost: cfg.wsHost,
    wsPort: cfg.wsPort,
    wssPort: cfg.wsPort,
    forceTLS: cfg.forceTLS,
    enabledTransports: cfg.forceTLS ? ['wss'] : ['ws'],
    disableStats: true,
    channelAuthorization: { endpoint: '/pusher/auth', transport: 'ajax', headers },
    userAuthentication: { endpoint: '/pusher/user-auth', transport: 'ajax', headers },
  });
  window.pusher = pusher;

  pusher.connection.bind('state_change', ({ current }) => {
    $('connection-state').textContent = current;
    $('socket-id').textContent = pusher.connection.socket_id || '-';
  });

  // User sign-in: the server can then send to this user on all their connections.
  pusher.signin();
  pusher.user.signinDonePromise.then(() => {
    if (pusher.user.user_data) $('user-status').textContent = `signed in as ${pusher.user.user_data.id}`;
  });
  pusher.user.bind('pusher:signin_error', (e) => ($('user-status').textContent = `error ${e.status}`));
  pusher.user.bind('notice', (data) => addItem('notices', `${data.from}: ${data.text}`, { class: 'event' }));

  const feed = pusher.subscribe(cfg.publicChannel);
  feed.bind('pusher:subscription_succeeded', () => ($('public-status').textContent = 'subscribed'));
  feed.bind('message', (data) => addItem('feed', `${data.from}: ${data.text}`, { class: 'event' }));

  const own = pusher.subscribe(cfg.privateChannel);
  own.bind('pusher:subscription_succeeded', () => ($('private-status').textContent = 'subscribed'));
  own.bind('pusher:subscription_error', (err) => ($('private-status').textContent = `error ${err.status}`));
  own.bind('direct', (data) => addItem('private', `${data.from}: ${data.text}`, { class: 'event' }));

  const room = pusher.subscribe(cfg.presenceChannel);
  const renderMembers = () => {
    const to = $('to');
    const selected = to.value;
    $('members').replaceChildren();
    to.replaceChildren(new Option('everyone (public feed)', ''));
    room.members.each((member) => {
      const me = member.id === cfg.userId;
      addItem('members', member.info.name + (me ? ' (you)' : ''), { 'data-user-id': member.id });
      to.appendChild(new Option(`only ${member.info.name}`, member.id));
    });
    to.value = [...to.options].some((o) => o.value === selected) ? selected : '';
    $('member-count').textContent = String(room.members.count);
  };
  room.bind('pusher:subscription_succeeded', () => { $('presence-status').textContent = 'subscribed'; renderMembers(); });
  room.bind('pusher:subscription_error', (err) => ($('presence-status').textContent = `error ${err.status}`));
  room.bind('pusher:member_added', renderMembers);
  room.bind('pusher:member_removed', renderMembers);

  async function post(url, body) {
    $('send-status').textContent = 'sending';
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { ...headers, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        credentials: 'same-origin',
      });
      $('send-status').textContent = res.ok ? 'sent' : `error ${res.status}`;
      if (res.ok) $('message').value = '';
    } catch (e) {
      $('send-status').textContent = `error ${e}`;
    }
  }
  $('send-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    post('/trigger', { message: $('message').value, to: $('to').value });
  });
  $('notify').addEventListener('click', () => {
    if (!$('to').value) { $('send-status').textContent = 'choose a user to notify'; return; }
    post('/notify', { message: $('message').value, to: $('to').value });
  });
})();
