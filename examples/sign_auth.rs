//! What an app's auth endpoint does, with pusher-auth only: sign a private
//! and a presence channel and a user sign-in, and verify a webhook.
//!
//! Run: `cargo run -p vask-examples --example sign_auth`

use pusher_auth::{
    authenticate_user, authorize_channel, sign_webhook, verify_channel, verify_webhook,
};

fn main() {
    let (key, secret) = ("278d425bdf160c739803", "7ad3773142a6692b25b8");
    let socket_id = "1234.1234";

    // POST /pusher/auth with socket_id and channel_name: answer this JSON.
    let private = authorize_channel(key, secret, socket_id, "private-foobar", None);
    println!("private:  {}", serde_json::to_string(&private).unwrap());

    let channel_data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
    let presence = authorize_channel(
        key,
        secret,
        socket_id,
        "presence-foobar",
        Some(channel_data),
    );
    println!("presence: {}", serde_json::to_string(&presence).unwrap());

    // POST /pusher/user-auth: the sign-in answer.
    let user = authenticate_user(key, secret, socket_id, r#"{"id":"12345"}"#);
    println!("user:     {}", serde_json::to_string(&user).unwrap());

    // The server side checks the same signature, whole and in constant time.
    verify_channel(
        key,
        secret,
        socket_id,
        "private-foobar",
        None,
        &private.auth,
    )
    .unwrap();
    assert!(
        verify_channel(
            key,
            secret,
            "1234.1235",
            "private-foobar",
            None,
            &private.auth
        )
        .is_err()
    );

    // Webhooks: X-Pusher-Signature is the HMAC-SHA256 of the raw body.
    let body =
        br#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test"}]}"#;
    let signature = sign_webhook(secret, body);
    verify_webhook(secret, body, &signature).unwrap();
    println!("webhook signature: {signature}");
}
