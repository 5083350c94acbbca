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
    close: Option<ErrorCode>,
    /// Set when the queue overflowed: the writer cuts the connection off.
    overflowed: bool,
}

/// The queue between the hub and one connection's writer.
#[derive(Debug)]
pub(crate) struct ConnOutbox {
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
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
    /// A queue holding at most `capacity` frames.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            capacity,
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
            return Drained::Overflowed(n);
        }
        std::mem::swap(&mut s.frames, into);
        Drained::Frames(s.close)
    }
}

impl Outbox for ConnOutbox {
    fn push(&self, frame: Bytes) -> Result<(), Full> {
        let mut s = self.state.lock();
        if s.overflowed || s.close.is_some() {
            return Err(Full);
        }
        if s.frames.len() >= self.capacity {
            s.overflowed = true;
            drop(s);
            self.ready.notify_one();
            return Err(Full);
        }
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
        let o = ConnOutbox::new(2);
        assert!(o.push(Bytes::from_static(b"a")).is_ok());
        assert!(o.push(Bytes::from_static(b"b")).is_ok());
        assert_eq!(o.push(Bytes::from_static(b"c")), Err(Full));
        let mut buf = VecDeque::new();
        assert_eq!(o.drain(&mut buf), Drained::Overflowed(2));
    }

    #[test]
    fn close_is_delivered_after_the_frames() {
        let o = ConnOutbox::new(8);
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
