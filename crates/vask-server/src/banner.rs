//! The start banner: how to connect, for a person reading the terminal.

use std::io::Write;

use crate::config::Config;

/// How to connect, for a person reading the terminal. Written without
/// panicking when stdout is gone (a closed pipe, a log shipper that died):
/// the server keeps serving. Only the built-in development app's secret is
/// printed: stdout is where logs are collected.
pub fn write_banner(
    out: &mut impl Write,
    config: &Config,
    addr: std::net::SocketAddr,
) -> std::io::Result<()> {
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let ws = if config.server.tls.is_some() {
        "wss"
    } else {
        "ws"
    };
    writeln!(
        out,
        "Vask listening on {scheme}://{addr} (WebSocket {ws}://{addr}/app/<key>)"
    )?;
    if let Some(store) = &config.apps_store {
        writeln!(
            out,
            "apps: kept in PostgreSQL at {} (changed live, on every node)",
            store.redacted_url()
        )?;
    }
    if config.admin.token.is_some() {
        writeln!(
            out,
            "admin API: {scheme}://{addr}/admin/apps (Authorization: Bearer <the configured token>)"
        )?;
    }
    for app in &config.apps {
        let dev = app.is_development();
        writeln!(out)?;
        writeln!(
            out,
            "app id {}  key {}{}{}",
            app.id,
            app.key,
            if dev {
                "  secret vask-secret (built-in development app)"
            } else {
                ""
            },
            if app.enabled { "" } else { "  (disabled)" }
        )?;
        writeln!(out, "  server SDK environment (.env):")?;
        writeln!(out, "    PUSHER_APP_ID={}", app.id)?;
        writeln!(out, "    PUSHER_APP_KEY={}", app.key)?;
        if dev {
            writeln!(out, "    PUSHER_APP_SECRET={}", app.secret.expose())?;
        } else {
            writeln!(
                out,
                "    PUSHER_APP_SECRET=<the secret of app {} in your configuration>",
                app.id
            )?;
        }
        writeln!(out, "    PUSHER_HOST={}", addr.ip())?;
        writeln!(out, "    PUSHER_PORT={}", addr.port())?;
        writeln!(out, "    PUSHER_SCHEME={scheme}")?;
        writeln!(out, "    PUSHER_APP_CLUSTER=mt1")?;
        writeln!(out, "  pusher-js:")?;
        writeln!(
            out,
            "    new Pusher('{}', {{ wsHost: '{}', wsPort: {}, forceTLS: {}, enabledTransports: ['{ws}'], cluster: 'mt1' }})",
            app.key,
            addr.ip(),
            addr.port(),
            config.server.tls.is_some(),
        )?;
    }
    out.flush()
}
