//! The streams a subscriber hands out.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::mpsc;

/// A stream of `T` (channel events, connection states, ...), fed by the
/// subscriber's background task.
///
/// Implements [`futures_util::Stream`]; [`EventStream::recv`] needs no extra
/// import. Items are buffered without bound until read: drop a stream you
/// stop reading. It ends when its source goes away (the channel is
/// unsubscribed, the subscriber stops).
pub struct EventStream<T> {
    rx: mpsc::UnboundedReceiver<T>,
}

impl<T> EventStream<T> {
    pub(crate) fn new() -> (mpsc::UnboundedSender<T>, Self) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Self { rx })
    }

    /// A stream that has already ended.
    pub(crate) fn ended() -> Self {
        Self::new().1
    }

    /// The next item, or `None` once the stream has ended.
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await
    }

    /// The next item if one is buffered, without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

impl<T> Stream for EventStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }
}

impl<T> fmt::Debug for EventStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("buffered", &self.rx.len())
            .finish()
    }
}
