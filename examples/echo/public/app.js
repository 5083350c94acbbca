// Laravel Echo with the pusher broadcaster, configured as in a Laravel app's
// resources/js/echo.js, pointed at Vask.
(function () {
  'use strict';

  const cfg = JSON.parse(document.getElementById('echo-config').textContent);
  const $ = (id) => document.getElementById(id);
  const addItem = (listId, text, attrs) => {
    const li = document.createElement('li');
    li.textContent = text;
    Object.entries(attrs || {}).forEach(([k, v]) => li.setAttribute(k, v));
    $(listId).appendChild(li);
    return li;
  };

  window.Pusher = Pusher; // Echo's pusher connector looks for it here
  const EchoClass = Echo.default; // the IIFE build's global is the module
  const echo = new EchoClass({
    broadcaster: 'pusher',
    key: cfg.key,
    cluster: 'mt1', // required by pusher-js, unused once wsHost is set
    wsHost: cfg.wsHost,
    wsPort: cfg.wsPort,
    wssPort: cfg.wsPort,
    forceTLS: cfg.forceTLS,
    enabledTransports: cfg.forceTLS ? ['wss'] : ['ws'],
    disableStats: true,
    // authEndpoint defaults to /broadcasting/auth, like Laravel's Broadcast::routes().
  });
  window.echo = echo;

  const pusher = echo.connector.pusher;
  pusher.connection.bind('state_change', ({ current }) => {
    $('connection-state').textContent = current;
    $('socket-id').textContent = echo.socketId() || '-';
  });

  // Public channel. 'OrderShipped' is namespaced: the server sends App\Events\OrderShipped.
  // '.announcement' (leading dot) is a raw event name (broadcastAs()).
  echo.channel('orders')
    .subscribed(() => ($('orders-status').textContent = 'subscribed'))
    .listen('OrderShipped', (e) => addItem('orders', `order ${e.order.id} shipped by ${e.by}`))
    .listen('.announcement', (e) => addItem('announcements', e.text));

  // Private channel with client events: whisper / listenForWhisper.
  echo.private('chat')
    .subscribed(() => ($('chat-status').textContent = 'subscribed'))
    .error((e) => ($('chat-status').textContent = `error ${e && e.status}`))
    .listenForWhisper('typing', (e) => addItem('whispers', `${e.name} is typing`));

  // Laravel's notification channel.
  echo.private(`App.Models.User.${cfg.userId}`)
    .subscribed(() => ($('notifications-status').textContent = 'subscribed'))
    .notification((n) => addItem('notifications', `${n.from}: ${n.text} (${n.type})`));

  // Presence: here / joining / leaving.
  const renderMember = (u) => addItem('members', u.name, { 'data-user-id': String(u.id) });
  echo.join('room')
    .here((users) => {
      $('room-status').textContent = 'joined';
      $('members').replaceChildren();
      users.forEach(renderMember);
      addItem('room-log', `here: ${users.map((u) => u.name).join(', ')}`);
    })
    .joining((u) => {
      renderMember(u);
      addItem('room-log', `joining: ${u.name}`);
    })
    .leaving((u) => {
      document.querySelectorAll(`#members [data-user-id="${u.id}"]`).forEach((el) => el.remove());
      addItem('room-log', `leaving: ${u.name}`);
    })
    .error((e) => ($('room-status').textContent = `error ${e && e.status}`));

  // What axios would do in a Laravel app: CSRF token and X-Socket-ID on every call.
  async function post(url, body) {
    $('status').textContent = 'sending';
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-CSRF-TOKEN': document.querySelector('meta[name="csrf-token"]').content,
        'X-Socket-ID': echo.socketId() || '',
      },
      body: JSON.stringify(body),
    });
    $('status').textContent = res.ok ? 'sent' : `error ${res.status}`;
  }
  $('ship').addEventListener('click', () => post('/orders/ship', { id: $('order-id').value, toOthers: $('to-others').checked }));
  $('announce').addEventListener('click', () => post('/announce', { text: `announcement from ${cfg.userName}` }));
  $('notify-other').addEventListener('click', () => post('/notify', { to: cfg.userId === 1 ? 2 : 1, text: `hello from ${cfg.userName}` }));
  $('whisper').addEventListener('click', () => {
    echo.private('chat').whisper('typing', { name: cfg.userName });
    $('status').textContent = 'whispered';
  });
})();
