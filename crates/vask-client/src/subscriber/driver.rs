//! The background task: the transport around the sans-IO [`Core`].
//!
//! It opens connections when the core says so, feeds what arrives into the
//! core, writes what the core sends, sleeps until the core's deadline, runs
//! the authorizer, and hands the core's events to the streams (through
//! [`Shared`]). Every protocol decision is the core's: see
//! [`super::core`] for the order of calls this loop follows.
//!
//! [`Core`]: super::core::Core

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use pusher_auth::{ChannelAuthResponse, UserAuthResponse};
use tokio::sync::mpsc;

use super::SubscriberConfig;
use super::core::{Action, Core, TransportEnd};
use super::shared::{DriverWork, Shared};
use super::transport::{self, Received, TlsSetup, Ws};
use crate::error::AuthorizerError;

/// An authorizer's answer, tagged with the request.
enum Answer {
    Channel {
        socket_id: String,
        channel: String,
        result: Result<ChannelAuthResponse, AuthorizerError>,
    },
    User {
        socket_id: String,
        result: Result<UserAuthResponse, AuthorizerError>,
    },
}

type Opening = Pin<Box<dyn Future<Output = Result<Ws, TransportEnd>> + Send>>;

/// The connection, as far as the driver holds one.
enum Transport {
    None,
    Opening(Opening),
    Open(Box<Ws>),
}

/// Something the transport did.
enum Happened {
    Opened(Box<Ws>),
    Received(Received),
}

impl Transport {
    /// Waits for the transport's next happening (forever without one).
    async fn next(&mut self) -> Happened {
        match self {
            Self::None => std::future::pending().await,
            Self::Opening(opening) => match opening.await {
                Ok(ws) => Happened::Opened(Box::new(ws)),
                Err(end) => Happened::Received(Received::End(end)),
            },
            Self::Open(ws) => Happened::Received(transport::receive(ws).await),
        }
    }
}

struct Driver {
    config: SubscriberConfig,
    url: String,
    tls: Option<Arc<TlsSetup>>,
    shared: Arc<Shared>,
    /// Handles wake the driver after calling the core; closed when every
    /// handle is gone.
    wake: mpsc::Receiver<()>,
    answers_tx: mpsc::UnboundedSender<Answer>,
    answers: mpsc::UnboundedReceiver<Answer>,
    transport: Transport,
    /// A WebSocket ping arrived: flush so that tungstenite sends the pong.
    flush: bool,
}

/// Runs the subscriber until the core stops it.
pub(crate) async fn run(
    config: SubscriberConfig,
    tls: Option<TlsSetup>,
    shared: Arc<Shared>,
    wake: mpsc::Receiver<()>,
) {
    let (answers_tx, answers) = mpsc::unbounded_channel();
    let mut driver = Driver {
        url: config.url(),
        config,
        tls: tls.map(Arc::new),
        shared: shared.clone(),
        wake,
        answers_tx,
        answers,
        transport: Transport::None,
        flush: false,
    };
    // Marks the end even if the loop panics, so no caller waits forever.
    struct Done(Arc<Shared>);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.driver_done();
        }
    }
    let _done = Done(shared);
    driver.run().await;
}

impl Driver {
    async fn run(&mut self) {
        // Core::new queued the first connection.
        let mut work = self.shared.step(|_| {});
        loop {
            if !self.act(&mut work).await {
                return;
            }
            let timeout = work.timeout.map(tokio::time::Instant::from_std);
            let sleep = async {
                match timeout {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            work = tokio::select! {
                woken = self.wake.recv() => match woken {
                    Some(()) => self.shared.step(|_| {}),
                    // Every handle is gone.
                    None => self.shared.step(Core::disconnect),
                },
                Some(answer) = self.answers.recv() => self.shared.step(|core| match answer {
                    Answer::Channel { socket_id, channel, result } => {
                        core.handle_channel_auth(&socket_id, &channel, result);
                    }
                    Answer::User { socket_id, result } => core.handle_user_auth(&socket_id, result),
                }),
                happened = self.transport.next() => self.transport_input(happened),
                () = sleep => self.shared.step(|core| core.handle_timeout(Instant::now())),
            };
        }
    }

    /// Feeds what the transport did into the core.
    fn transport_input(&mut self, happened: Happened) -> DriverWork {
        let now = Instant::now();
        match happened {
            Happened::Opened(ws) => {
                self.transport = Transport::Open(ws);
                self.shared.step(|core| core.handle_connected(now))
            }
            Happened::Received(Received::Text(text)) => self
                .shared
                .step(|core| core.handle_frame(text.as_str(), now)),
            Happened::Received(Received::Ping) => {
                self.flush = true;
                self.shared.step(|core| core.handle_alive(now))
            }
            Happened::Received(Received::Other) => self.shared.step(|core| core.handle_alive(now)),
            Happened::Received(Received::End(end)) => {
                self.transport = Transport::None;
                self.shared.step(|core| core.handle_closed(end, now))
            }
        }
    }

    /// Writes the frames and carries out the actions of `work` (and of the
    /// inputs a failed write causes). Returns false once the core stopped.
    async fn act(&mut self, work: &mut DriverWork) -> bool {
        loop {
            let transmits = std::mem::take(&mut work.transmits);
            if let Transport::Open(ws) = &mut self.transport
                && (!transmits.is_empty() || self.flush)
            {
                self.flush = false;
                if let Err(end) = transport::write(ws, transmits).await {
                    self.transport = Transport::None;
                    // The actions already asked (a stop among them) still
                    // hold; the core's answer to the failure follows them.
                    let asked = std::mem::take(&mut work.actions);
                    *work = self
                        .shared
                        .step(|core| core.handle_closed(end, Instant::now()));
                    work.actions.splice(0..0, asked);
                    continue;
                }
            }
            for action in std::mem::take(&mut work.actions) {
                match action {
                    Action::Connect => self.connect(),
                    Action::Abort => self.transport = Transport::None,
                    Action::Close => {
                        let transport = std::mem::replace(&mut self.transport, Transport::None);
                        if let Transport::Open(ws) = transport {
                            transport::close(*ws).await;
                        }
                    }
                    Action::AuthorizeChannel { socket_id, channel } => {
                        self.authorize_channel(socket_id, channel);
                    }
                    Action::AuthenticateUser { socket_id } => self.authenticate_user(socket_id),
                    Action::Stop => return false,
                }
            }
            return true;
        }
    }

    fn connect(&mut self) {
        let (host, port, url) = (self.config.host.clone(), self.config.port, self.url.clone());
        let tls = self.tls.clone();
        self.transport = Transport::Opening(Box::pin(async move {
            transport::open(&host, port, tls.as_deref(), &url).await
        }));
    }

    fn authorize_channel(&self, socket_id: String, channel: String) {
        // The core asks only when an authorizer is configured.
        let Some(authorizer) = self.config.authorizer.clone() else {
            return;
        };
        let tx = self.answers_tx.clone();
        tokio::spawn(async move {
            let result = authorizer.authorize_channel(&socket_id, &channel).await;
            let _ = tx.send(Answer::Channel {
                socket_id,
                channel,
                result,
            });
        });
    }

    fn authenticate_user(&self, socket_id: String) {
        let Some(authorizer) = self.config.authorizer.clone() else {
            return;
        };
        let tx = self.answers_tx.clone();
        tokio::spawn(async move {
            let result = authorizer.authenticate_user(&socket_id).await;
            let _ = tx.send(Answer::User { socket_id, result });
        });
    }
}
