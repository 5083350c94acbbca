//! Which nodes are alive, as one node sees it, and which of them is the
//! leader (the smallest id). Every node applies the same rules to what it
//! hears, so they agree once messages flow; no node asks another.

use std::time::Duration;

use crate::time::Millis;
use std::collections::BTreeMap;

use crate::cluster::NodeId;

/// The live nodes as this node sees them. Time is an input (a [`Millis`]
/// from any fixed origin), as for the hub.
#[derive(Debug)]
pub struct Membership {
    me: NodeId,
    timeout: Duration,
    /// Other nodes, with when each was last heard from.
    others: BTreeMap<NodeId, Millis>,
    /// Since when this node's own connection to the bus is up.
    up_since: Option<Millis>,
}

/// What changed when time passed or a node was heard from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct MembershipChange {
    /// Nodes heard from for the first time: ask them for a snapshot.
    pub joined: Vec<NodeId>,
    /// Nodes silent past the timeout (or gone): remove their state.
    pub dead: Vec<NodeId>,
    /// The new leader, when it changed.
    pub leader: Option<NodeId>,
}

impl Membership {
    /// This node, alone; `timeout` of silence makes another node dead.
    pub fn new(me: NodeId, timeout: Duration) -> Self {
        Self {
            me,
            timeout,
            others: BTreeMap::new(),
            up_since: None,
        }
    }

    /// This node.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// The leader: the smallest live id, this node included.
    pub fn leader(&self) -> &NodeId {
        self.others
            .keys()
            .next()
            .filter(|first| **first < self.me)
            .unwrap_or(&self.me)
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        *self.leader() == self.me
    }

    /// The other live nodes.
    pub fn others(&self) -> impl Iterator<Item = &NodeId> {
        self.others.keys()
    }

    /// Since when this node's bus connection is up.
    pub fn up_since(&self) -> Option<Millis> {
        self.up_since
    }

    /// Whether this node's bus connection is up.
    pub fn is_up(&self) -> bool {
        self.up_since.is_some()
    }

    /// The bus connection came up (again). Until it has been up for the
    /// timeout, silence proves nothing: nobody is declared dead.
    pub fn bus_up(&mut self, now: Millis) {
        self.up_since.get_or_insert(now);
    }

    /// The bus connection went down: the others are not heard, but not dead
    /// either; their state is kept until the bus is back.
    pub fn bus_down(&mut self) {
        self.up_since = None;
    }

    /// A message from `node` arrived.
    pub fn heard(&mut self, node: &NodeId, now: Millis) -> MembershipChange {
        if *node == self.me {
            return MembershipChange::default();
        }
        let leader = self.leader().clone();
        let mut change = MembershipChange::default();
        if self.others.insert(node.clone(), now).is_none() {
            change.joined.push(node.clone());
        }
        self.leader_change(&leader, &mut change);
        change
    }

    /// `node` said goodbye (or must be forgotten).
    pub fn remove(&mut self, node: &NodeId) -> MembershipChange {
        let leader = self.leader().clone();
        let mut change = MembershipChange::default();
        if self.others.remove(node).is_some() {
            change.dead.push(node.clone());
        }
        self.leader_change(&leader, &mut change);
        change
    }

    /// Nodes silent past the timeout are dead, if this node's bus has been up
    /// long enough to have heard them.
    pub fn expire(&mut self, now: Millis) -> MembershipChange {
        let mut change = MembershipChange::default();
        let Some(up) = self.up_since else {
            return change;
        };
        if now < up + self.timeout {
            return change;
        }
        let leader = self.leader().clone();
        let timeout = self.timeout;
        self.others.retain(|node, heard| {
            let alive = now < *heard + timeout;
            if !alive {
                change.dead.push(node.clone());
            }
            alive
        });
        self.leader_change(&leader, &mut change);
        change
    }

    fn leader_change(&self, before: &NodeId, change: &mut MembershipChange) {
        if self.leader() != before {
            change.leader = Some(self.leader().clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Millis {
        Millis::from_millis(n)
    }

    fn node(name: &str) -> NodeId {
        NodeId::new(name, 1)
    }

    #[test]
    fn the_smallest_live_node_leads() {
        let mut m = Membership::new(node("b"), Duration::from_millis(5000));
        m.bus_up(ms(0));
        assert!(m.is_leader());
        let c = m.heard(&node("c"), ms(0));
        assert_eq!(c.joined, [node("c")]);
        assert_eq!(c.leader, None);
        let c = m.heard(&node("a"), ms(0));
        assert_eq!(c.leader, Some(node("a")));
        assert!(!m.is_leader());
        // Heard again: nothing new.
        assert_eq!(m.heard(&node("a"), ms(100)), MembershipChange::default());
        let c = m.remove(&node("a"));
        assert_eq!(c.dead, [node("a")]);
        assert_eq!(c.leader, Some(node("b")));
    }

    #[test]
    fn silence_kills_only_while_the_bus_is_up() {
        let mut m = Membership::new(node("b"), Duration::from_millis(5000));
        m.bus_up(ms(0));
        let _ = m.heard(&node("a"), ms(0));
        let _ = m.heard(&node("c"), ms(3000));
        assert_eq!(m.expire(ms(4999)), MembershipChange::default());
        let c = m.expire(ms(5000));
        assert_eq!(c.dead, [node("a")]);
        assert_eq!(c.leader, Some(node("b")));
        // Our bus goes down: nobody dies, however long.
        m.bus_down();
        assert_eq!(m.expire(ms(60_000)), MembershipChange::default());
        // Back up: the others get a full timeout to be heard again.
        m.bus_up(ms(60_000));
        assert_eq!(m.expire(ms(64_999)), MembershipChange::default());
        let _ = m.heard(&node("c"), ms(62_000));
        assert_eq!(m.expire(ms(65_000)), MembershipChange::default());
        assert_eq!(m.expire(ms(67_000)).dead, [node("c")]);
    }

    #[test]
    fn a_restarted_node_is_another_node() {
        let mut m = Membership::new(node("b"), Duration::from_millis(5000));
        let _ = m.heard(&NodeId::new("a", 1), ms(0));
        let c = m.heard(&NodeId::new("a", 2), ms(0));
        assert_eq!(c.joined, [NodeId::new("a", 2)]);
        assert_eq!(m.others().count(), 2);
    }
}
