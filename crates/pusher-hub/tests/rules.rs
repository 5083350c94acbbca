//! One test per protocol rule the hub enforces, each asserting the exact
#![allow(unused_must_use)]
//! frames the outboxes received.

mod support;

use std::sync::Arc;

use std::time::Duration;

use pusher_hub::{Action, Hub, Millis, Notification, Publish};
use pusher_proto::http::InfoRequest;
use pusher_proto::{ChannelName, ErrorCode};
use support::{Client, Notes, Recorder, config};

/// A moment, in milliseconds.
fn ms(n: u64) -> Millis {
    Millis::from_millis(n)
}

fn hub() -> Arc<Hub> {
    Arc::new(Hub::new(config()))
}

fn hub_with_notes() -> (Arc<Hub>, Arc<Notes>) {
    let notes = Arc::new(Notes::default());
    (
        Arc::new(Hub::new(config()).with_notifications(notes.clone())),
        notes,
    )
}

fn publish(
    hub: &Hub,
    channels: &[&str],
    event: &str,
    data: &str,
    now: u64,
) -> pusher_hub::PublishOutcome {
    let names: Vec<ChannelName> = channels
        .iter()
        .map(|c| ChannelName::new(c).unwrap())
        .collect();
    hub.publish(
        &Publish {
            channels: &names,
            event,
            data,
            except: None,
            info: InfoRequest::default(),
        },
        ms(now),
    )
}

#[test]
fn connection_established_carries_socket_id_and_activity_timeout() {
    let hub = hub();
    let out = Arc::new(Recorder::default());
    let s = hub.connect(out.clone(), ms(0)).unwrap();
    let id = s.socket_id().to_string();
    assert_eq!(
        out.take(),
        [format!(
            r#"{{"event":"pusher:connection_established","data":"{{\"socket_id\":\"{id}\",\"activity_timeout\":120}}"}}"#
        )]
    );
}

#[test]
fn connection_quota_refuses_with_4004_and_frees_slots() {
    let mut c = config();
    c.limits.max_connections = Some(1);
    let hub = Arc::new(Hub::new(c));
    let a = hub.connect(Arc::new(Recorder::default()), ms(0)).unwrap();
    assert_eq!(
        hub.connect(Arc::new(Recorder::default()), ms(0))
            .unwrap_err(),
        ErrorCode::OverConnectionQuota
    );
    a.close(ms(0));
    assert!(hub.connect(Arc::new(Recorder::default()), ms(0)).is_ok());
}

#[test]
fn public_subscribe_succeeds_and_receives_publishes() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    a.subscribe("news");
    assert_eq!(
        a.take(),
        [r#"{"event":"pusher_internal:subscription_succeeded","channel":"news","data":"{}"}"#]
    );
    let out = publish(&hub, &["news"], "update", r#"{"n":1}"#, 0);
    assert_eq!(out.delivery.delivered, 1);
    assert_eq!(
        a.take(),
        [r#"{"event":"update","channel":"news","data":"{\"n\":1}"}"#]
    );
}

#[test]
fn duplicate_subscribe_answers_succeeded_again() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    a.subscribe("news");
    a.subscribe("news");
    let ok = r#"{"event":"pusher_internal:subscription_succeeded","channel":"news","data":"{}"}"#;
    assert_eq!(a.take(), [ok, ok]);
    publish(&hub, &["news"], "e", "x", 0);
    assert_eq!(a.take().len(), 1, "subscribed once");
}

#[test]
fn invalid_channel_names_are_refused_with_invalid_channel() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    a.subscribe("bad name!");
    let f = a.take();
    assert_eq!(f.len(), 1);
    assert!(f[0].starts_with(r#"{"event":"pusher:subscription_error","channel":"bad name!","data":"{\"type\":\"InvalidChannel\""#), "{}", f[0]);
    assert!(f[0].contains(r#"\"status\":400"#));
    let long = "a".repeat(201);
    a.subscribe(&long);
    assert!(a.take()[0].contains("InvalidChannel"));
}

#[test]
fn private_subscribe_needs_a_valid_signature() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    a.send(
        r#"{"event":"pusher:subscribe","data":{"channel":"private-x","auth":""}}"#,
        0,
    );
    let f = a.take();
    assert!(f[0].starts_with(r#"{"event":"pusher:subscription_error","channel":"private-x","data":"{\"type\":\"AuthError\""#));
    assert!(f[0].contains(r#"\"status\":401"#));
    // A signature for another socket fails too.
    let other = pusher_auth::sign_channel(support::KEY, support::SECRET, "1.1", "private-x", None);
    a.send(
        &format!(
            r#"{{"event":"pusher:subscribe","data":{{"channel":"private-x","auth":"{other}"}}}}"#
        ),
        0,
    );
    assert!(a.take()[0].contains("AuthError"));
    a.subscribe_private("private-x");
    assert_eq!(
        a.take(),
        [r#"{"event":"pusher_internal:subscription_succeeded","channel":"private-x","data":"{}"}"#]
    );
    a.subscribe_private("private-encrypted-x");
    assert_eq!(
        a.take(),
        [
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"private-encrypted-x","data":"{}"}"#
        ]
    );
}

#[test]
fn presence_members_join_and_leave_once_per_user() {
    let (hub, notes) = hub_with_notes();
    let mut a = Client::connect(&hub);
    a.subscribe_presence(
        "presence-room",
        r#"{"user_id":"1","user_info":{"name":"A"}}"#,
    );
    assert_eq!(
        a.take(),
        [
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-room","data":"{\"presence\":{\"ids\":[\"1\"],\"hash\":{\"1\":{\"name\":\"A\"}},\"count\":1}}"}"#
        ]
    );
    // user 2, numeric id: stored and sent as a string.
    let mut b = Client::connect(&hub);
    b.subscribe_presence("presence-room", r#"{"user_id":2}"#);
    assert_eq!(
        a.take(),
        [
            r#"{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"2\"}"}"#
        ]
    );
    let snapshot = b.take();
    assert!(snapshot[0].contains(r#"\"count\":2"#), "{}", snapshot[0]);
    // A second tab of user 2: no member_added.
    let mut b2 = Client::connect(&hub);
    b2.subscribe_presence("presence-room", r#"{"user_id":2}"#);
    assert!(a.take().is_empty());
    assert_eq!(
        hub.users(&ChannelName::new("presence-room").unwrap()),
        ["1", "2"]
    );
    b2.session.close(ms(0));
    assert!(a.take().is_empty(), "user 2 still has a tab");
    b.session.close(ms(0));
    assert_eq!(
        a.take(),
        [
            r#"{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"2\"}"}"#
        ]
    );
    let n = notes.take();
    assert!(n.contains(&Notification::MemberAdded {
        channel: "presence-room".into(),
        user_id: "2".into()
    }));
    assert_eq!(
        n.iter()
            .filter(|x| matches!(x, Notification::MemberAdded { .. }))
            .count(),
        2,
        "users 1 and 2, once each"
    );
    assert!(n.contains(&Notification::MemberRemoved {
        channel: "presence-room".into(),
        user_id: "2".into()
    }));
}

#[test]
fn presence_limits_refuse_with_limit_reached() {
    let mut c = config();
    c.limits.max_presence_members = 1;
    c.limits.max_user_info_bytes = 10;
    c.limits.max_user_id_len = 3;
    let hub = Arc::new(Hub::new(c));
    let mut a = Client::connect(&hub);
    a.subscribe_presence("presence-r", r#"{"user_id":"1"}"#);
    a.take();
    let mut b = Client::connect(&hub);
    b.subscribe_presence("presence-r", r#"{"user_id":"2"}"#);
    let f = b.take();
    assert!(
        f[0].contains(r#"\"type\":\"LimitReached\""#) && f[0].contains("403"),
        "{}",
        f[0]
    );
    // The same user again is not a new member.
    b.subscribe_presence("presence-r", r#"{"user_id":"1"}"#);
    assert!(b.take()[0].contains("subscription_succeeded"));
    let mut c = Client::connect(&hub);
    c.subscribe_presence(
        "presence-s",
        r#"{"user_id":"1","user_info":{"name":"a long name"}}"#,
    );
    assert!(c.take()[0].contains(r#"LimitReached\",\"error\":\"user_info"#));
    c.subscribe_presence("presence-s", r#"{"user_id":"1234"}"#);
    assert!(c.take()[0].contains(r#"LimitReached\",\"error\":\"user_id"#));
    c.send(
        r#"{"event":"pusher:subscribe","data":{"channel":"presence-s","auth":"x:y"}}"#,
        0,
    );
    assert!(
        c.take()[0].contains("InvalidChannel"),
        "presence without channel_data"
    );
}

#[test]
fn cache_channels_replay_the_last_event_or_miss() {
    let (hub, notes) = hub_with_notes();
    let mut a = Client::connect(&hub);
    a.subscribe("cache-x");
    assert_eq!(
        a.take(),
        [
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"cache-x","data":"{}"}"#,
            r#"{"event":"pusher:cache_miss","channel":"cache-x","data":"{}"}"#
        ]
    );
    assert!(notes.take().contains(&Notification::CacheMiss {
        channel: "cache-x".into()
    }));
    // A second miss within 30 s: frame yes, notification no.
    let mut a2 = Client::connect(&hub);
    a2.subscribe("cache-x");
    assert_eq!(a2.take().len(), 2);
    assert!(
        !notes
            .take()
            .iter()
            .any(|n| matches!(n, Notification::CacheMiss { .. }))
    );

    publish(&hub, &["cache-x"], "e", "v1", 1000);
    a.take();
    let mut b = Client::connect(&hub);
    b.send(
        r#"{"event":"pusher:subscribe","data":{"channel":"cache-x"}}"#,
        2000,
    );
    assert_eq!(
        b.take(),
        [
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"cache-x","data":"{}"}"#,
            r#"{"event":"e","channel":"cache-x","data":"v1"}"#
        ]
    );
    let info = InfoRequest {
        cache: true,
        ..Default::default()
    };
    let ch = hub.channel_info(&ChannelName::new("cache-x").unwrap(), info, ms(2000));
    assert_eq!(ch.cache.unwrap().ttl, 30 * 60 - 1);
    // After the TTL the cache is gone.
    let later = 1000 + 30 * 60 * 1000;
    let mut c = Client::connect(&hub);
    c.send(
        r#"{"event":"pusher:subscribe","data":{"channel":"cache-x"}}"#,
        later,
    );
    assert!(c.take()[1].contains("cache_miss"));
}

#[test]
fn cache_survives_without_subscribers_until_ttl_and_then_is_forgotten() {
    let hub = hub();
    assert_eq!(hub.poll_timeout(), None, "no timer without a reason");
    publish(&hub, &["private-cache-y"], "e", "v", 0);
    assert_eq!(hub.channel_count(), 1);
    assert_eq!(hub.poll_timeout(), Some(ms(30 * 60 * 1000)));
    let _ = hub.handle_timeout(ms(30 * 60 * 1000 - 1));
    assert_eq!(hub.channel_count(), 1);
    let _ = hub.handle_timeout(ms(30 * 60 * 1000));
    assert_eq!(hub.channel_count(), 0);
    assert!(hub.is_empty());
    assert_eq!(hub.poll_timeout(), None);
}

#[test]
fn client_events_follow_every_rule() {
    let (hub, notes) = hub_with_notes();
    let mut a = Client::connect(&hub);
    let mut b = Client::connect(&hub);
    a.subscribe_presence("presence-c", r#"{"user_id":"u1"}"#);
    b.subscribe_presence("presence-c", r#"{"user_id":"u2"}"#);
    a.subscribe("public-c");
    a.take();
    b.take();
    let ev = r#"{"event":"client-typing","channel":"presence-c","data":{"t":1}}"#;
    assert_eq!(a.send(ev, 0), Action::Continue);
    assert!(a.take().is_empty(), "not echoed");
    assert_eq!(
        b.take(),
        [r#"{"event":"client-typing","channel":"presence-c","data":"{\"t\":1}","user_id":"u1"}"#]
    );
    assert!(
        notes
            .take()
            .iter()
            .any(|n| matches!(n, Notification::ClientEvent { user_id: Some(u), .. } if u == "u1"))
    );

    // Public channel: refused, connection stays.
    a.send(r#"{"event":"client-x","channel":"public-c","data":{}}"#, 0);
    assert!(a.take()[0].starts_with(r#"{"event":"pusher:error","data":{"code":4009"#));
    // Not subscribed.
    a.send(
        r#"{"event":"client-x","channel":"private-zzz","data":{}}"#,
        0,
    );
    assert!(a.take()[0].contains("not a member"));
    // Rate limit: 10 per second, the 11th gets 4301.
    for _ in 0..9 {
        a.send(ev, 100);
    }
    assert!(a.take().is_empty());
    assert_eq!(a.send(ev, 200), Action::Continue);
    assert_eq!(
        a.take(),
        [
            r#"{"event":"pusher:error","data":{"code":4301,"message":"Client event rejected due to rate limit"}}"#
        ]
    );
    assert_eq!(b.take().len(), 9, "the first of the second was sent at 0");
    a.send(ev, 1000);
    assert_eq!(b.take().len(), 1, "a new second");
}

#[test]
fn client_events_disabled_per_app_and_refused_on_encrypted() {
    let mut c = config();
    c.client_events = false;
    let hub = Arc::new(Hub::new(c));
    let mut a = Client::connect(&hub);
    a.subscribe_private("private-a");
    a.take();
    a.send(r#"{"event":"client-x","channel":"private-a","data":{}}"#, 0);
    assert!(a.take()[0].contains("not enabled"));

    let hub = hub_with_notes().0;
    let mut a = Client::connect(&hub);
    a.subscribe_private("private-encrypted-a");
    a.take();
    a.send(
        r#"{"event":"client-x","channel":"private-encrypted-a","data":{}}"#,
        0,
    );
    assert!(a.take()[0].contains("only accepted on private and presence"));
}

#[test]
fn signin_succeeds_and_server_to_user_is_restricted() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    a.subscribe("#server-to-user-42");
    assert!(a.take()[0].contains(r#"AuthError\",\"error\":\"only a connection signed in"#));
    let ud = r#"{"id":"42","user_info":{"name":"Ann"}}"#;
    assert_eq!(a.signin(ud), Action::Continue);
    let inner = format!(r#"{{"user_data":{}}}"#, serde_json::to_string(ud).unwrap());
    let expected = format!(
        r#"{{"event":"pusher:signin_success","data":{}}}"#,
        serde_json::to_string(&inner).unwrap()
    );
    assert_eq!(a.take(), [expected]);
    a.subscribe("#server-to-user-42");
    assert!(a.take()[0].contains("subscription_succeeded"));
    publish(&hub, &["#server-to-user-42"], "hello", "{}", 0);
    assert_eq!(
        a.take(),
        [r##"{"event":"hello","channel":"#server-to-user-42","data":"{}"}"##]
    );
    // Another user id on the same connection is refused.
    assert_eq!(a.signin(r#"{"id":"43"}"#), Action::Continue);
    assert!(a.take()[0].starts_with(r#"{"event":"pusher:error","data":{"code":4009"#));
}

#[test]
fn bad_signin_is_4009_and_closes_only_when_signin_is_required() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    let action = a.send(
        r#"{"event":"pusher:signin","data":{"auth":"k:bad","user_data":"{\"id\":\"1\"}"}}"#,
        0,
    );
    assert_eq!(action, Action::Continue);
    assert!(a.take()[0].starts_with(r#"{"event":"pusher:error","data":{"code":4009"#));
    // Empty id is refused even when signed.
    a.signin(r#"{"id":""}"#);
    assert!(a.take()[0].contains("4009"));

    let mut c = config();
    c.signin_timeout = Some(Duration::from_secs(30));
    let hub = Arc::new(Hub::new(c));
    let mut a = Client::connect(&hub);
    let action = a.send(
        r#"{"event":"pusher:signin","data":{"auth":"k:bad","user_data":"{\"id\":\"1\"}"}}"#,
        0,
    );
    assert_eq!(action, Action::Close(ErrorCode::Unauthorized));
    // Timeout without signing in.
    let mut b = Client::connect(&hub);
    assert_eq!(b.session.next_timeout(), ms(30_000));
    assert_eq!(
        b.session.handle_timeout(ms(30_000)).action,
        Action::Close(ErrorCode::Unauthorized)
    );
    assert!(b.take()[0].contains("Connection not authorized within timeout."));
    // Signing in (or joining a private channel) clears the deadline.
    let mut c = Client::connect(&hub);
    c.signin(r#"{"id":"1"}"#);
    assert_eq!(
        c.session.handle_timeout(ms(30_000)).action,
        Action::Continue
    );
}

#[test]
fn watchlist_reports_status_and_changes() {
    let hub = hub();
    let mut w = Client::connect(&hub);
    let mut u2 = Client::connect(&hub);
    u2.signin(r#"{"id":"2"}"#);
    w.signin(r#"{"id":"1","watchlist":["2","3"]}"#);
    let f = w.take();
    assert_eq!(f.len(), 2);
    assert_eq!(
        f[1],
        r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"2\"]},{\"name\":\"offline\",\"user_ids\":[\"3\"]}]}"}"#
    );
    let mut u3 = Client::connect(&hub);
    u3.signin(r#"{"id":"3"}"#);
    assert_eq!(
        w.take(),
        [
            r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"3\"]}]}"}"#
        ]
    );
    u2.session.close(ms(0));
    assert_eq!(
        w.take(),
        [
            r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"offline\",\"user_ids\":[\"2\"]}]}"}"#
        ]
    );
}

#[test]
fn watchlist_over_the_limit_warns_with_4302() {
    let hub = hub();
    let mut w = Client::connect(&hub);
    let ids: Vec<String> = (0..101).map(|i| format!("\"{i}\"")).collect();
    w.signin(&format!(r#"{{"id":"me","watchlist":[{}]}}"#, ids.join(",")));
    let f = w.take();
    assert!(f[0].contains("signin_success"));
    assert_eq!(
        f[1],
        r#"{"event":"pusher:error","data":{"code":4302,"message":"Watchlist limit exceeded. Only the first 100 user IDs are accepted."}}"#
    );
    assert!(f[2].contains("watchlist_events"));
    assert!(!f[2].contains(r#"\"100\""#), "the 101st id is ignored");
}

#[test]
fn terminate_closes_only_signed_in_connections_of_the_user() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    let mut b = Client::connect(&hub);
    let mut other = Client::connect(&hub);
    a.signin(r#"{"id":"7"}"#);
    b.subscribe_presence("presence-t", r#"{"user_id":"7"}"#);
    other.signin(r#"{"id":"8"}"#);
    a.take();
    b.take();
    assert_eq!(hub.terminate_user("7"), 1);
    assert_eq!(
        a.take(),
        [
            r#"{"event":"pusher:error","data":{"code":4009,"message":"You got disconnected by the app."}}"#
        ]
    );
    assert_eq!(*a.out.closed.lock().unwrap(), Some(ErrorCode::Unauthorized));
    assert!(
        b.out.closed.lock().unwrap().is_none(),
        "presence-only is not signed in"
    );
    assert!(other.out.closed.lock().unwrap().is_none());
}

#[test]
fn publish_excludes_socket_id_and_reports_counts() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    let mut b = Client::connect(&hub);
    let mut p = Client::connect(&hub);
    a.subscribe("c1");
    b.subscribe("c1");
    p.subscribe_presence("presence-p", r#"{"user_id":"1"}"#);
    a.take();
    b.take();
    let names = [
        ChannelName::new("c1").unwrap(),
        ChannelName::new("presence-p").unwrap(),
    ];
    let info = InfoRequest {
        user_count: true,
        subscription_count: true,
        cache: false,
    };
    let out = hub.publish(
        &Publish {
            channels: &names,
            event: "e",
            data: "d",
            except: Some(a.session.socket_id()),
            info,
        },
        ms(0),
    );
    assert!(a.take().is_empty());
    assert_eq!(b.take().len(), 1);
    assert_eq!(out.delivery.delivered, 2);
    assert_eq!(out.channels["c1"].subscription_count, Some(2));
    assert_eq!(out.channels["c1"].user_count, None);
    assert_eq!(out.channels["presence-p"].user_count, Some(1));
}

#[test]
fn queries_list_occupied_channels_with_prefix_filter() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    a.subscribe("news");
    a.subscribe_presence("presence-a", r#"{"user_id":"1"}"#);
    a.subscribe_presence("presence-b", r#"{"user_id":"1"}"#);
    publish(&hub, &["cache-unoccupied"], "e", "d", 0);
    let all = hub.channels("", InfoRequest::default());
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        ["news", "presence-a", "presence-b"]
    );
    let info = InfoRequest {
        user_count: true,
        ..Default::default()
    };
    let p = hub.channels("presence-", info);
    assert_eq!(p.len(), 2);
    assert_eq!(p["presence-a"].user_count, Some(1));
    let ch = hub.channel_info(
        &ChannelName::new("nobody").unwrap(),
        InfoRequest::default(),
        ms(0),
    );
    assert!(!ch.occupied);
}

#[test]
fn subscription_count_is_sent_on_change_when_enabled() {
    let mut c = config();
    c.subscription_count = true;
    c.subscription_count_threshold = 2;
    let notes = Arc::new(Notes::default());
    let hub = Arc::new(Hub::new(c).with_notifications(notes.clone()));
    let mut a = Client::connect(&hub);
    a.subscribe("counted");
    assert_eq!(
        a.take(),
        [
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"counted","data":"{}"}"#,
            r#"{"event":"pusher_internal:subscription_count","channel":"counted","data":"{\"subscription_count\":1}"}"#
        ]
    );
    let mut b = Client::connect(&hub);
    b.subscribe("counted");
    assert!(a.take()[0].contains(r#"subscription_count\":2"#));
    // Above the threshold: throttled to once per 5 s, sent by handle_timeout.
    let mut c3 = Client::connect(&hub);
    c3.send(
        r#"{"event":"pusher:subscribe","data":{"channel":"counted"}}"#,
        1000,
    );
    assert!(a.take().is_empty());
    // The hub says when to call it back: when the throttle allows.
    assert_eq!(hub.poll_timeout(), Some(ms(5000)));
    let _ = hub.handle_timeout(ms(4999));
    assert!(a.take().is_empty());
    assert_eq!(hub.poll_timeout(), Some(ms(5000)));
    let _ = hub.handle_timeout(ms(5000));
    assert_eq!(
        a.take(),
        [
            r#"{"event":"pusher_internal:subscription_count","channel":"counted","data":"{\"subscription_count\":3}"}"#
        ]
    );
    assert!(notes.take().contains(&Notification::SubscriptionCount {
        channel: "counted".into(),
        subscription_count: 3
    }));
    // Presence channels never get it.
    let mut p = Client::connect(&hub);
    p.subscribe_presence("presence-q", r#"{"user_id":"1"}"#);
    assert_eq!(p.take().len(), 1);
}

#[test]
fn occupied_and_vacated_notifications() {
    let (hub, notes) = hub_with_notes();
    let mut a = Client::connect(&hub);
    a.subscribe("room");
    let mut b = Client::connect(&hub);
    b.subscribe("room");
    a.send(
        r#"{"event":"pusher:unsubscribe","data":{"channel":"room"}}"#,
        0,
    );
    b.session.close(ms(0));
    let n = notes.take();
    assert_eq!(
        n,
        [
            Notification::ChannelOccupied {
                channel: "room".into()
            },
            Notification::ChannelVacated {
                channel: "room".into()
            }
        ]
    );
}

#[test]
fn liveness_pings_then_closes_with_4201() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    assert_eq!(a.session.next_timeout(), ms(120_000));
    assert_eq!(
        a.session.handle_timeout(ms(120_000)).action,
        Action::Continue
    );
    assert_eq!(a.take(), [r#"{"event":"pusher:ping","data":"{}"}"#]);
    assert_eq!(a.session.next_timeout(), ms(150_000));
    assert_eq!(
        a.session.handle_timeout(ms(150_000)).action,
        Action::Close(ErrorCode::PongNotReceived)
    );
    assert_eq!(
        a.take(),
        [r#"{"event":"pusher:error","data":{"code":4201,"message":"Pong reply not received"}}"#]
    );
    // Any frame resets it; a client ping is answered.
    let mut b = Client::connect(&hub);
    let _ = b.session.handle_timeout(ms(120_000)).action;
    b.send(r#"{"event":"pusher:ping","data":{}}"#, 130_000);
    assert_eq!(b.take()[1], r#"{"event":"pusher:pong","data":"{}"}"#);
    assert_eq!(b.session.next_timeout(), ms(250_000));
}

#[test]
fn malformed_frames_get_an_error_and_the_connection_stays() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    assert_eq!(a.send("not json", 0), Action::Continue);
    assert!(a.take()[0].starts_with(r#"{"event":"pusher:error","data":{"code":null"#));
    assert_eq!(
        a.send(r#"{"event":"pusher:subscribe","data":{}}"#, 0),
        Action::Continue
    );
    assert_eq!(a.take().len(), 1);
}

#[test]
fn full_outboxes_are_counted_not_fatal() {
    let hub = hub();
    let slow = Arc::new(Recorder {
        capacity: Some(2),
        ..Default::default()
    });
    let mut s = hub.connect(slow.clone(), ms(0)).unwrap();
    let _ = s.handle_text(
        br#"{"event":"pusher:subscribe","data":{"channel":"n"}}"#,
        ms(0),
    );
    let out = publish(&hub, &["n"], "e", "d", 0);
    assert_eq!(out.delivery.dropped, 1);
}

#[test]
fn after_everyone_leaves_the_hub_holds_nothing() {
    let hub = hub();
    let mut clients: Vec<Client> = (0..5).map(|_| Client::connect(&hub)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.subscribe("a");
        c.subscribe_presence("presence-x", &format!(r#"{{"user_id":"{}"}}"#, i % 2));
        c.signin(&format!(r#"{{"id":"{i}","watchlist":["1","2"]}}"#));
    }
    assert!(!hub.is_empty());
    drop(clients);
    assert!(hub.is_empty());
}

#[test]
fn cache_miss_notifications_stay_throttled_when_the_channel_empties() {
    let (hub, notes) = hub_with_notes();
    let mut a = Client::connect(&hub);
    for i in 0..5 {
        a.send(
            r#"{"event":"pusher:subscribe","data":{"channel":"cache-x"}}"#,
            i * 100,
        );
        a.send(
            r#"{"event":"pusher:unsubscribe","data":{"channel":"cache-x"}}"#,
            i * 100,
        );
    }
    let misses = notes
        .take()
        .iter()
        .filter(|n| matches!(n, Notification::CacheMiss { .. }))
        .count();
    assert_eq!(misses, 1, "at most once per channel per 30 s");
    a.send(
        r#"{"event":"pusher:subscribe","data":{"channel":"cache-x"}}"#,
        30_000,
    );
    assert_eq!(
        notes
            .take()
            .iter()
            .filter(|n| matches!(n, Notification::CacheMiss { .. }))
            .count(),
        1
    );
    a.session.close(ms(30_000));
    let _ = hub.handle_timeout(ms(60_001));
    assert!(hub.is_empty());
}

#[test]
fn any_signed_in_user_id_has_a_reachable_user_channel() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    assert_eq!(
        a.signin(r#"{"id":"auth0|123 x+y@z.com"}"#),
        Action::Continue
    );
    a.take();
    a.subscribe("#server-to-user-auth0|123 x+y@z.com");
    assert!(a.take()[0].contains("subscription_succeeded"));
    publish(
        &hub,
        &["#server-to-user-auth0|123 x+y@z.com"],
        "hi",
        "{}",
        0,
    );
    assert_eq!(a.take().len(), 1);
}

#[test]
fn lone_surrogate_escapes_are_refused_without_a_panic() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    a.subscribe_private("private-s");
    a.take();
    for frame in [
        r#"{"event":"pusher:subscribe","data":{"channel":"presence-a","auth":"x","channel_data":"\ud800"}}"#,
        r#"{"event":"pusher:signin","data":{"auth":"x","user_data":"\ud800"}}"#,
        r#"{"event":"client-x","channel":"private-s","data":"\ud800"}"#,
        r#"{"event":"pusher:subscribe","data":{"channel":"presence-a","auth":"x","channel_data":"{\"user_id\":\"1\",\"user_info\":\"\\ud800\"}"}}"#,
    ] {
        assert_eq!(a.send(frame, 0), Action::Continue, "{frame}");
        let f = a.take();
        assert!(f[0].starts_with(r#"{"event":"pusher:"#), "{f:?}");
    }
    assert!(a.take().is_empty());
}

/// Notifications leave the hub after its locks are released: a sink that
/// queries the hub from inside `notify` does not deadlock.
#[test]
fn a_notification_sink_may_query_the_hub() {
    use std::sync::{OnceLock, Weak};

    #[derive(Default)]
    struct Querying {
        hub: OnceLock<Weak<Hub>>,
        seen: std::sync::Mutex<Vec<usize>>,
    }
    impl pusher_hub::NotificationSink for Querying {
        fn notify(&self, _: Notification) {
            let hub = self.hub.get().and_then(Weak::upgrade).unwrap();
            let n = hub.channels("", InfoRequest::default()).len();
            let _ = hub.users(&ChannelName::new("presence-q").unwrap());
            let _ = hub.channel_info(
                &ChannelName::new("presence-q").unwrap(),
                InfoRequest::default(),
                ms(0),
            );
            self.seen.lock().unwrap().push(n);
        }
    }
    let sink = Arc::new(Querying::default());
    let mut c = config();
    c.subscription_count = true;
    let hub = Arc::new(Hub::new(c).with_notifications(sink.clone()));
    sink.hub.set(Arc::downgrade(&hub)).unwrap();
    let mut a = Client::connect(&hub);
    a.subscribe_presence("presence-q", r#"{"user_id":"1"}"#);
    a.subscribe("cache-z");
    a.send(
        r#"{"event":"pusher:unsubscribe","data":{"channel":"presence-q"}}"#,
        0,
    );
    drop(a);
    // occupied, member_added, occupied, cache_miss, subscription_count, ...
    assert!(sink.seen.lock().unwrap().len() >= 6);
}

/// The hub's maps are seeded by the hub's seed: the same inputs give the
/// same frames, member order included.
#[test]
fn the_same_seed_gives_the_same_frames() {
    let run = |seed: u64| {
        let hub = Arc::new(Hub::new(config()).with_seed(seed));
        let mut clients: Vec<Client> = (0..12).map(|_| Client::connect(&hub)).collect();
        let mut frames = Vec::new();
        for (i, c) in clients.iter_mut().enumerate() {
            c.subscribe_presence("presence-room", &format!(r#"{{"user_id":"user-{i}"}}"#));
            frames.extend(c.take());
        }
        frames.extend(hub.channels("", InfoRequest::default()).into_keys());
        frames
    };
    assert_eq!(run(42), run(42));
}

/// A meter over a real [`pusher_hub::Usage`] at a fixed wall-clock time.
struct FixedMeter {
    usage: pusher_hub::Usage,
    quotas: pusher_hub::Quotas,
    now: u64,
}

impl pusher_hub::Meter for FixedMeter {
    fn admit(&self, n: u64) -> Result<(), pusher_hub::QuotaExceeded> {
        self.usage.admit(n, &self.quotas, self.now)
    }
    fn delivered(&self, copies: u64) {
        self.usage.delivered(copies, self.now)
    }
}

#[test]
fn the_meter_counts_broadcasts_and_deliveries_and_refuses_client_events_over_quota() {
    // 2026-12-01T12:00:00Z.
    let now = 1_796_083_200 + 12 * 3600;
    let meter = Arc::new(FixedMeter {
        usage: pusher_hub::Usage::new(now),
        quotas: pusher_hub::Quotas {
            max_broadcasts_per_day: Some(3),
            max_broadcasts_per_month: None,
        },
        now,
    });
    let hub = Arc::new(Hub::new(config()).with_meter(meter.clone()));
    let mut a = Client::connect(&hub);
    let mut b = Client::connect(&hub);
    let mut c = Client::connect(&hub);
    for x in [&mut a, &mut b, &mut c] {
        x.subscribe_private("private-c");
        x.take();
    }
    // An API publish (the API asks the meter; here only the fan-out is
    // counted): 3 copies.
    let _ = publish(&hub, &["private-c"], "e", "{}", 0);
    let ev = r#"{"event":"client-x","channel":"private-c","data":{}}"#;
    for _ in 0..3 {
        a.send(ev, 0);
    }
    // Three client events admitted, each to the 2 others.
    assert_eq!(b.take().len(), 4);
    assert_eq!(c.take().len(), 4);
    let s = meter.usage.snapshot(now);
    assert_eq!(s.day.counts.broadcasts, 3);
    assert_eq!(s.day.counts.deliveries, 3 + 3 * 2);
    assert_eq!(pusher_hub::rfc3339(s.month.start), "2026-12-01T00:00:00Z");
    // The fourth is over the quota: an error to the sender, nothing relayed.
    let taken = a.take();
    assert!(
        taken.iter().all(|f| f.contains("\"event\":\"e\"")),
        "{taken:?}"
    );
    assert_eq!(a.send(ev, 0), Action::Continue);
    assert_eq!(
        a.take(),
        [
            r#"{"event":"pusher:error","data":{"code":null,"message":"Quota exceeded: max_broadcasts_per_day is 3 broadcasts per UTC day"}}"#
        ]
    );
    assert!(b.take().is_empty() && c.take().is_empty());
    assert_eq!(meter.usage.snapshot(now).day.counts.deliveries, 9);
}

#[test]
fn a_refusal_is_kept_for_an_observer_until_taken() {
    use pusher_hub::{Refusal, Refused};
    let hub = hub();
    let mut a = Client::connect(&hub);
    a.subscribe("news");
    assert_eq!(a.session.take_refusal(), None, "nothing refused");
    a.send(
        r#"{"event":"pusher:subscribe","data":{"channel":"private-x","auth":""}}"#,
        0,
    );
    match a.session.take_refusal() {
        Some(Refused::Subscription(r @ Refusal::BadSignature(_))) => assert_eq!(r.status(), 401),
        other => panic!("expected a bad signature, got {other:?}"),
    }
    assert_eq!(a.session.take_refusal(), None, "taken once");
    // Client events are off in this config: refused, with the reason.
    a.send(
        r#"{"event":"client-x","channel":"private-x","data":"{}"}"#,
        0,
    );
    assert!(matches!(
        a.session.take_refusal(),
        Some(Refused::ClientEvent(_))
    ));
}

#[test]
fn set_config_applies_to_what_comes_next_and_keeps_what_is_in_place() {
    let hub = hub();
    let mut a = Client::connect(&hub);
    a.subscribe("news");
    a.take();
    let mut c = config();
    c.secret = "rotated".into();
    c.limits.max_connections = Some(1);
    c.app_id = "another id".into();
    hub.set_config(c);
    // The id is the hub's own; the rest is new.
    assert_eq!(hub.config().app_id, support::config().app_id);
    assert_eq!(hub.config().secret.expose(), "rotated");
    // The old secret's signature fails, the new one's works.
    let id = a.socket_id();
    let old = pusher_auth::sign_channel(support::KEY, support::SECRET, &id, "private-a", None);
    a.send(
        &format!(
            r#"{{"event":"pusher:subscribe","data":{{"channel":"private-a","auth":"{old}"}}}}"#
        ),
        0,
    );
    assert!(a.take()[0].contains("pusher:subscription_error"));
    let new = pusher_auth::sign_channel(support::KEY, "rotated", &id, "private-a", None);
    a.send(
        &format!(
            r#"{{"event":"pusher:subscribe","data":{{"channel":"private-a","auth":"{new}"}}}}"#
        ),
        0,
    );
    assert!(a.take()[0].contains("pusher_internal:subscription_succeeded"));
    // The open connection and its subscription stay; the new limit
    // refuses the next connection.
    assert_eq!(
        hub.connect(Arc::new(Recorder::default()), ms(0))
            .unwrap_err(),
        ErrorCode::OverConnectionQuota
    );
    publish(&hub, &["news"], "e", "{}", 0);
    assert_eq!(a.take().len(), 1);
}
