//! Redis pub/sub: one channel, `{prefix}:bus`. The receiver is a dedicated
//! subscriber connection with its own reconnect loop (the pub/sub stream
//! ends when Redis goes away and is never revived by the client library)
//! and a PING every second so a half-open connection is noticed; publishing
//! uses a multiplexed connection that is replaced after any failure (the
//! client library does not reconnect it).

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::{Mutex, mpsc};

use super::{Bus, BusEvent};
use crate::config::ClusterConfig;

pub(crate) struct RedisBus {
    client: redis::Client,
    channel: String,
    timeout: Duration,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl RedisBus {
    /// Connects (failing at once when Redis cannot be reached) and starts
    /// the receiver.
    pub(crate) async fn connect(
        c: &ClusterConfig,
        events: mpsc::Sender<BusEvent>,
        timeout: Duration,
    ) -> Result<Self, String> {
        // rediss:// uses rustls with the process's provider: ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = redis::Client::open(c.url.as_str()).map_err(|e| e.to_string())?;
        let bus = Self {
            client: client.clone(),
            channel: format!("{}:bus", c.prefix),
            timeout,
            conn: Mutex::new(None),
        };
        // The start-up check: both connections work now.
        let conn = bus.open().await?;
        *bus.conn.lock().await = Some(conn);
        let pubsub = subscribe(&client, &bus.channel, timeout).await?;
        tokio::spawn(receive(
            client,
            bus.channel.clone(),
            timeout,
            events,
            pubsub,
        ));
        Ok(bus)
    }

    async fn open(&self) -> Result<MultiplexedConnection, String> {
        match tokio::time::timeout(self.timeout, self.client.get_multiplexed_async_connection())
            .await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no connection within {:?}", self.timeout)),
        }
    }
}

impl Bus for RedisBus {
    async fn publish(&self, payload: Vec<u8>) -> Result<(), String> {
        let mut guard = self.conn.lock().await;
        let conn = match guard.as_mut() {
            Some(c) => c,
            None => guard.insert(self.open().await?),
        };
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(conn)
            .await;
        sent.map(drop).map_err(|e| {
            // Replaced on the next publish.
            *guard = None;
            e.to_string()
        })
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
    timeout: Duration,
) -> Result<redis::aio::PubSub, String> {
    let attempt = async {
        let mut ps = client.get_async_pubsub().await?;
        ps.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(ps)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(ps)) => Ok(ps),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no subscription within {timeout:?}")),
    }
}

/// Reads the channel until the connection fails, then reconnects with
/// backoff (100 ms doubling to 2 s), for as long as the node runs.
async fn receive(
    client: redis::Client,
    channel: String,
    timeout: Duration,
    events: mpsc::Sender<BusEvent>,
    first: redis::aio::PubSub,
) {
    let mut pubsub = Some(first);
    let mut backoff = Duration::from_millis(100);
    loop {
        let ps = match pubsub.take() {
            Some(ps) => ps,
            None => match subscribe(&client, &channel, timeout).await {
                Ok(ps) => ps,
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(100);
        if events.send(BusEvent::Up).await.is_err() {
            return;
        }
        let (mut sink, mut stream) = ps.split();
        let mut ping = tokio::time::interval(Duration::from_secs(1));
        let reason = loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(m) => {
                        let event = BusEvent::Message(m.get_payload_bytes().to_vec());
                        if events.send(event).await.is_err() {
                            return;
                        }
                    }
                    None => break "connection closed".to_owned(),
                },
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        break "no answer to PING".to_owned();
                    }
                }
            }
        };
        if events.send(BusEvent::Down(reason)).await.is_err() {
            return;
        }
    }
}
