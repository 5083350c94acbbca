//! The `vask-server` binary: parses the command line, loads the
//! configuration, prints how to connect, serves until SIGTERM or SIGINT.

use std::io::{IsTerminal, Write};

use clap::Parser;
use tokio::signal::unix::{Signal, SignalKind, signal};
use vask_server::{Cli, Config};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VASK_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        // A failed write of a log line is dropped, never reported on a
        // stderr that may be gone too.
        .log_internal_errors(false)
        // Colours for a terminal only, not in a log file or a journal.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    // Before anything can make a supervisor send a signal (the banner), so
    // that no SIGTERM meets the default action.
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "vask-server: cannot install signal handlers: {e}"
            );
            std::process::exit(1);
        }
    };
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "vask-server: {e}");
            std::process::exit(2);
        }
    };
    let server = match vask_server::start(config.clone()).await {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "vask-server: {e}");
            std::process::exit(1);
        }
    };
    if vask_server::write_banner(&mut std::io::stdout().lock(), &config, server.addr).is_err() {
        tracing::warn!("stdout is closed; the connection banner was not printed");
    }
    let stop = server.shutdown_handle();
    tokio::spawn(signals.run(
        move || {
            let _ = stop.send(true);
        },
        server.state.clone(),
        cli,
    ));
    server.wait().await;
}

/// The signals the server handles.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The first SIGTERM or SIGINT starts the shutdown, a second one exits at
    /// once; SIGHUP reloads the apps.
    async fn run(
        mut self,
        shutdown: impl FnOnce(),
        state: std::sync::Arc<vask_server::State>,
        cli: Cli,
    ) {
        let mut shutdown = Some(shutdown);
        loop {
            let name = tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
                _ = self.hup.recv() => {
                    match state.reload(&cli).await {
                        Ok(c) => tracing::info!(
                            added = c.added, changed = c.changed, removed = c.removed,
                            "SIGHUP: apps reloaded (other settings take a restart)"
                        ),
                        Err(e) => tracing::error!(
                            "SIGHUP: apps not reloaded, the ones in force stay: {e}"
                        ),
                    }
                    continue;
                }
            };
            match shutdown.take() {
                Some(start) => {
                    tracing::info!("{name} received: shutting down");
                    start();
                }
                None => {
                    tracing::warn!("{name} received again: exiting now");
                    std::process::exit(0);
                }
            }
        }
    }
}
