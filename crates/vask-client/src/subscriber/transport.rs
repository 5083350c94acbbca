//! The socket under the subscriber: TCP, TLS for `wss://`, the WebSocket
//! upgrade, and the polite close. What flows over it is the core's business.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::SubscriberConfig;
use super::core::TransportEnd;

/// An open WebSocket connection.
pub(crate) type Ws = WebSocketStream<Stream>;

/// The socket under the WebSocket: plain TCP (as tokio-tungstenite opens it)
/// or TLS over TCP.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// What `wss://` connections need, prepared once by
/// [`super::Subscriber::connect`].
pub(crate) struct TlsSetup {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl TlsSetup {
    /// The connector (Mozilla's roots plus the extra CAs) and the server
    /// name (the host) of `config`.
    pub(crate) fn new(config: &SubscriberConfig) -> Result<Self, String> {
        let tls = crate::tls::client_config(&config.extra_ca_certs)?;
        let host = config.host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))?;
        Ok(Self {
            connector: TlsConnector::from(tls),
            server_name,
        })
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

/// Opens the TCP connection to the configured host and port (no Nagle).
async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, TransportEnd> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let io = |e: std::io::Error| TransportEnd::Error(format!("IO error: {e}"));
    let tcp = TcpStream::connect((host, port)).await.map_err(io)?;
    tcp.set_nodelay(true).map_err(io)?;
    Ok(tcp)
}

/// Opens the socket under the WebSocket: TCP, then the TLS handshake for
/// `wss://`.
async fn connect_stream(
    host: &str,
    port: u16,
    tls: Option<&TlsSetup>,
) -> Result<Stream, TransportEnd> {
    let tcp = connect_tcp(host, port).await?;
    let Some(tls) = tls else {
        return Ok(Stream::Plain(tcp));
    };
    let stream = tls
        .connector
        .connect(tls.server_name.clone(), tcp)
        .await
        .map_err(|e| match crate::tls::tls_failure(&e) {
            Some(m) => TransportEnd::Tls(m),
            None => TransportEnd::Error(format!("TLS handshake: {e}")),
        })?;
    Ok(Stream::Tls(Box::new(stream)))
}

/// Opens a WebSocket connection to `url` on `host:port` (TLS when `tls` is
/// given). The caller bounds the time it may take.
pub(crate) async fn open(
    host: &str,
    port: u16,
    tls: Option<&TlsSetup>,
    url: &str,
) -> Result<Ws, TransportEnd> {
    let stream = connect_stream(host, port, tls).await?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
        .await
        .map_err(|e| TransportEnd::Error(e.to_string()))?;
    Ok(ws)
}

/// What came off an open connection, for the core.
pub(crate) enum Received {
    /// A text frame.
    Text(Utf8Bytes),
    /// A WebSocket ping: flush, so that tungstenite sends the pong.
    Ping,
    /// Any other message: the connection is alive.
    Other,
    /// The connection ended.
    End(TransportEnd),
}

/// Reads the next message of `ws`.
pub(crate) async fn receive(ws: &mut Ws) -> Received {
    match ws.next().await {
        Some(Ok(Message::Text(text))) => Received::Text(text),
        Some(Ok(Message::Ping(_))) => Received::Ping,
        Some(Ok(Message::Close(frame))) => Received::End(TransportEnd::CloseFrame {
            code: frame.as_ref().map(|f| u16::from(f.code)),
            reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
        }),
        Some(Ok(_)) => Received::Other,
        Some(Err(e)) => Received::End(TransportEnd::Error(e.to_string())),
        None => Received::End(TransportEnd::Eof),
    }
}

/// Writes `frames` then flushes (which also sends a pending pong).
pub(crate) async fn write(ws: &mut Ws, frames: Vec<String>) -> Result<(), TransportEnd> {
    let write = async {
        for frame in frames {
            ws.feed(Message::text(frame)).await?;
        }
        ws.flush().await
    };
    write.await.map_err(|e| TransportEnd::Error(e.to_string()))
}

/// Closes politely (code 1000) and waits up to a second for the server's
/// answer.
pub(crate) async fn close(mut ws: Ws) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: Utf8Bytes::from_static(""),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        ws.send(Message::Close(Some(frame))).await?;
        // Read until the server's close answer (or the socket ends).
        while let Some(Ok(_)) = ws.next().await {}
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    })
    .await;
}
