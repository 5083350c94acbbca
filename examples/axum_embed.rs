//! An axum app with routes of its own and a complete Pusher-compatible
//! endpoint mounted beside them: WebSocket `/app/{key}`, the HTTP API
//! `/apps/{id}/...`, `/up` and `/metrics`, served by vask-server's
//! `Endpoint` on axum's listener. It takes vask-server's flags
//! (`--config`, `--host`, `--port`, `--cluster`, ...); with none, the
//! built-in development app on 127.0.0.1:6001.
//!
//! Run: `cargo run -p vask-examples --example axum_embed`

use axum::Router;
use axum::routing::get;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use vask_server::{Cli, Config, Endpoint};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VASK_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::load(&Cli::parse())?;
    // Installed before anything can make a supervisor send a signal.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let endpoint = Endpoint::start(&config).await?;

    // The app's own routes, and the Pusher endpoint for every other path.
    let app = Router::new()
        .route(
            "/hello",
            get(|| async { "Hello from an app that embeds Vask\n" }),
        )
        .fallback_service(endpoint.service());

    let listener =
        tokio::net::TcpListener::bind((config.server.host.as_str(), config.server.port)).await?;
    vask_server::write_banner(
        &mut std::io::stdout().lock(),
        &config,
        listener.local_addr()?,
    )?;

    // On SIGTERM or SIGINT: clients are told to reconnect (4200), axum
    // finishes its requests, then the endpoint waits for its connections.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serve = axum::serve(listener, app).with_graceful_shutdown(async {
        let _ = stopped.await;
    });
    let server = tokio::spawn(serve.into_future());
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    endpoint.begin_shutdown();
    let _ = stop.send(());
    server.await??;
    endpoint.shutdown().await;
    Ok(())
}
