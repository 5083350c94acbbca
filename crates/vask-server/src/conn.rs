//! One WebSocket connection's I/O. tungstenite reads (and validates) the
//! peer's frames and answers its control frames; the writer sends the hub's
//! frames itself: each frame's 2-10 byte header and the payload bytes every
//! recipient shares are copied into one buffer and written at once, so a
//! broadcast is neither re-encoded nor re-validated per recipient.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The read half under tungstenite. What tungstenite writes (its answers to
/// pings and close frames, already framed) is kept here for the writer,
/// never written from the read path: a peer that does not read cannot block
/// it.
#[derive(Debug)]
pub(crate) struct ReadSide<R> {
    io: R,
    /// Frames tungstenite wrote, waiting for the writer.
    pub(crate) control: Vec<u8>,
}

impl<R> ReadSide<R> {
    pub(crate) fn new(io: R) -> Self {
        Self {
            io,
            control: Vec::new(),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ReadSide<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for ReadSide<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().control.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The header of an unmasked, final text frame of `len` bytes, into `out`;
/// returns its length (2, 4 or 10).
fn text_header(len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = 0x81;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if len <= 0xffff {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// A close frame with `code` and `reason` (at most 123 bytes).
pub(crate) fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut f = Vec::with_capacity(4 + reason.len());
    f.push(0x88);
    f.push(2 + reason.len() as u8);
    f.extend_from_slice(&code.to_be_bytes());
    f.extend_from_slice(reason);
    f
}

/// The thread's scratch buffer is released when a write made it larger
/// than this.
const KEEP_SCRATCH: usize = 256 * 1024;

thread_local! {
    /// Where a batch is framed and copied before it is written: one buffer
    /// per thread, hot in the cache, instead of one per connection (a burst
    /// would leave every connection holding its largest batch).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the thread's scratch buffer, emptied first and released
/// afterwards if `f` made it large.
pub(crate) fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        let r = f(scratch);
        if scratch.capacity() > KEEP_SCRATCH {
            *scratch = Vec::new();
        }
        r
    })
}

/// Appends `f`'s wire form (an unmasked, final text frame) to `out`.
pub(crate) fn wire_form(f: &[u8], out: &mut Vec<u8>) {
    let mut header = [0u8; 10];
    let h = text_header(f.len(), &mut header);
    out.extend_from_slice(&header[..h]);
    out.extend_from_slice(f);
}

/// The length of a text frame of `len` payload bytes, header included.
pub(crate) fn wire_len(len: usize) -> usize {
    len + text_header(len, &mut [0u8; 10])
}

/// Copies `control` (raw frames) and then each of `frames` as a text frame
/// into the thread's scratch buffer, emptying both, and hands it to
/// `write`.
pub(crate) fn frame_into<T>(
    control: &mut Vec<u8>,
    frames: &mut VecDeque<Bytes>,
    write: impl FnOnce(&[u8]) -> T,
) -> T {
    with_scratch(|scratch| {
        scratch.extend_from_slice(control);
        control.clear();
        for f in frames.drain(..) {
            wire_form(&f, scratch);
        }
        write(scratch)
    })
}

/// The write half: sends control bytes and text frames.
#[derive(Debug)]
pub(crate) struct Writer<W> {
    io: W,
    /// What the socket did not take at once, while it drains.
    rest: Vec<u8>,
}

/// Why a write did not finish.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The socket failed (the peer is gone).
    Io,
    /// The peer did not take the bytes within the limit.
    TimedOut,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub(crate) fn new(io: W) -> Self {
        Self {
            io,
            rest: Vec::new(),
        }
    }

    /// Writes `control` (raw frames), then each of `frames` as a text
    /// frame, emptying both, within `limit`; returns the payload bytes
    /// written. The batch is framed into one buffer and written with one
    /// plain write (the kernel takes far longer over a vectored write of a
    /// header and a payload slice per frame: measured in scenario c). No
    /// timer is armed unless the socket would block.
    pub(crate) async fn write(
        &mut self,
        control: &mut Vec<u8>,
        frames: &mut VecDeque<Bytes>,
        limit: Duration,
    ) -> Result<u64, WriteError> {
        let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
        let io = &mut self.io;
        let rest = &mut self.rest;
        let first = std::future::poll_fn(|cx| {
            Poll::Ready(frame_into(control, frames, |buf| {
                let mut done = 0;
                let r = write_some(io, cx, buf, &mut done);
                if r.is_pending() {
                    rest.extend_from_slice(&buf[done..]);
                }
                r
            }))
        })
        .await;
        let result = match first {
            Poll::Ready(r) => r,
            // The socket is full: the rest is kept until it drains.
            Poll::Pending => {
                let r = write_within(io, rest, limit).await;
                *rest = Vec::new();
                r
            }
        };
        result.map(|()| bytes)
    }

    /// Writes raw bytes (a close frame) within `limit`.
    pub(crate) async fn send_raw(&mut self, frame: &[u8], limit: Duration) {
        let _ = write_within(&mut self.io, frame, limit).await;
    }
}

/// Writes all of `buf` and flushes, within `limit`.
async fn write_within<W: AsyncWrite + Unpin>(
    io: &mut W,
    buf: &[u8],
    limit: Duration,
) -> Result<(), WriteError> {
    let mut done = 0;
    tokio::time::timeout(
        limit,
        std::future::poll_fn(|cx| write_some(io, cx, buf, &mut done)),
    )
    .await
    .unwrap_or(Err(WriteError::TimedOut))
}

/// Writes `buf[*done..]` and flushes, as far as the socket takes it.
fn write_some<W: AsyncWrite + Unpin>(
    io: &mut W,
    cx: &mut Context<'_>,
    buf: &[u8],
    done: &mut usize,
) -> Poll<Result<(), WriteError>> {
    while *done < buf.len() {
        match Pin::new(&mut *io).poll_write(cx, &buf[*done..]) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(WriteError::Io)),
            Poll::Ready(Ok(n)) => *done += n,
            Poll::Pending => return Poll::Pending,
        }
    }
    Pin::new(&mut *io)
        .poll_flush(cx)
        .map(|r| r.map_err(|_| WriteError::Io))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_each_length_class() {
        let mut h = [0u8; 10];
        assert_eq!(text_header(5, &mut h), 2);
        assert_eq!(&h[..2], [0x81, 5]);
        assert_eq!(text_header(125, &mut h), 2);
        assert_eq!(text_header(126, &mut h), 4);
        assert_eq!(&h[..4], [0x81, 126, 0, 126]);
        assert_eq!(text_header(65535, &mut h), 4);
        assert_eq!(text_header(65536, &mut h), 10);
        assert_eq!(&h[..10], [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(close_frame(4100, "x"), [0x88, 3, 0x10, 0x04, b'x']);
    }

    #[tokio::test]
    async fn frames_arrive_whole_over_plain_and_unvectored_streams() {
        for vectored in [true, false] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
            let (client, server) = tokio::join!(client, listener.accept());
            let (server, client) = (server.unwrap().0, client.unwrap());
            let mut w = if vectored {
                Writer::new(Box::new(server) as Box<dyn AsyncWrite + Unpin + Send>)
            } else {
                Writer::new(Box::new(NotVectored(server)) as Box<dyn AsyncWrite + Unpin + Send>)
            };
            // About 10 MB: more than a socket takes at once, so the rest
            // waits in the writer.
            let mut frames: VecDeque<Bytes> = (0..100)
                .map(|i| Bytes::from(format!("{{\"n\":{i}}}").repeat(i % 7 * 4000 + 1)))
                .collect();
            let expected: Vec<Bytes> = frames.iter().cloned().collect();
            let mut control = vec![0x8a, 0];
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut { client }, &mut got)
                    .await
                    .unwrap();
                got
            });
            w.write(&mut control, &mut frames, Duration::from_secs(5))
                .await
                .unwrap();
            assert!(frames.is_empty() && control.is_empty());
            assert_eq!(
                w.rest.capacity(),
                0,
                "what waited for the socket is released"
            );
            drop(w);
            let got = reader.await.unwrap();
            assert_eq!(&got[..2], [0x8a, 0], "control first");
            let mut at = 2;
            for f in expected {
                let mut h = [0u8; 10];
                let n = text_header(f.len(), &mut h);
                assert_eq!(&got[at..at + n], &h[..n]);
                assert_eq!(&got[at + n..at + n + f.len()], &f[..]);
                at += n + f.len();
            }
            assert_eq!(at, got.len());
        }
    }

    /// A stream without vectored writes, as TLS streams are.
    struct NotVectored(tokio::net::TcpStream);
    impl AsyncWrite for NotVectored {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }
}
