//! The outbox of a plain TCP connection, written without its task.
//!
//! A push queues the frame and, when the connection has nothing waiting
//! yet, lists it in the pushing thread's flush batch. The batch's flush
//! task writes each listed connection's frames with one non-blocking
//! write, round after round while connections are listed: a fan-out to
//! 10,000 connections wakes one task, not 10,000, and frames pushed while
//! a round is being written ride along with it or wait for the next. The
//! connection's own task is woken only when it has something to do: the
//! socket is full (it waits for the peer, within the write timeout), the
//! socket failed, the queue overflowed (4100), or the hub asked for a
//! close; and it says the last words.
//!
//! Bounded like the hub's `ConnQueue`: in frames and bytes queued. A frame
//! the socket took in part stays queued with how much of it went; nothing
//! is copied per connection while its socket is full.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use pusher_hub::{Full, Outbox};
use pusher_proto::ErrorCode;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::Instant;

use crate::conn::{wire_form, wire_len, with_scratch};
use crate::usage::AppUsage;

/// Connections a flush writes before it lets other tasks (publishers, the
/// I/O driver) run; what they push to connections not yet written rides
/// along. Measured: 64 against 512 gave scenario b a third of the p99
/// latency and c about 15% more deliveries.
const FLUSH_CHUNK: usize = 64;

/// Frames a drained queue may keep room for.
const KEEP_FRAMES: usize = 64;

/// Control bytes (answers to pings) waiting for a peer that does not read,
/// beyond which it is cut off like any slow consumer.
pub(crate) const MAX_CONTROL_BYTES: usize = 16 * 1024;

/// What a connection's writes count into.
pub(crate) struct Counters {
    pub(crate) frames_out: Counter,
    pub(crate) bytes_out: Counter,
    pub(crate) usage: Arc<AppUsage>,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    /// Bytes of `frames`.
    bytes: usize,
    /// Raw frames of the connection's task (pongs, a close), sent before
    /// the frames queued after them.
    control: Vec<u8>,
    /// Bytes of the first frame's wire form (header and payload) the
    /// socket took: the rest of it goes first. Nothing is copied for a
    /// socket that is full: the queue keeps the shared frames.
    offset: usize,
    /// Frames written whole, ever.
    sent: u64,
    close: Option<ErrorCode>,
    overflowed: bool,
    /// The socket failed: the peer is gone.
    failed: bool,
    /// In a flush batch.
    listed: bool,
    /// The last words are being said: nothing more is queued.
    ended: bool,
    /// The connection's task writes (the socket is full, or it closes):
    /// flushes leave this connection alone.
    task: bool,
    /// The connection's task, while it waits for something to do.
    waker: Option<Waker>,
}

impl State {
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// What the connection's task is to do after [`Wire::work`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing more: the socket took everything.
    Wrote,
    /// Close with this code (after the frames queued).
    Close(ErrorCode),
    /// The peer could not keep up: this many frames are dropped.
    Slow(usize),
    /// The socket failed.
    Peer,
}

/// A plain TCP connection's outbox and write half.
pub(crate) struct Wire {
    state: Mutex<State>,
    io: OwnedWriteHalf,
    capacity: usize,
    max_bytes: usize,
    me: Weak<Wire>,
    runtime: tokio::runtime::Handle,
    counters: Counters,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire").finish_non_exhaustive()
    }
}

/// Connections listed for a flush, and whether it still runs (then it
/// writes those listed next).
type Batch = Mutex<(bool, Vec<Arc<Wire>>)>;

thread_local! {
    /// The batch this thread's pushes list connections in, while its flush
    /// runs.
    static OPEN: RefCell<Option<Arc<Batch>>> = const { RefCell::new(None) };
}

/// A batch's flush: the connections it is writing, and how far it got.
struct Flush {
    batch: Arc<Batch>,
    wires: Vec<Arc<Wire>>,
    at: usize,
}

impl Drop for Flush {
    /// Closes the batch, so that later pushes open a new one, also when the
    /// flush is dropped unfinished (its runtime shut down): the connections
    /// it did not write are unlisted, and listed again by their next push.
    fn drop(&mut self) {
        let rest = {
            let mut b = self.batch.lock();
            b.0 = false;
            std::mem::take(&mut b.1)
        };
        let at = self.at.min(self.wires.len());
        for wire in self.wires.drain(at..).chain(rest) {
            wire.state.lock().listed = false;
        }
    }
}

/// Writes a batch's connections, in turn, and then those listed in it
/// meanwhile, until none is: a connection written early in a round waits
/// for the next round, collecting the frames pushed meanwhile into one
/// write.
async fn flush(mut f: Flush) {
    // First the tasks already runnable (publishers handling requests that
    // arrived together): what they push rides along in this flush.
    tokio::task::yield_now().await;
    let mut written = 0usize;
    loop {
        {
            let mut b = f.batch.lock();
            if b.1.is_empty() {
                // Closed under the lock that found it empty: a connection
                // listed after this opens a new batch.
                b.0 = false;
                return;
            }
            f.wires.clear();
            std::mem::swap(&mut f.wires, &mut b.1);
        }
        f.at = 0;
        while let Some(wire) = f.wires.get(f.at) {
            wire.flush();
            f.at += 1;
            written += 1;
            if written.is_multiple_of(FLUSH_CHUNK) {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Writes as much of `buf` as the socket takes now: `Ok(n)` with `n` short
/// of the whole when it is full.
fn try_write(io: &OwnedWriteHalf, buf: &[u8]) -> Result<usize, ()> {
    let mut done = 0;
    while done < buf.len() {
        match io.try_write(&buf[done..]) {
            Ok(0) => return Err(()),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
    Ok(done)
}

impl Wire {
    /// An outbox of at most `capacity` frames and `max_bytes` bytes queued
    /// (one frame always fits an empty queue), writing to `io`.
    pub(crate) fn new(
        io: OwnedWriteHalf,
        capacity: usize,
        max_bytes: usize,
        counters: Counters,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            state: Mutex::new(State::default()),
            io,
            capacity,
            max_bytes,
            me: me.clone(),
            runtime: tokio::runtime::Handle::current(),
            counters,
        })
    }

    /// Lists this connection in the thread's open batch, or in a new one
    /// whose flush is spawned.
    fn list(&self) {
        let Some(me) = self.me.upgrade() else { return };
        OPEN.with_borrow_mut(|open| {
            if let Some(batch) = open {
                let mut b = batch.lock();
                if b.0 {
                    b.1.push(me);
                    return;
                }
            }
            let batch = Arc::new(Mutex::new((true, vec![me])));
            *open = Some(batch.clone());
            self.runtime.spawn(flush(Flush {
                batch,
                wires: Vec::new(),
                at: 0,
            }));
        });
    }

    fn count(&self, frames: u64, bytes: u64) {
        if frames > 0 {
            self.counters.frames_out.inc_by(frames);
            self.counters.bytes_out.inc_by(bytes);
            self.counters.usage.bytes_out(bytes);
        }
    }

    /// Writes what waits (the rest of a frame the socket took in part,
    /// then control, then the queued frames) as far as the socket takes it
    /// now; what it took leaves the queue. `Ok(true)`: all of it.
    fn write_out(&self, s: &mut State) -> Result<bool, ()> {
        if s.control.is_empty() && s.frames.is_empty() {
            return Ok(true);
        }
        let n = with_scratch(|scratch| {
            let mut frames = s.frames.iter();
            if s.offset > 0
                && let Some(f) = frames.next()
            {
                wire_form(f, scratch);
                scratch.drain(..s.offset);
            }
            scratch.extend_from_slice(&s.control);
            for f in frames {
                wire_form(f, scratch);
            }
            try_write(&self.io, scratch)
        })?;
        // What the socket took leaves the queue.
        let mut left = n;
        let (mut frames, mut bytes) = (0u64, 0u64);
        if s.offset > 0
            && let Some(f) = s.frames.front()
        {
            let rest = wire_len(f.len()) - s.offset;
            if left < rest {
                s.offset += left;
                return Ok(false);
            }
            left -= rest;
            s.offset = 0;
            if let Some(f) = s.frames.pop_front() {
                (frames, bytes) = (1, f.len() as u64);
                s.bytes -= f.len();
            }
        }
        let c = left.min(s.control.len());
        s.control.drain(..c);
        left -= c;
        while let Some(f) = s.frames.front() {
            let len = wire_len(f.len());
            if left < len {
                s.offset = left;
                break;
            }
            left -= len;
            frames += 1;
            bytes += f.len() as u64;
            s.bytes -= f.len();
            s.frames.pop_front();
        }
        s.sent += frames;
        self.count(frames, bytes);
        let all = s.frames.is_empty() && s.control.is_empty();
        if all {
            if s.frames.capacity() > KEEP_FRAMES {
                s.frames = VecDeque::new();
            }
            if s.control.capacity() > MAX_CONTROL_BYTES {
                s.control = Vec::new();
            }
        }
        Ok(all)
    }

    /// Drops the queued frames but one the socket took in part (the
    /// stream stays whole); returns how many.
    fn drop_queued(s: &mut State) -> usize {
        let partial = if s.offset > 0 {
            s.frames.pop_front()
        } else {
            None
        };
        let n = s.frames.len();
        s.frames.clear();
        s.bytes = 0;
        if let Some(f) = partial {
            s.bytes = f.len();
            s.frames.push_back(f);
        }
        n
    }

    /// A flush's turn: writes what is queued unless the task writes.
    fn flush(&self) {
        let mut s = self.state.lock();
        s.listed = false;
        if s.task || s.failed || s.overflowed {
            return;
        }
        match self.write_out(&mut s) {
            Ok(true) => {}
            Ok(false) => {
                s.task = true;
                s.wake();
            }
            Err(()) => {
                s.failed = true;
                s.wake();
            }
        }
    }

    /// Ready when the connection's task has something to do (see
    /// [`Wire::work`]); otherwise its waker is kept.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state.lock();
        if s.task || s.failed || s.overflowed || s.close.is_some() {
            return Poll::Ready(());
        }
        match &mut s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Sends the task's control bytes (emptying `bytes`) in order with the
    /// frames; false when too many wait for a peer that does not read.
    pub(crate) fn control(&self, bytes: &mut Vec<u8>) -> bool {
        let mut s = self.state.lock();
        s.control.append(bytes);
        if s.control.len() > MAX_CONTROL_BYTES {
            return false;
        }
        // Queued frames are listed (their flush sends the control too), or
        // the task writes them.
        if !s.listed && !s.task && !s.failed {
            match self.write_out(&mut s) {
                Ok(true) => {}
                Ok(false) => s.task = true,
                Err(()) => s.failed = true,
            }
        }
        true
    }

    /// What [`Wire::poll_ready`] announced: writes what the socket did not
    /// take, waiting for the peer (each batch within `limit`), or reports
    /// the close, overflow or failure.
    pub(crate) async fn work(&self, limit: Duration) -> Step {
        let mut deadline = None;
        loop {
            {
                let mut s = self.state.lock();
                if s.overflowed {
                    return Step::Slow(Self::drop_queued(&mut s));
                }
                if s.failed {
                    return Step::Peer;
                }
                if s.task {
                    let sent = s.sent;
                    match self.write_out(&mut s) {
                        Ok(true) => s.task = false,
                        Ok(false) => {
                            // Each frame gets the whole time: a peer that
                            // reads, however slowly, is not cut off for
                            // what queued behind it.
                            if s.sent != sent {
                                deadline = None;
                            }
                        }
                        Err(()) => {
                            s.failed = true;
                            return Step::Peer;
                        }
                    }
                }
                if !s.task {
                    return match s.close {
                        Some(code) => Step::Close(code),
                        None => Step::Wrote,
                    };
                }
            }
            let at = *deadline.get_or_insert_with(|| Instant::now() + limit);
            match tokio::time::timeout_at(at, self.io.writable()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Step::Peer,
                Err(_) => {
                    let s = self.state.lock();
                    return Step::Slow(s.frames.len());
                }
            }
        }
    }

    /// The last words, within `limit`: what the socket did not take, the
    /// control bytes, the queued frames if `keep_frames`, then `extra`,
    /// then the raw `close` frame. The task writes from now on.
    pub(crate) async fn last_words(
        &self,
        keep_frames: bool,
        extra: Option<Bytes>,
        close: &[u8],
        limit: Duration,
    ) {
        let at = Instant::now() + limit;
        {
            let mut s = self.state.lock();
            s.task = true;
            s.ended = true;
            s.overflowed = false;
            if !keep_frames {
                Self::drop_queued(&mut s);
            }
            if let Some(f) = extra {
                s.bytes += f.len();
                s.frames.push_back(f);
            }
        }
        let mut close_queued = false;
        loop {
            {
                let mut s = self.state.lock();
                if s.failed {
                    return;
                }
                match self.write_out(&mut s) {
                    Ok(true) if close_queued => return,
                    Ok(true) => {
                        s.control.extend_from_slice(close);
                        close_queued = true;
                        continue;
                    }
                    Ok(false) => {}
                    Err(()) => {
                        s.failed = true;
                        return;
                    }
                }
            }
            if !matches!(
                tokio::time::timeout_at(at, self.io.writable()).await,
                Ok(Ok(()))
            ) {
                return;
            }
        }
    }
}

impl Outbox for Wire {
    fn push(&self, frame: Bytes) -> Result<(), Full> {
        let mut s = self.state.lock();
        if s.overflowed || s.close.is_some() || s.failed || s.ended {
            return Err(Full);
        }
        let full = s.frames.len() >= self.capacity
            || (!s.frames.is_empty() && s.bytes + frame.len() > self.max_bytes);
        if full {
            s.overflowed = true;
            s.wake();
            return Err(Full);
        }
        s.bytes += frame.len();
        s.frames.push_back(frame);
        if s.listed || s.task {
            return Ok(());
        }
        s.listed = true;
        drop(s);
        self.list();
        Ok(())
    }

    fn close(&self, code: ErrorCode) {
        let mut s = self.state.lock();
        s.close.get_or_insert(code);
        s.wake();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::conn::close_frame;

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A wire over a real socket, the client end, and its frame counter.
    async fn pair(capacity: usize, max_bytes: usize) -> (Arc<Wire>, TcpStream, Counter) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (client, server) = tokio::join!(
            TcpStream::connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        let (_, w) = server.unwrap().0.into_split();
        let c = crate::config::AppConfig::development();
        let m = Arc::new(crate::metrics::Metrics::default()).app(&c.id);
        let counters = Counters {
            frames_out: m.frames_out.clone(),
            bytes_out: m.bytes_out.clone(),
            usage: Arc::new(AppUsage::new(&c, m.clone())),
        };
        let wire = Wire::new(w, capacity, max_bytes, counters);
        (wire, client.unwrap(), m.frames_out)
    }

    async fn read_exactly(client: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut got = vec![0; n];
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got))
            .await
            .expect("in time")
            .unwrap();
        got
    }

    #[tokio::test]
    async fn a_flush_writes_without_waking_the_task() {
        let (wire, mut client, frames_out) = pair(100, 1 << 20).await;
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(wire.poll_ready(&mut cx).is_pending());
        for f in ["a", "bb", "ccc"] {
            wire.push(Bytes::from_static(f.as_bytes())).unwrap();
        }
        let got = read_exactly(&mut client, 12).await;
        assert_eq!(got, b"\x81\x01a\x81\x02bb\x81\x03ccc");
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "the task slept on");
        assert_eq!(frames_out.get(), 3);
        assert!(wire.poll_ready(&mut cx).is_pending());
    }

    /// A runtime shut down before its flush ran (tests running one after
    /// another on one thread) leaves no open batch behind for the next.
    #[test]
    fn a_flush_dropped_unrun_closes_its_batch() {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let first = runtime();
        first.block_on(async {
            let (wire, _client, _) = pair(100, 1 << 20).await;
            wire.push(Bytes::from_static(b"a")).unwrap();
        });
        drop(first);
        runtime().block_on(async {
            let (wire, mut client, _) = pair(100, 1 << 20).await;
            wire.push(Bytes::from_static(b"b")).unwrap();
            assert_eq!(read_exactly(&mut client, 3).await, b"\x81\x01b");
        });
    }

    #[tokio::test]
    async fn a_full_socket_is_left_to_the_task() {
        let (wire, mut client, frames_out) = pair(1000, 64 << 20).await;
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(wire.poll_ready(&mut cx).is_pending());
        // About 13 MB: more than the socket takes at once.
        let frame = Bytes::from(vec![b'x'; 65_000]);
        for _ in 0..200 {
            wire.push(frame.clone()).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(5), async {
            while count.0.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the task is woken");
        assert!(wire.poll_ready(&mut cx).is_ready());
        let reader = tokio::spawn(async move { read_exactly(&mut client, 200 * 65_004).await });
        assert_eq!(wire.work(Duration::from_secs(5)).await, Step::Wrote);
        let got = reader.await.unwrap();
        for f in got.chunks(65_004) {
            assert_eq!(f[..4], [0x81, 126, 0xfd, 0xe8]);
            assert!(f[4..].iter().all(|b| *b == b'x'));
        }
        assert_eq!(frames_out.get(), 200);
        assert!(wire.poll_ready(&mut cx).is_pending(), "flushes write again");
    }

    #[tokio::test]
    async fn a_peer_that_does_not_read_is_slow() {
        let (wire, _client, frames_out) = pair(1000, 64 << 20).await;
        let frame = Bytes::from(vec![b'x'; 65_000]);
        for _ in 0..200 {
            wire.push(frame.clone()).unwrap();
        }
        // The flush finds the socket full and leaves the rest to the task.
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        tokio::time::timeout(Duration::from_secs(5), async {
            while wire
                .poll_ready(&mut Context::from_waker(&waker))
                .is_pending()
            {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the task has work");
        assert!(matches!(
            wire.work(Duration::from_millis(200)).await,
            Step::Slow(n) if n > 0
        ));
        assert!(frames_out.get() < 200);

        // And one that overflows the queue.
        let (wire, _client, _) = pair(2, 1 << 20).await;
        wire.push(Bytes::from_static(b"a")).unwrap();
        wire.push(Bytes::from_static(b"b")).unwrap();
        assert_eq!(wire.push(Bytes::from_static(b"c")), Err(Full));
        assert_eq!(wire.work(Duration::from_secs(1)).await, Step::Slow(2));
    }

    #[tokio::test]
    async fn last_words_come_in_order_and_end_the_queue() {
        let (wire, mut client, _) = pair(100, 1 << 20).await;
        wire.push(Bytes::from_static(b"a")).unwrap();
        assert!(wire.control(&mut vec![0x8a, 0]));
        wire.close(ErrorCode::Reconnect);
        assert_eq!(wire.push(Bytes::from_static(b"late")), Err(Full));
        assert_eq!(
            wire.work(Duration::from_secs(1)).await,
            Step::Close(ErrorCode::Reconnect)
        );
        let close = close_frame(4200, "");
        wire.last_words(
            true,
            Some(Bytes::from_static(b"x")),
            &close,
            Duration::from_secs(1),
        )
        .await;
        let got = read_exactly(&mut client, 2 + 3 + 3 + 4).await;
        assert_eq!(got, b"\x8a\x00\x81\x01a\x81\x01x\x88\x02\x10\x68");
    }
}
