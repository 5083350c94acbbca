//! The `vask-server` binary: parses the command line, loads the
//! configuration, prints how to connect, serves until SIGTERM or SIGINT.

use clap::Parser;
use vask_server::{Cli, Config};

fn banner(config: &Config, addr: std::net::SocketAddr) {
    println!("Vask listening on http://{addr} (WebSocket ws://{addr}/app/<key>)");
    for app in &config.apps {
        println!();
        println!(
            "app id {}  key {}  secret {}{}",
            app.id,
            app.key,
            app.secret,
            if app.enabled { "" } else { "  (disabled)" }
        );
        println!("  server SDK environment:");
        println!("    PUSHER_APP_ID={}", app.id);
        println!("    PUSHER_KEY={}", app.key);
        println!("    PUSHER_SECRET={}", app.secret);
        println!("    PUSHER_HOST={}", addr.ip());
        println!("    PUSHER_PORT={}", addr.port());
        println!("    PUSHER_SCHEME=http");
        println!("  pusher-js:");
        println!(
            "    new Pusher('{}', {{ wsHost: '{}', wsPort: {}, forceTLS: false, enabledTransports: ['ws'], cluster: 'mt1' }})",
            app.key,
            addr.ip(),
            addr.port()
        );
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VASK_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vask-server: {e}");
            std::process::exit(2);
        }
    };
    let server = match vask_server::start(config.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "vask-server: cannot listen on {}:{}: {e}",
                config.server.host, config.server.port
            );
            std::process::exit(1);
        }
    };
    banner(&config, server.addr);
    let stop = server.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop.send(true);
    });
    server.wait().await;
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
