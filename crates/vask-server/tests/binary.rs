//! The `vask-server` binary itself: the start banner, refusing a bad
//! configuration, surviving a closed stdout and SIGHUP, and draining on
//! SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_vask-server");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server on `port` with `args`, stdout as given.
fn spawn(port: u16, args: &[&str], stdout: Stdio) -> Child {
    Command::new(BIN)
        .args(["--port", &port.to_string()])
        .args(args)
        .env_remove("VASK_CONFIG")
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// One HTTP/1.1 request; the status line and headers, and the body. `None`
/// when the connection is refused.
fn http(port: u16, request: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Some((head.to_owned(), body.to_owned()))
}

fn get_up(port: u16) -> Option<String> {
    http(
        port,
        "GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .map(|(head, _)| head)
}

fn wait_up(port: u16) {
    let started = Instant::now();
    while !get_up(port).is_some_and(|h| h.starts_with("HTTP/1.1 200")) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits (at most `within`) for the process to exit and returns its code.
fn exit_code(child: &mut Child, within: Duration) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if started.elapsed() > within {
            let _ = child.kill();
            panic!("did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads banner lines up to the pusher-js snippet of the last app.
fn banner(child: &mut Child, apps: usize) -> String {
    let stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut snippets = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        snippets += usize::from(line.contains("new Pusher("));
        seen.push(line);
        if snippets == apps {
            break;
        }
    }
    seen.join("\n")
}

#[test]
fn a_bad_config_is_refused_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("vask-bad-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vask.toml");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "[[apps]]\nid = \"app-one\"\nkey = \"k\"\nsecret = \"s\"").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("--port")
        .arg("0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apps[0].id"), "{err}");
    assert!(out.stdout.is_empty(), "never starts half-configured");
}

#[test]
fn starts_with_the_development_app_prints_how_to_connect_and_stops_on_sigterm() {
    let mut child = spawn(0, &["--drain-secs", "0"], Stdio::piped());
    let text = banner(&mut child, 1);
    // What Laravel's .env and the migration guides name, pasted as is.
    for needle in [
        "app id 1  key vask-key  secret vask-secret",
        "PUSHER_APP_ID=1\n",
        "PUSHER_APP_KEY=vask-key\n",
        "PUSHER_APP_SECRET=vask-secret\n",
        "PUSHER_HOST=127.0.0.1\n",
        "PUSHER_PORT=",
        "PUSHER_SCHEME=http\n",
        "PUSHER_APP_CLUSTER=mt1\n",
        "wsHost: '127.0.0.1'",
        "forceTLS: false",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(!text.contains("PUSHER_KEY="), "{text}");
    signal(&child, "TERM");
    assert_eq!(exit_code(&mut child, Duration::from_secs(10)), Some(0));
}

#[test]
fn configured_secrets_are_never_printed() {
    let dir = std::env::temp_dir().join(format!("vask-secret-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vask.toml");
    std::fs::write(
        &path,
        "[[apps]]\nid = \"7\"\nkey = \"seven-key\"\nsecret = \"do-not-print-me\"\n\
         [[apps]]\nid = \"8\"\nkey = \"eight-key\"\nsecret = \"nor-me\"\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--drain-secs", "0", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let text = banner(&mut child, 2);
    assert!(text.contains("PUSHER_APP_KEY=seven-key"), "{text}");
    assert!(text.contains("PUSHER_APP_KEY=eight-key"), "{text}");
    signal(&child, "TERM");
    assert_eq!(exit_code(&mut child, Duration::from_secs(10)), Some(0));
    let mut rest = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    for secret in ["do-not-print-me", "nor-me"] {
        assert!(!text.contains(secret), "{text}");
        assert!(!rest.contains(secret), "{rest}");
    }
}

#[test]
fn a_closed_stdout_does_not_kill_the_server() {
    let port = free_port();
    let mut child = spawn(port, &["--drain-secs", "0"], Stdio::piped());
    // The reader goes away before the banner is written (`| head -0`).
    drop(child.stdout.take());
    wait_up(port);
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "server died");
    wait_up(port);
    signal(&child, "TERM");
    assert_eq!(exit_code(&mut child, Duration::from_secs(10)), Some(0));
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(port: u16) -> Ws {
    let url = format!("ws://127.0.0.1:{port}/app/vask-key?protocol=7");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next text frame, as JSON.
async fn next_json(ws: &mut Ws) -> serde_json::Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => return f.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn sighup_without_a_file_keeps_the_apps_and_connections() {
    let port = free_port();
    let mut child = spawn(port, &["--drain-secs", "0"], Stdio::piped());
    let rx = log_lines(&mut child);
    tokio::task::spawn_blocking(move || wait_up(port))
        .await
        .unwrap();
    let mut ws = ws_connect(port).await;
    assert_eq!(
        next_json(&mut ws).await["event"],
        "pusher:connection_established"
    );
    signal(&child, "HUP");
    line_with(&rx, "SIGHUP");
    // The connection is undisturbed and the server answers.
    ws.send(Message::text(r#"{"event":"pusher:ping","data":{}}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["event"], "pusher:pong");
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP killed the server"
    );
    signal(&child, "TERM");
    assert_eq!(close_code(&mut ws).await, Some(4200));
    assert_eq!(exit_code(&mut child, Duration::from_secs(10)), Some(0));
}

#[tokio::test]
async fn sigterm_drains_instead_of_closing_the_port() {
    let port = free_port();
    let mut child = spawn(
        port,
        &["--drain-secs", "3", "--shutdown-grace-secs", "6"],
        Stdio::null(),
    );
    tokio::task::spawn_blocking(move || wait_up(port))
        .await
        .unwrap();
    let mut ws = ws_connect(port).await;
    assert_eq!(
        next_json(&mut ws).await["event"],
        "pusher:connection_established"
    );
    let term = Instant::now();
    signal(&child, "TERM");

    // Existing connections are told to reconnect.
    let f = next_json(&mut ws).await;
    assert_eq!(f["event"], "pusher:error");
    assert_eq!(f["data"]["code"], 4200);
    assert_eq!(close_code(&mut ws).await, Some(4200));

    // A load balancer's probe gets 503, not "connection refused".
    let up = tokio::task::spawn_blocking(move || get_up(port))
        .await
        .unwrap();
    assert!(
        up.as_deref().is_some_and(|h| h.starts_with("HTTP/1.1 503")),
        "{up:?}"
    );

    // A new WebSocket is upgraded, told 4200, and closed (not reset).
    let mut late = ws_connect(port).await;
    let f = next_json(&mut late).await;
    assert_eq!(f["event"], "pusher:error");
    assert_eq!(f["data"]["code"], 4200);
    assert_eq!(close_code(&mut late).await, Some(4200));

    // The HTTP API still answers, on a connection that then closes.
    let body = r#"{"name":"e","channel":"c","data":"{}"}"#;
    let path = "/apps/1/events";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let query = pusher_auth::sign_request(
        "POST",
        path,
        &[],
        body.as_bytes(),
        "vask-key",
        "vask-secret",
        now,
    );
    let request = format!(
        "POST {path}?{query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (head, reply) = tokio::task::spawn_blocking(move || http(port, &request))
        .await
        .unwrap()
        .expect("the port is still open");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert_eq!(reply, "{}");
    assert!(
        term.elapsed() < Duration::from_secs(3),
        "checks ran within the drain"
    );

    // Then it exits, within the grace period.
    let code = tokio::task::spawn_blocking(move || exit_code(&mut child, Duration::from_secs(8)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert!(term.elapsed() >= Duration::from_secs(3), "the drain lasted");
    assert!(get_up(port).is_none(), "the port is closed after the drain");
}

/// The server's stdout, line by line, read on a thread of its own.
fn log_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (at most 5 s) for a log line containing `needle`.
fn line_with(rx: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let started = Instant::now();
    loop {
        let left = Duration::from_secs(5).saturating_sub(started.elapsed());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

fn apps_file(apps: &[(&str, &str)]) -> String {
    apps.iter()
        .map(|(id, key)| {
            format!("[[apps]]\nid = \"{id}\"\nkey = \"{key}\"\nsecret = \"s-{key}\"\n")
        })
        .collect()
}

#[tokio::test]
async fn sighup_reloads_the_apps_file_and_refuses_a_bad_one() {
    let dir = std::env::temp_dir().join(format!("vask-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("vask.toml");
    std::fs::write(&file, apps_file(&[("1", "first")])).unwrap();
    let port = free_port();
    let mut child = spawn(
        port,
        &["--drain-secs", "0", "--config", file.to_str().unwrap()],
        Stdio::piped(),
    );
    let rx = log_lines(&mut child);
    tokio::task::spawn_blocking(move || wait_up(port))
        .await
        .unwrap();
    let connect = |key: &str| {
        let url = format!("ws://127.0.0.1:{port}/app/{key}?protocol=7");
        async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            let first = next_json(&mut ws).await;
            (ws, first)
        }
    };
    let (mut ws, first) = connect("first").await;
    assert_eq!(first["event"], "pusher:connection_established");
    assert_eq!(connect("second").await.1["data"]["code"], 4001);

    // A good file: the new app serves at once, the open connection stays.
    std::fs::write(&file, apps_file(&[("1", "first"), ("2", "second")])).unwrap();
    signal(&child, "HUP");
    let line = line_with(&rx, "SIGHUP");
    assert!(
        line.contains("apps reloaded") && line.contains("added=1"),
        "{line}"
    );
    assert_eq!(
        connect("second").await.1["event"],
        "pusher:connection_established"
    );

    // A bad file: refused with the field named; the apps in force stay.
    std::fs::write(&file, apps_file(&[("1", "first"), ("two", "second")])).unwrap();
    signal(&child, "HUP");
    let line = line_with(&rx, "SIGHUP");
    assert!(
        line.contains("apps[1].id") && line.contains("not reloaded"),
        "{line}"
    );
    assert_eq!(
        connect("second").await.1["event"],
        "pusher:connection_established"
    );
    ws.send(Message::text(r#"{"event":"pusher:ping","data":{}}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["event"], "pusher:pong");

    signal(&child, "TERM");
    assert_eq!(exit_code(&mut child, Duration::from_secs(10)), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
