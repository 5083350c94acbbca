//! The `vask-server` binary itself: the start banner, refusing a bad
//! configuration, and exiting cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vask-server");

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
    let mut child = Command::new(BIN)
        .args(["--port", "0"])
        .env_remove("VASK_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("new Pusher(");
        seen.push(line);
        if done {
            break;
        }
    }
    let text = seen.join("\n");
    for needle in [
        "app id 1  key vask-key  secret vask-secret",
        "PUSHER_APP_ID=1",
        "PUSHER_KEY=vask-key",
        "PUSHER_SECRET=vask-secret",
        "wsHost: '127.0.0.1'",
        "forceTLS: false",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
