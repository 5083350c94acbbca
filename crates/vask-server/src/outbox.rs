//! A connection's bounded outgoing queue: the hub pushes without waiting,
//! the connection's writer drains it in batches.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use pusher_hub::{Full, Outbox};
use pusher_proto::ErrorCode;
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Bytes>,
    /// Bytes of `frames`.
    bytes: usize,
    close: Option<ErrorCode>,
    /// Set when the queue overflowed: the writer cuts the connection off.
    overflowed: bool,
}

/// The queue between the hub and one connection's writer, bounded in frames
/// and in bytes: a stalled consumer of large messages is cut off as soon as
/// one of the two is reached.
#[derive(Debug)]
pub(crate) struct ConnOutbox {
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
    max_bytes: usize,
}

/// What the writer takes out of the queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Drained {
    /// Frames to write (moved into the caller's buffer), and then maybe a
    /// close with this code.
    Frames(Option<ErrorCode>),
    /// The queue overflowed: close with 4100 now, dropping what is queued.
    Overflowed(usize),
}

impl ConnOutbox {
    /// A queue holding at most `capacity` frames and `max_bytes` bytes (one
    /// frame is always accepted into an empty queue, whatever its size).
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            capacity,
            max_bytes,
        }
    }

    /// Waits until there is something to drain.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Moves every queued frame into `into` (keeping both buffers' capacity).
    pub(crate) fn drain(&self, into: &mut VecDeque<Bytes>) -> Drained {
        let mut s = self.state.lock();
        if s.overflowed {
            let n = s.frames.len();
            s.frames.clear();
            s.bytes = 0;
            return Drained::Overflowed(n);
        }
        std::mem::swap(&mut s.frames, into);
        s.bytes = 0;
        Drained::Frames(s.close)
    }
}

impl Outbox for ConnOutbox {
    fn push(&self, frame: Bytes) -> Result<(), Full> {
        let mut s = self.state.lock();
        if s.overflowed || s.close.is_some() {
            return Err(Full);
        }
        let full = s.frames.len() >= self.capacity
            || (!s.frames.is_empty() && s.bytes + frame.len() > self.max_bytes);
        if full {
            s.overflowed = true;
            drop(s);
            self.ready.notify_one();
            return Err(Full);
        }
        s.bytes += frame.len();
        s.frames.push_back(frame);
        let first = s.frames.len() == 1;
        drop(s);
        if first {
            self.ready.notify_one();
        }
        Ok(())
    }

    fn close(&self, code: ErrorCode) {
        self.state.lock().close.get_or_insert(code);
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_cuts_off_and_drops() {
        let o = ConnOutbox::new(2, 1024);
        assert!(o.push(Bytes::from_static(b"a")).is_ok());
        assert!(o.push(Bytes::from_static(b"b")).is_ok());
        assert_eq!(o.push(Bytes::from_static(b"c")), Err(Full));
        let mut buf = VecDeque::new();
        assert_eq!(o.drain(&mut buf), Drained::Overflowed(2));
    }

    #[test]
    fn bytes_are_bounded_too() {
        let o = ConnOutbox::new(1000, 10);
        // One frame larger than the bound fits an empty queue.
        assert!(o.push(Bytes::from_static(b"0123456789ab")).is_ok());
        assert_eq!(o.push(Bytes::from_static(b"x")), Err(Full));
        let mut buf = VecDeque::new();
        assert_eq!(o.drain(&mut buf), Drained::Overflowed(1));

        let o = ConnOutbox::new(1000, 10);
        assert!(o.push(Bytes::from_static(b"01234")).is_ok());
        assert!(o.push(Bytes::from_static(b"56789")).is_ok());
        let mut buf = VecDeque::new();
        assert_eq!(o.drain(&mut buf), Drained::Frames(None));
        // Draining gives the bytes back.
        assert!(o.push(Bytes::from_static(b"0123456789")).is_ok());
        assert_eq!(o.push(Bytes::from_static(b"x")), Err(Full));
    }

    #[test]
    fn close_is_delivered_after_the_frames() {
        let o = ConnOutbox::new(8, 1024);
        o.push(Bytes::from_static(b"a")).unwrap();
        o.close(ErrorCode::Unauthorized);
        assert_eq!(o.push(Bytes::from_static(b"late")), Err(Full));
        let mut buf = VecDeque::new();
        assert_eq!(
            o.drain(&mut buf),
            Drained::Frames(Some(ErrorCode::Unauthorized))
        );
        assert_eq!(buf.len(), 1);
    }
}
