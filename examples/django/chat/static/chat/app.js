// The page's realtime code: plain pusher-js, configured from the server.
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("pusher-config").textContent);
  // CSRF stays on: pusher-js forwards Django's token on every auth request.
  const csrfToken = document.querySelector("[name=csrfmiddlewaretoken]").value;

  const $ = (id) => document.getElementById(id);
  const addItem = (listId, text, attrs) => {
    const li = document.createElement("li");
    li.textContent = text;
    Object.entries(attrs || {}).forEach(([k, v]) => li.setAttribute(k, v));
    $(listId).appendChild(li);
  };

  const pusher = new Pusher(cfg.key, {
    cluster: "mt1", // required by pusher-js, unused once wsHost is set
    wsHost: cfg.wsHost,
    wsPort: cfg.wsPort,
    wssPort: cfg.wsPort,
    forceTLS: cfg.forceTLS,
    enabledTransports: cfg.forceTLS ? ["wss"] : ["ws"],
    disableStats: true,
    channelAuthorization: {
      endpoint: cfg.authEndpoint,
      transport: "ajax",
      headers: { "X-CSRFToken": csrfToken },
    },
  });
  window.pusher = pusher; // handy in the console

  pusher.connection.bind("state_change", ({ current }) => {
    $("connection-state").textContent = current;
    $("socket-id").textContent = pusher.connection.socket_id || "-";
  });

  // Public channel: events triggered by POST /trigger/ without a recipient.
  const feed = pusher.subscribe(cfg.publicChannel);
  feed.bind("pusher:subscription_succeeded", () => ($("public-status").textContent = "subscribed"));
  feed.bind("message", (data) => addItem("feed", `${data.from}: ${data.text}`, { class: "event" }));

  // The user's private channel, authorized by POST /pusher/auth/.
  const own = pusher.subscribe(cfg.privateChannel);
  own.bind("pusher:subscription_succeeded", () => ($("private-status").textContent = "subscribed"));
  own.bind("pusher:subscription_error", (err) => ($("private-status").textContent = `error ${err.status}`));
  own.bind("direct", (data) => addItem("private", `${data.from}: ${data.text}`, { class: "event" }));

  // Presence room: channel_data comes from the logged-in Django user.
  const room = pusher.subscribe(cfg.presenceChannel);
  const renderMembers = () => {
    const list = $("members");
    const to = $("to");
    const selected = to.value;
    list.replaceChildren();
    to.replaceChildren(new Option("everyone (public feed)", ""));
    room.members.each((member) => {
      const me = member.id === cfg.userId;
      addItem("members", member.info.name + (me ? " (you)" : ""), { "data-user-id": member.id });
      to.appendChild(new Option(`only ${member.info.name}`, member.id));
    });
    to.value = [...to.options].some((o) => o.value === selected) ? selected : "";
    $("member-count").textContent = String(room.members.count);
  };
  room.bind("pusher:subscription_succeeded", () => {
    $("presence-status").textContent = "subscribed";
    renderMembers();
  });
  room.bind("pusher:subscription_error", (err) => ($("presence-status").textContent = `error ${err.status}`));
  room.bind("pusher:member_added", renderMembers);
  room.bind("pusher:member_removed", renderMembers);

  // Send: the Django view triggers with pusher-http-python.
  $("send-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    $("send-status").textContent = "sending";
    try {
      const res = await fetch(form.action, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken },
        body: new FormData(form),
        credentials: "same-origin",
      });
      $("send-status").textContent = res.ok ? "sent" : `error ${res.status}`;
      if (res.ok) $("message").value = "";
    } catch (e) {
      $("send-status").textContent = `error ${e}`;
    }
  });
})();
