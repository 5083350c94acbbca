from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from .pusher_client import BROWSER_CONFIG, pusher_client

PUBLIC_CHANNEL = "feed"
PRESENCE_CHANNEL = "presence-room"


def private_channel_for(user_pk):
    return f"private-user-{user_pk}"


def display_name(user):
    return user.get_full_name() or user.username


@login_required
def index(request):
    return render(
        request,
        "chat/index.html",
        {
            "pusher_config": {
                **BROWSER_CONFIG,
                "authEndpoint": "/pusher/auth/",
                "publicChannel": PUBLIC_CHANNEL,
                "privateChannel": private_channel_for(request.user.pk),
                "presenceChannel": PRESENCE_CHANNEL,
                "userId": str(request.user.pk),
                "userName": display_name(request.user),
            },
        },
    )


@require_POST
def pusher_auth(request):
    """pusher-js channel authorization (CSRF-protected like any other POST)."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "login required"}, status=403)

    channel_name = request.POST.get("channel_name", "")
    socket_id = request.POST.get("socket_id", "")
    user = request.user

    custom_data = None
    if channel_name.startswith("presence-"):
        if channel_name != PRESENCE_CHANNEL:
            return JsonResponse({"error": "unknown room"}, status=403)
        custom_data = {
            "user_id": str(user.pk),
            "user_info": {"name": display_name(user)},
        }
    elif channel_name.startswith("private-"):
        if channel_name != private_channel_for(user.pk):
            return JsonResponse({"error": "not your channel"}, status=403)
    else:
        return JsonResponse({"error": "no authorization needed"}, status=400)

    try:
        auth = pusher_client.authenticate(
            channel=channel_name, socket_id=socket_id, custom_data=custom_data
        )
    except ValueError as exc:  # malformed socket_id or channel name
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(auth)


@require_POST
def trigger(request):
    """Publish with the server SDK: to the public feed, or to one user's private channel."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "login required"}, status=403)

    text = request.POST.get("message", "").strip()[:500]
    if not text:
        return JsonResponse({"error": "message is required"}, status=400)
    to = request.POST.get("to", "").strip()
    if to:
        if not to.isdigit():
            return JsonResponse({"error": "to must be a user id"}, status=400)
        channel, event = private_channel_for(to), "direct"
    else:
        channel, event = PUBLIC_CHANNEL, "message"

    data = {"text": text, "from": display_name(request.user)}
    pusher_client.trigger(channel, event, data)
    return JsonResponse({"ok": True, "channel": channel, "event": event, "data": data})
