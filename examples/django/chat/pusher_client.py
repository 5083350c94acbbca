"""The one pusher-http-python client of the app, built from the environment.

Exactly what an app on hosted Pusher has; pointing it at Vask is only a matter
of the variables:

    PUSHER_APP_ID=1 PUSHER_APP_KEY=vask-key PUSHER_APP_SECRET=vask-secret
    PUSHER_HOST=127.0.0.1 PUSHER_PORT=6001 PUSHER_SCHEME=http
"""
import os

import pusher

PUSHER_APP_ID = os.environ.get("PUSHER_APP_ID", "1")
PUSHER_KEY = os.environ.get("PUSHER_APP_KEY", "vask-key")
PUSHER_SECRET = os.environ.get("PUSHER_APP_SECRET", "vask-secret")
PUSHER_HOST = os.environ.get("PUSHER_HOST", "127.0.0.1")
PUSHER_PORT = int(os.environ.get("PUSHER_PORT", "6001"))
PUSHER_SSL = os.environ.get("PUSHER_SCHEME", "http") == "https"

pusher_client = pusher.Pusher(
    app_id=PUSHER_APP_ID,
    key=PUSHER_KEY,
    secret=PUSHER_SECRET,
    host=PUSHER_HOST,
    port=PUSHER_PORT,
    ssl=PUSHER_SSL,
)

# What the page's pusher-js needs (never the secret).
BROWSER_CONFIG = {
    "key": PUSHER_KEY,
    "wsHost": os.environ.get("PUSHER_WS_HOST", PUSHER_HOST),
    "wsPort": int(os.environ.get("PUSHER_WS_PORT", PUSHER_PORT)),
    "forceTLS": PUSHER_SSL,
}
