//! Pusher's webhook timing rules as a state machine, with time as an input:
//! events are batched (a batch leaves `batch` after its first event, or
//! as soon as it holds `batch_max`); `channel_vacated` and `member_removed`
//! are held `hold` and dropped, together with the `channel_occupied` or
//! `member_added` that cancels them, when the channel or member comes back
//! meanwhile (no webhooks for a page reload). The driver sends what
//! [`Batcher::release_due`] gives and sleeps until [`Batcher::next_deadline`].

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::time::Millis;

use pusher_proto::webhook::WebhookEvent;

/// The timing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRules {
    /// A batch leaves this long after its first event...
    pub batch: Duration,
    /// ...or as soon as it holds this many events.
    pub batch_max: usize,
    /// How long leaves are held back (zero: not held).
    pub hold: Duration,
}

impl Default for BatchRules {
    /// Pusher's: 250 ms or 20 events, 3 s hold.
    fn default() -> Self {
        Self {
            batch: Duration::from_millis(250),
            batch_max: 20,
            hold: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
enum HoldKey {
    Channel(String),
    Member(String, String),
}

fn hold_key(e: &WebhookEvent) -> Option<HoldKey> {
    match e {
        WebhookEvent::ChannelVacated { channel } | WebhookEvent::ChannelOccupied { channel } => {
            Some(HoldKey::Channel(channel.clone()))
        }
        WebhookEvent::MemberRemoved { channel, user_id }
        | WebhookEvent::MemberAdded { channel, user_id } => {
            Some(HoldKey::Member(channel.clone(), user_id.clone()))
        }
        _ => None,
    }
}

/// One app's webhook events on their way to batches.
#[derive(Debug)]
pub struct Batcher {
    rules: BatchRules,
    /// Held leaves: when due, their arrival order, the event.
    held: HashMap<HoldKey, (Millis, u64, WebhookEvent)>,
    arrivals: u64,
    batch: Vec<WebhookEvent>,
    batch_due: Option<Millis>,
    ready: VecDeque<Vec<WebhookEvent>>,
}

impl Batcher {
    /// An empty batcher.
    pub fn new(rules: BatchRules) -> Self {
        Self {
            rules: BatchRules {
                batch_max: rules.batch_max.max(1),
                ..rules
            },
            held: HashMap::new(),
            arrivals: 0,
            batch: Vec::new(),
            batch_due: None,
            ready: VecDeque::new(),
        }
    }

    /// An event happened at `now`.
    pub fn accept(&mut self, event: WebhookEvent, now: Millis) {
        let Some(key) = hold_key(&event) else {
            return self.add(event, now);
        };
        match event {
            WebhookEvent::ChannelVacated { .. } | WebhookEvent::MemberRemoved { .. }
                if !self.rules.hold.is_zero() =>
            {
                self.arrivals += 1;
                self.held
                    .insert(key, (now + self.rules.hold, self.arrivals, event));
            }
            WebhookEvent::ChannelOccupied { .. } | WebhookEvent::MemberAdded { .. } => {
                // Back within the hold: neither the leave nor this return is
                // sent.
                if self.held.remove(&key).is_none() {
                    self.add(event, now);
                }
            }
            event => self.add(event, now),
        }
    }

    fn add(&mut self, event: WebhookEvent, now: Millis) {
        if self.batch.is_empty() {
            self.batch_due = Some(now + self.rules.batch);
        }
        self.batch.push(event);
        if self.batch.len() >= self.rules.batch_max {
            self.close_batch();
        }
    }

    fn close_batch(&mut self) {
        self.batch_due = None;
        if !self.batch.is_empty() {
            self.ready.push_back(std::mem::take(&mut self.batch));
        }
    }

    /// Moves the holds due at `now` into the batch, closes the batch if its
    /// window passed, and gives the next batch ready to send.
    pub fn release_due(&mut self, now: Millis) -> Option<Vec<WebhookEvent>> {
        let mut due: Vec<(Millis, u64, HoldKey)> = self
            .held
            .iter()
            .filter(|(_, (t, _, _))| *t <= now)
            .map(|(k, (t, n, _))| (*t, *n, k.clone()))
            .collect();
        due.sort_by_key(|(t, n, _)| (*t, *n));
        for (t, _, k) in due {
            if let Some((_, _, ev)) = self.held.remove(&k) {
                self.add(ev, t);
            }
        }
        if self.batch_due.is_some_and(|d| d <= now) {
            self.close_batch();
        }
        self.ready.pop_front()
    }

    /// Stops holding (shutdown): every held event joins the batch, in the
    /// order they were due, and the batch closes.
    pub fn release_all(&mut self) {
        let mut all: Vec<(Millis, u64, WebhookEvent)> = self.held.drain().map(|(_, v)| v).collect();
        all.sort_by_key(|(t, n, _)| (*t, *n));
        self.batch.extend(all.into_iter().map(|(_, _, e)| e));
        self.close_batch();
    }

    /// When [`Batcher::release_due`] must next be called (`None`: nothing
    /// waits).
    pub fn next_deadline(&self) -> Option<Millis> {
        if !self.ready.is_empty() {
            return Some(Millis::ZERO);
        }
        let hold = self.held.values().map(|(t, _, _)| *t).min();
        [hold, self.batch_due].into_iter().flatten().min()
    }

    /// Whether nothing is held, batched or ready.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.batch.is_empty() && self.ready.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Millis {
        Millis::from_millis(n)
    }

    fn occupied(c: &str) -> WebhookEvent {
        WebhookEvent::ChannelOccupied { channel: c.into() }
    }
    fn vacated(c: &str) -> WebhookEvent {
        WebhookEvent::ChannelVacated { channel: c.into() }
    }
    fn removed(c: &str, u: &str) -> WebhookEvent {
        WebhookEvent::MemberRemoved {
            channel: c.into(),
            user_id: u.into(),
        }
    }
    fn miss(c: &str) -> WebhookEvent {
        WebhookEvent::CacheMiss { channel: c.into() }
    }

    #[test]
    fn a_batch_leaves_after_its_window() {
        let mut b = Batcher::new(BatchRules::default());
        assert_eq!(b.next_deadline(), None);
        b.accept(occupied("a"), ms(1000));
        b.accept(miss("c"), ms(1100));
        assert_eq!(b.next_deadline(), Some(ms(1250)));
        assert_eq!(b.release_due(ms(1249)), None);
        assert_eq!(
            b.release_due(ms(1250)),
            Some(vec![occupied("a"), miss("c")])
        );
        assert!(b.is_empty());
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn a_full_batch_leaves_at_once() {
        let mut b = Batcher::new(BatchRules {
            batch_max: 3,
            ..BatchRules::default()
        });
        for i in 0..7 {
            b.accept(miss(&format!("c{i}")), ms(0));
        }
        assert_eq!(b.next_deadline(), Some(ms(0)));
        assert_eq!(b.release_due(ms(0)).map(|v| v.len()), Some(3));
        assert_eq!(b.release_due(ms(0)).map(|v| v.len()), Some(3));
        assert_eq!(b.release_due(ms(0)), None);
        assert_eq!(b.release_due(ms(250)).map(|v| v.len()), Some(1));
    }

    #[test]
    fn leaves_are_held_and_a_return_cancels_both() {
        let mut b = Batcher::new(BatchRules::default());
        b.accept(vacated("a"), ms(0));
        assert_eq!(b.next_deadline(), Some(ms(3000)));
        assert_eq!(b.release_due(ms(2999)), None);
        // A page reload: back within the hold, nothing is sent.
        b.accept(occupied("a"), ms(2000));
        assert!(b.is_empty());
        assert_eq!(b.release_due(ms(10_000)), None);
        // Gone for good: sent after the hold, then in the next window.
        b.accept(vacated("a"), ms(20_000));
        assert_eq!(b.release_due(ms(23_000)), None);
        assert_eq!(b.next_deadline(), Some(ms(23_250)));
        assert_eq!(b.release_due(ms(23_250)), Some(vec![vacated("a")]));
    }

    #[test]
    fn holds_due_together_leave_in_arrival_order() {
        let mut b = Batcher::new(BatchRules::default());
        b.accept(removed("p", "1"), ms(0));
        b.accept(vacated("p"), ms(0));
        b.accept(removed("p", "2"), ms(0));
        assert_eq!(b.release_due(ms(3000)), None);
        assert_eq!(
            b.release_due(ms(3250)),
            Some(vec![removed("p", "1"), vacated("p"), removed("p", "2")])
        );
    }

    #[test]
    fn release_all_stops_holding() {
        let mut b = Batcher::new(BatchRules::default());
        b.accept(removed("p", "1"), ms(0));
        b.accept(occupied("x"), ms(10));
        b.release_all();
        assert_eq!(
            b.release_due(ms(10)),
            Some(vec![occupied("x"), removed("p", "1")])
        );
        assert!(b.is_empty());
    }
}
