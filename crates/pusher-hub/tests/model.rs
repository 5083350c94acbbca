//! State-machine property test: random sequences of connect, subscribe
//! (valid and invalid auth), unsubscribe, signin, publish, client event and
//! disconnect, checked against a simple model after every step. After
//! everyone disconnects (and caches expire) the hub holds nothing.
#![allow(unused_must_use)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use std::time::Duration;

use pusher_hub::{Hub, Millis, Publish};
use pusher_proto::ChannelName;
use pusher_proto::http::InfoRequest;
use support::{Client, config};

const CHANNELS: [&str; 5] = [
    "pub",
    "private-p",
    "presence-q",
    "cache-c",
    "presence-cache-r",
];
const MAX_CONNS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Connect,
    Subscribe {
        conn: usize,
        channel: usize,
        user: u8,
        valid: bool,
    },
    Unsubscribe {
        conn: usize,
        channel: usize,
    },
    Signin {
        conn: usize,
        user: u8,
    },
    Publish {
        channel: usize,
        except: Option<usize>,
    },
    ClientEvent {
        conn: usize,
        channel: usize,
    },
    Disconnect {
        conn: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let conn = 0..MAX_CONNS;
    let ch = 0..CHANNELS.len();
    prop_oneof![
        2 => Just(Op::Connect),
        4 => (conn.clone(), ch.clone(), 0u8..3, prop::bool::weighted(0.8))
            .prop_map(|(conn, channel, user, valid)| Op::Subscribe { conn, channel, user, valid }),
        1 => (conn.clone(), ch.clone()).prop_map(|(conn, channel)| Op::Unsubscribe { conn, channel }),
        1 => (conn.clone(), 0u8..3).prop_map(|(conn, user)| Op::Signin { conn, user }),
        2 => (ch.clone(), prop::option::of(conn.clone())).prop_map(|(channel, except)| Op::Publish { channel, except }),
        2 => (conn.clone(), ch).prop_map(|(conn, channel)| Op::ClientEvent { conn, channel }),
        1 => conn.prop_map(|conn| Op::Disconnect { conn }),
    ]
}

#[derive(Default)]
struct ModelConn {
    /// channel index → presence user id (for presence channels).
    subs: BTreeMap<usize, Option<String>>,
}

struct World {
    hub: Arc<Hub>,
    clients: Vec<Option<Client>>,
    model: Vec<Option<ModelConn>>,
    now: Millis,
}

impl World {
    fn live(&mut self, conn: usize) -> Option<(&mut Client, &mut ModelConn)> {
        match (self.clients.get_mut(conn), self.model.get_mut(conn)) {
            (Some(Some(c)), Some(Some(m))) => Some((c, m)),
            _ => None,
        }
    }

    fn drain_all(&mut self) {
        for c in self.clients.iter().flatten() {
            c.take();
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.now = self.now + Duration::from_millis(200);
        let now = self.now;
        self.drain_all();
        match *op {
            Op::Connect => {
                if self.clients.len() < MAX_CONNS {
                    self.clients.push(Some(Client::connect(&self.hub)));
                    self.model.push(Some(ModelConn::default()));
                }
            }
            Op::Subscribe {
                conn,
                channel,
                user,
                valid,
            } => {
                let name = CHANNELS[channel];
                let Some((c, m)) = self.live(conn) else {
                    return Ok(());
                };
                let uid = format!("u{user}");
                let data = format!(r#"{{"user_id":"{uid}"}}"#);
                let presence = name.starts_with("presence-");
                let auth = if !valid {
                    "bad:signature".to_owned()
                } else {
                    pusher_auth::sign_channel(
                        support::KEY,
                        support::SECRET,
                        &c.socket_id(),
                        name,
                        presence.then_some(data.as_str()),
                    )
                };
                let frame = format!(
                    r#"{{"event":"pusher:subscribe","data":{{"channel":"{name}","auth":"{auth}","channel_data":{}}}}}"#,
                    serde_json::to_string(&data).unwrap()
                );
                c.send(&frame, now.as_millis());
                let needs_auth = name.starts_with("private-") || presence;
                let frames = c.take();
                let already = m.subs.contains_key(&channel);
                if already || valid || !needs_auth {
                    prop_assert!(frames[0].contains("subscription_succeeded"), "{:?}", frames);
                    if !already {
                        m.subs.insert(channel, presence.then_some(uid));
                    }
                } else {
                    prop_assert!(frames[0].contains("AuthError"), "{:?}", frames);
                    prop_assert_eq!(frames.len(), 1);
                }
            }
            Op::Unsubscribe { conn, channel } => {
                let Some((c, m)) = self.live(conn) else {
                    return Ok(());
                };
                c.send(
                    &format!(
                        r#"{{"event":"pusher:unsubscribe","data":{{"channel":"{}"}}}}"#,
                        CHANNELS[channel]
                    ),
                    now.as_millis(),
                );
                m.subs.remove(&channel);
            }
            Op::Signin { conn, user } => {
                let Some((c, _)) = self.live(conn) else {
                    return Ok(());
                };
                c.signin(&format!(r#"{{"id":"u{user}","watchlist":["u0","u1"]}}"#));
            }
            Op::Publish { channel, except } => {
                self.drain_all();
                let name = ChannelName::new(CHANNELS[channel]).unwrap();
                let except_id = except
                    .and_then(|i| self.clients.get(i)?.as_ref().map(|c| c.session.socket_id()));
                let names = [name];
                let out = self.hub.publish(
                    &Publish {
                        channels: &names,
                        event: "ev",
                        data: "d",
                        except: except_id,
                        info: InfoRequest::default(),
                    },
                    now,
                );
                let expected = format!(
                    r#"{{"event":"ev","channel":"{}","data":"d"}}"#,
                    CHANNELS[channel]
                );
                let mut receivers = 0;
                for (i, (c, m)) in self.clients.iter().zip(&self.model).enumerate() {
                    let (Some(c), Some(m)) = (c, m) else { continue };
                    let should = m.subs.contains_key(&channel)
                        && except_id.is_none_or(|_| except != Some(i));
                    let got = c.take();
                    if should {
                        receivers += 1;
                        prop_assert_eq!(got, vec![expected.clone()]);
                    } else {
                        prop_assert!(got.is_empty(), "{:?}", got);
                    }
                }
                prop_assert_eq!(out.delivery.delivered, receivers);
            }
            Op::ClientEvent { conn, channel } => {
                self.drain_all();
                let name = CHANNELS[channel];
                let Some((c, m)) = self.live(conn) else {
                    return Ok(());
                };
                let sender_sub = m.subs.get(&channel).cloned();
                c.send(
                    &format!(r#"{{"event":"client-x","channel":"{name}","data":{{}}}}"#),
                    now.as_millis(),
                );
                let sender_frames = c.take();
                let accepted = sender_sub.is_some()
                    && (name.starts_with("private-") || name.starts_with("presence-"));
                if accepted {
                    prop_assert!(sender_frames.is_empty(), "not echoed: {:?}", sender_frames);
                } else {
                    prop_assert!(sender_frames[0].contains("pusher:error"));
                }
                for (i, (c, m)) in self.clients.iter().zip(&self.model).enumerate() {
                    let (Some(c), Some(m)) = (c, m) else { continue };
                    if i == conn {
                        continue;
                    }
                    let got = c.take();
                    if accepted && m.subs.contains_key(&channel) {
                        prop_assert_eq!(got.len(), 1);
                        if let Some(Some(uid)) = &sender_sub {
                            prop_assert!(
                                got[0].ends_with(&format!(r#","user_id":"{uid}"}}"#)),
                                "{}",
                                got[0]
                            );
                        }
                    } else {
                        prop_assert!(got.is_empty());
                    }
                }
            }
            Op::Disconnect { conn } => {
                if let Some(slot) = self.clients.get_mut(conn) {
                    if let Some(c) = slot.take() {
                        c.session.close(now);
                    }
                    self.model[conn] = None;
                }
            }
        }
        self.check()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let all = InfoRequest {
            user_count: true,
            subscription_count: true,
            cache: false,
        };
        for (i, name) in CHANNELS.iter().enumerate() {
            let subs: Vec<&Option<String>> = self
                .model
                .iter()
                .flatten()
                .filter_map(|m| m.subs.get(&i))
                .collect();
            let ch = ChannelName::new(name).unwrap();
            let info = self.hub.channel_info(&ch, all, self.now);
            prop_assert_eq!(info.subscription_count, Some(subs.len() as u64));
            prop_assert_eq!(info.occupied, !subs.is_empty());
            if name.starts_with("presence-") {
                let users: BTreeSet<String> = subs.iter().filter_map(|u| (*u).clone()).collect();
                prop_assert_eq!(self.hub.users(&ch), users.into_iter().collect::<Vec<_>>());
            }
        }
        prop_assert_eq!(
            self.hub.connection_count(),
            self.model.iter().flatten().count()
        );
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hub_agrees_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let hub = Arc::new(Hub::new(config()));
        let mut world = World { hub: hub.clone(), clients: Vec::new(), model: Vec::new(), now: Millis::ZERO };
        for op in &ops {
            world.apply(op)?;
        }
        let now = world.now;
        for c in world.clients.drain(..).flatten() {
            c.session.close(now);
        }
        world.model.clear();
        world.check()?;
        let _ = hub.handle_timeout(now + Duration::from_secs(31 * 60));
        prop_assert!(hub.is_empty(), "leaked: {} channels, {} connections", hub.channel_count(), hub.connection_count());
    }
}
