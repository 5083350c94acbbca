//! Vask: a Pusher Channels compatible realtime server.
//!
//! One port serves the WebSocket endpoint (`/app/{key}`) and the Pusher HTTP
//! API (`/apps/{id}/...`), plus `/up` and `/metrics`. Each hosted app has its
//! own [`pusher_hub::Hub`]. The binary only parses the command line; embed the
//! server with [`start`]:
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let config = vask_server::Config::load(&vask_server::Cli::default()).expect("valid config");
//! let server = vask_server::start(config).await?;
//! println!("listening on {}", server.addr);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod api;
pub mod apps;
mod banner;
mod cluster;
pub mod config;
mod conn;
// The debug console under /console (issue 16).
mod console;
mod endpoint;
pub mod metrics;
mod server;
mod source;
pub mod store;
mod tls;
pub mod usage;
mod webhooks;
mod wire;
mod ws;

pub use banner::write_banner;
pub use cluster::{Cluster, ClusterStatus};
pub use config::{AppConfig, Cli, ClusterConfig, Config, ConfigError};
pub use endpoint::{Endpoint, PusherService, StartError, State};
pub use server::{Running, start};
