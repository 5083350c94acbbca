//! A connection's bounded outgoing queue, runtime-neutral: the hub pushes
//! without waiting, the connection's writer drains it in batches and is
//! woken through a [`std::task::Waker`] (any executor's).
//!
//! Bounded in frames and in bytes: a consumer that stops reading is cut off
//! as soon as one of the two is reached (the driver closes it with 4100).
//! A push takes one short lock and wakes the writer only when it is asleep
//! (the first frame after a drain): a fan-out to a connection whose writer
//! is already busy costs no wake.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::Mutex;
use pusher_proto::ErrorCode;

use crate::effects::{Full, Outbox};

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Bytes>,
    /// Bytes of `frames`.
    bytes: usize,
    close: Option<ErrorCode>,
    /// Set when the queue overflowed: the writer cuts the connection off.
    overflowed: bool,
    /// The writer, while it waits for something to drain.
    waker: Option<Waker>,
}

impl State {
    fn ready(&self) -> bool {
        !self.frames.is_empty() || self.close.is_some() || self.overflowed
    }
}

/// The queue between the hub and one connection's writer.
#[derive(Debug)]
pub struct ConnQueue {
    state: Mutex<State>,
    capacity: usize,
    max_bytes: usize,
}

/// What the writer takes out of the queue.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Drained {
    /// Frames to write (moved into the caller's buffer), and then maybe a
    /// close with this code.
    Frames(Option<ErrorCode>),
    /// The queue overflowed: close with 4100 now; this many frames were
    /// queued and are dropped.
    Overflowed(usize),
}

impl ConnQueue {
    /// A queue holding at most `capacity` frames and `max_bytes` bytes (one
    /// frame is always accepted into an empty queue, whatever its size).
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            capacity,
            max_bytes,
        }
    }

    /// Ready when there is something to drain (frames, a close, an
    /// overflow); otherwise the waker is kept and woken by the next push.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state.lock();
        if s.ready() {
            return Poll::Ready(());
        }
        match &mut s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Moves every queued frame into `into` (an empty buffer; both keep
    /// their capacity).
    pub fn drain(&self, into: &mut VecDeque<Bytes>) -> Drained {
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

    fn wake(waker: Option<Waker>) {
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Outbox for ConnQueue {
    fn push(&self, frame: Bytes) -> Result<(), Full> {
        let mut s = self.state.lock();
        if s.overflowed || s.close.is_some() {
            return Err(Full);
        }
        let full = s.frames.len() >= self.capacity
            || (!s.frames.is_empty() && s.bytes + frame.len() > self.max_bytes);
        if full {
            s.overflowed = true;
            let waker = s.waker.take();
            drop(s);
            Self::wake(waker);
            return Err(Full);
        }
        s.bytes += frame.len();
        s.frames.push_back(frame);
        let waker = s.waker.take();
        drop(s);
        Self::wake(waker);
        Ok(())
    }

    fn close(&self, code: ErrorCode) {
        let mut s = self.state.lock();
        s.close.get_or_insert(code);
        let waker = s.waker.take();
        drop(s);
        Self::wake(waker);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_writer_is_woken_once_per_sleep() {
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let q = ConnQueue::new(100, 1 << 20);
        assert_eq!(q.poll_ready(&mut cx), Poll::Pending);
        for _ in 0..10 {
            q.push(Bytes::from_static(b"x")).unwrap();
        }
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "woken by the first push only"
        );
        assert_eq!(q.poll_ready(&mut cx), Poll::Ready(()));
        let mut buf = VecDeque::new();
        assert_eq!(q.drain(&mut buf), Drained::Frames(None));
        assert_eq!(buf.len(), 10);
        assert_eq!(q.poll_ready(&mut cx), Poll::Pending);
        q.close(ErrorCode::Reconnect);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(q.poll_ready(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn overflow_cuts_off_and_drops() {
        let o = ConnQueue::new(2, 1024);
        assert!(o.push(Bytes::from_static(b"a")).is_ok());
        assert!(o.push(Bytes::from_static(b"b")).is_ok());
        assert_eq!(o.push(Bytes::from_static(b"c")), Err(Full));
        let mut buf = VecDeque::new();
        assert_eq!(o.drain(&mut buf), Drained::Overflowed(2));
    }

    #[test]
    fn bytes_are_bounded_too() {
        let o = ConnQueue::new(1000, 10);
        // One frame larger than the bound fits an empty queue.
        assert!(o.push(Bytes::from_static(b"0123456789ab")).is_ok());
        assert_eq!(o.push(Bytes::from_static(b"x")), Err(Full));
        let mut buf = VecDeque::new();
        assert_eq!(o.drain(&mut buf), Drained::Overflowed(1));

        let o = ConnQueue::new(1000, 10);
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
        let o = ConnQueue::new(8, 1024);
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
