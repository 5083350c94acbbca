//! NATS: one subject, `{prefix}.bus`. The client reconnects without end
//! (delay doubling to 2 s) and re-establishes the subscription itself; its
//! events say when the connection is lost and back. Publishing while it is
//! down would queue in the client and then block, so every publish is
//! bounded by the caller, and nothing is published while the bus is down.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{Bus, BusEvent};
use crate::config::ClusterConfig;

pub(crate) struct NatsBus {
    client: async_nats::Client,
    subject: String,
}

impl NatsBus {
    /// Connects (failing at once when NATS cannot be reached) and starts
    /// the receiver.
    pub(crate) async fn connect(
        c: &ClusterConfig,
        events: mpsc::Sender<BusEvent>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let on_event = events.clone();
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(timeout)
            .ping_interval(Duration::from_secs(2))
            .max_reconnects(None)
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis(100u64.saturating_mul(1 << attempt.min(5)))
                    .min(Duration::from_secs(2))
            })
            .event_callback(move |event| {
                let events = on_event.clone();
                async move {
                    let ev = match event {
                        async_nats::Event::Connected => BusEvent::Up,
                        async_nats::Event::Disconnected => BusEvent::Down("disconnected".into()),
                        async_nats::Event::SlowConsumer(_) => BusEvent::Lost(1),
                        _ => return,
                    };
                    let _ = events.send(ev).await;
                }
            })
            .connect(c.url.as_str())
            .await
            .map_err(|e| e.to_string())?;
        let subject = format!("{}.bus", c.prefix);
        let mut sub = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| e.to_string())?;
        let _ = events.send(BusEvent::Up).await;
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if events
                    .send(BusEvent::Message(m.payload.to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Self { client, subject })
    }
}

impl Bus for NatsBus {
    async fn publish(&self, payload: Vec<u8>) -> Result<(), String> {
        self.client
            .publish(self.subject.clone(), payload.into())
            .await
            .map_err(|e| e.to_string())
    }
}
