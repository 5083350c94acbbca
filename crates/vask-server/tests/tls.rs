//! The TLS listener: wss:// and https:// on the one port, with a test
//! certificate signed by a throwaway CA (tests/tls/).

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use vask_server::config::TlsConfig;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tls")
}

fn connector() -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir().join("ca.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls_server() -> vask_server::Running {
    let mut c = config(vec![app()]);
    c.server.tls = Some(TlsConfig {
        cert_file: dir().join("cert.pem"),
        key_file: dir().join("key.pem"),
    });
    start(c).await
}

async fn tls_stream(
    addr: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector()
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

#[tokio::test]
async fn websocket_over_tls_and_publish() {
    let s = tls_server().await;
    let stream = tls_stream(s.addr).await;
    let url = format!("wss://localhost:{}/app/test-key?protocol=7", s.addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("no handshake frame")
    };
    let f: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(f["event"], "pusher:connection_established");
    ws.send(Message::text(
        r#"{"event":"pusher:subscribe","data":{"channel":"secure"}}"#,
    ))
    .await
    .unwrap();
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("no reply")
    };
    assert!(t.contains("subscription_succeeded"), "{t}");
    // Publish over https with a signed request on a raw TLS stream.
    let body = json!({"name":"e","channel":"secure","data":"over tls"}).to_string();
    let path = "/apps/1/events";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let q = pusher_auth::sign_request(
        "POST",
        path,
        &[],
        body.as_bytes(),
        "test-key",
        "test-secret",
        now,
    );
    let mut http = tls_stream(s.addr).await;
    let req = format!(
        "POST {path}?{q} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    let _ = http.read_to_string(&mut resp).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("no event")
    };
    assert_eq!(
        t.as_str(),
        r#"{"event":"e","channel":"secure","data":"over tls"}"#
    );
}

#[tokio::test]
async fn plain_connections_to_a_tls_port_are_refused_and_the_server_stays_up() {
    let s = tls_server().await;
    let mut plain = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    plain
        .write_all(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    let mut ok = tls_stream(s.addr).await;
    ok.write_all(b"GET /up HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    let _ = ok.read_to_string(&mut resp).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

#[test]
fn a_missing_certificate_is_refused_naming_the_field() {
    let mut c = config(vec![app()]);
    c.server.tls = Some(TlsConfig {
        cert_file: dir().join("nope.pem"),
        key_file: dir().join("key.pem"),
    });
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("server.tls.cert_file"), "{e}");
    c.server.tls = Some(TlsConfig {
        cert_file: dir().join("cert.pem"),
        key_file: dir().join("ca.pem"),
    });
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("server.tls.key_file"), "{e}");
}

/// Over TLS the console's session cookie is `Secure`.
#[tokio::test]
async fn the_console_cookie_is_secure_over_tls() {
    let mut c = config(vec![app()]);
    c.server.tls = Some(TlsConfig {
        cert_file: dir().join("cert.pem"),
        key_file: dir().join("key.pem"),
    });
    c.admin.token = Some("a-console-token-of-some-length".into());
    let s = start(c).await;
    let mut stream = tls_stream(s.addr).await;
    let body = "token=a-console-token-of-some-length";
    let req = format!(
        "POST /console/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 303"), "{answer}");
    let cookie = answer
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .expect("a cookie");
    assert!(cookie.contains("; secure"), "{cookie}");
    assert!(cookie.contains("httponly"), "{cookie}");
    s.shutdown().await;
}
