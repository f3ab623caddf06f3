//! The forwarding database of one network: source MAC -> port, with aging, a size limit
//! with fair eviction, and damping of MAC moves.
//!
//! Entries live in a slab. Each port threads its entries on a doubly linked list ordered by
//! when they were last seen (head = oldest), so that
//! - aging pops expired entries from list heads, touching only what expires;
//! - eviction, when the table is full, takes the oldest entry of the port that holds the
//!   most entries (Open vSwitch's fair eviction), so one port sending from random source
//!   MACs only ever pushes out its own entries;
//! - a port that goes away drops its entries by walking its own list.
//!
//! The map is keyed with a randomly seeded hasher: source MACs are chosen by whoever is on
//! a port, and a fixed hash would let them choose collisions too.

use std::collections::HashMap;

use ahash::RandomState;
use packets::MacAddr;

use crate::{Millis, PortId};

const NIL: u32 = u32::MAX;

/// Limits and timers of a forwarding database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbConfig {
    /// Learned entries at most; at the limit a new MAC evicts fairly. At least 1.
    pub max_entries: usize,
    /// An entry not refreshed for this long is forgotten. 0 keeps entries forever.
    pub aging_ms: Millis,
    /// A MAC last seen on its port less than this long ago does not move to another port.
    pub move_hold_down_ms: Millis,
}

impl Default for FdbConfig {
    /// The defaults of the Linux bridge (300 s aging), Open vSwitch (8192 entries) and
    /// vde_switch (3 s before a MAC may move).
    fn default() -> Self {
        FdbConfig {
            max_entries: 8192,
            aging_ms: 300_000,
            move_hold_down_ms: 3_000,
        }
    }
}

/// What learning a source address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// A new entry; `evicted` names the entry the limit pushed out to make room.
    New { evicted: Option<(MacAddr, PortId)> },
    /// The entry already pointed at this port; its age is reset.
    Refreshed,
    /// The MAC moved here from another port.
    Moved { from: PortId },
    /// The MAC was seen on `owner` within the hold-down; the entry stays there.
    MoveHeld { owner: PortId },
    /// The MAC has a static entry; static entries never learn or move.
    Static,
}

/// One entry, as reported by [`Fdb::entries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: MacAddr,
    pub port: PortId,
    /// When a frame from `mac` was last seen; 0 for static entries.
    pub last_seen: Millis,
    /// Added by the operator: never aged, evicted or moved, not counted against the limit.
    pub is_static: bool,
}

#[derive(Debug, Clone)]
struct Slot {
    mac: MacAddr,
    port: PortId,
    last_seen: Millis,
    prev: u32,
    next: u32,
    /// The list of `port` in [`Fdb::lists`], so a refresh finds it without a lookup.
    list: u32,
}

/// A port's entries, oldest first (a doubly linked list through the slots).
#[derive(Debug, Clone, Copy)]
struct PortList {
    port: PortId,
    head: u32,
    tail: u32,
    len: u32,
}

impl PortList {
    fn new(port: PortId) -> PortList {
        PortList {
            port,
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }
}

/// The forwarding database of one network.
#[derive(Debug, Clone)]
pub struct Fdb {
    config: FdbConfig,
    /// MAC (as its 48-bit number: one word to hash, not six bytes) -> slot.
    map: HashMap<u64, u32, RandomState>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// One list per port with entries here, in the order the ports first learned. A
    /// network's table holds lists for its own ports only: indexed by port id it would
    /// grow with every port of the switch, in every network.
    lists: Vec<PortList>,
    /// Port -> its list in `lists`.
    list_of: HashMap<PortId, u32, RandomState>,
    /// Lists of ports that left, for the next port to reuse.
    free_lists: Vec<u32>,
    statics: HashMap<MacAddr, PortId, RandomState>,
}

impl Fdb {
    pub fn new(config: FdbConfig) -> Fdb {
        let config = FdbConfig {
            max_entries: config.max_entries.max(1),
            ..config
        };
        Fdb {
            config,
            map: HashMap::with_hasher(RandomState::new()),
            slots: Vec::new(),
            free: Vec::new(),
            lists: Vec::new(),
            list_of: HashMap::with_hasher(RandomState::new()),
            free_lists: Vec::new(),
            statics: HashMap::with_hasher(RandomState::new()),
        }
    }

    /// A new limit, aging and hold-down (a configuration reload). A lower limit is
    /// reached by evicting as new MACs come, not all at once.
    pub fn set_config(&mut self, config: FdbConfig) {
        self.config = FdbConfig {
            max_entries: config.max_entries.max(1),
            ..config
        };
    }

    pub fn config(&self) -> &FdbConfig {
        &self.config
    }

    /// Static entries.
    pub fn static_len(&self) -> usize {
        self.statics.len()
    }

    /// Adds (or re-points) a static entry, replacing any learned entry for `mac`.
    pub fn add_static(&mut self, mac: MacAddr, port: PortId) {
        if let Some(&idx) = self.map.get(&mac.to_u64()) {
            self.remove_slot(idx);
        }
        self.statics.insert(mac, port);
    }

    /// Removes the static entry for `mac`; true if there was one.
    pub fn remove_static(&mut self, mac: MacAddr) -> bool {
        self.statics.remove(&mac).is_some()
    }

    /// Removes whatever entry `mac` has, static or learned; true if there was one.
    pub fn remove(&mut self, mac: MacAddr) -> bool {
        if self.remove_static(mac) {
            return true;
        }
        match self.map.get(&mac.to_u64()) {
            Some(&idx) => {
                self.remove_slot(idx);
                true
            }
            None => false,
        }
    }

    /// Learned entries currently held (expired ones not yet swept included; static
    /// entries not included).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// How many per-port lists the table keeps (one per port with entries here, or that
    /// had some and has not been removed).
    pub fn port_lists(&self) -> usize {
        self.list_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries held for `port`.
    pub fn port_len(&self, port: PortId) -> usize {
        self.list_of
            .get(&port)
            .map_or(0, |&l| self.lists[l as usize].len as usize)
    }

    fn expired(&self, slot: &Slot, now: Millis) -> bool {
        self.config.aging_ms != 0 && now.saturating_sub(slot.last_seen) >= self.config.aging_ms
    }

    /// Whether an entry from [`Fdb::entries`] still counts at `now` (static, or not aged
    /// out; aged entries linger until the next sweep but are never used).
    pub fn is_live(&self, entry: &FdbEntry, now: Millis) -> bool {
        entry.is_static
            || self.config.aging_ms == 0
            || now.saturating_sub(entry.last_seen) < self.config.aging_ms
    }

    /// The port `mac` was learned on, unless it is unknown or has aged out.
    pub fn lookup(&self, mac: MacAddr, now: Millis) -> Option<PortId> {
        if !self.statics.is_empty() {
            if let Some(&port) = self.statics.get(&mac) {
                return Some(port);
            }
        }
        let slot = &self.slots[*self.map.get(&mac.to_u64())? as usize];
        (!self.expired(slot, now)).then_some(slot.port)
    }

    /// The entry of `mac`, static or learned, aged out or not.
    pub fn entry(&self, mac: MacAddr) -> Option<FdbEntry> {
        if let Some(&port) = self.statics.get(&mac) {
            return Some(FdbEntry {
                mac,
                port,
                last_seen: 0,
                is_static: true,
            });
        }
        let slot = &self.slots[*self.map.get(&mac.to_u64())? as usize];
        Some(FdbEntry {
            mac,
            port: slot.port,
            last_seen: slot.last_seen,
            is_static: false,
        })
    }

    /// Records that `mac` was the source of a frame received on `port` at `now`.
    pub fn learn(&mut self, mac: MacAddr, port: PortId, now: Millis) -> Learned {
        if !self.statics.is_empty() && self.statics.contains_key(&mac) {
            return Learned::Static;
        }
        if let Some(&idx) = self.map.get(&mac.to_u64()) {
            let slot = &self.slots[idx as usize];
            let (from, list) = (slot.port, slot.list);
            if from == port {
                self.touch(idx, list, now);
                return Learned::Refreshed;
            }
            let stale = self.expired(slot, now);
            if !stale && now.saturating_sub(slot.last_seen) < self.config.move_hold_down_ms {
                return Learned::MoveHeld { owner: from };
            }
            self.unlink(idx);
            let list = self.list_for(port);
            let slot = &mut self.slots[idx as usize];
            slot.port = port;
            slot.last_seen = now;
            slot.list = list;
            self.link_tail(idx);
            return if stale {
                Learned::New { evicted: None }
            } else {
                Learned::Moved { from }
            };
        }

        let mut evicted = None;
        if self.map.len() >= self.config.max_entries {
            self.expire(now);
        }
        if self.map.len() >= self.config.max_entries {
            evicted = self.evict_fairly();
        }
        let slot = Slot {
            mac,
            port,
            last_seen: now,
            prev: NIL,
            next: NIL,
            list: self.list_for(port),
        };
        let idx = match self.free.pop() {
            Some(idx) => {
                self.slots[idx as usize] = slot;
                idx
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.link_tail(idx);
        self.map.insert(mac.to_u64(), idx);
        Learned::New { evicted }
    }

    /// Records a frame from `mac` on `port` at `now`, as [`Fdb::learn`] does for a MAC
    /// already on that port, but only if it still is: a refresh noted earlier without the
    /// table (see `shared_fdb`) never creates, moves or evicts an entry, so a move or an
    /// eviction that came first wins. Time never goes back: an older `now` changes nothing.
    pub fn refresh(&mut self, mac: MacAddr, port: PortId, now: Millis) {
        let Some(&idx) = self.map.get(&mac.to_u64()) else {
            return;
        };
        let slot = &self.slots[idx as usize];
        if slot.port != port || slot.last_seen >= now {
            return;
        }
        self.touch(idx, slot.list, now);
    }

    /// Slot `idx` (of port list `list`) was heard from at `now`: the newest of its port.
    fn touch(&mut self, idx: u32, list: u32, now: Millis) {
        self.slots[idx as usize].last_seen = now;
        // Already the newest of its port (a host that keeps talking): nothing to move.
        if self.lists[list as usize].tail != idx {
            self.unlink(idx);
            self.link_tail(idx);
        }
    }

    /// Every entry, in an order that depends only on what the table holds (by MAC, then
    /// port): two tables with the same entries give equal vectors.
    pub fn sorted_entries(&self) -> Vec<FdbEntry> {
        let mut rows: Vec<FdbEntry> = self.entries().collect();
        rows.sort_unstable_by_key(|e| (e.mac.to_u64(), e.port.0, e.last_seen, e.is_static));
        rows
    }

    /// Removes the oldest entry of the port holding the most entries.
    fn evict_fairly(&mut self) -> Option<(MacAddr, PortId)> {
        let list = self
            .lists
            .iter()
            .filter(|l| l.len > 0)
            .max_by_key(|l| (l.len, std::cmp::Reverse(l.port.0)))?;
        let idx = list.head;
        let slot = &self.slots[idx as usize];
        let victim = (slot.mac, slot.port);
        self.remove_slot(idx);
        Some(victim)
    }

    /// Forgets every entry that has aged out by `now`; returns how many.
    pub fn expire(&mut self, now: Millis) -> usize {
        if self.config.aging_ms == 0 {
            return 0;
        }
        let mut removed = 0;
        for port in 0..self.lists.len() {
            loop {
                let head = self.lists[port].head;
                if head == NIL || !self.expired(&self.slots[head as usize], now) {
                    break;
                }
                self.remove_slot(head);
                removed += 1;
            }
        }
        removed
    }

    /// Forgets every entry of `port`, static ones included; returns how many.
    pub fn remove_port(&mut self, port: PortId) -> usize {
        let statics = self.statics.len();
        self.statics.retain(|_, p| *p != port);
        let mut removed = statics - self.statics.len();
        let Some(list) = self.list_of.remove(&port) else {
            return removed;
        };
        loop {
            let head = self.lists[list as usize].head;
            if head == NIL {
                break;
            }
            self.remove_slot(head);
            removed += 1;
        }
        self.free_lists.push(list);
        removed
    }

    /// Forgets every entry, static ones too.
    pub fn flush_all(&mut self) {
        self.flush();
        self.statics.clear();
    }

    /// Forgets every learned entry; static entries stay (as `bridge fdb flush` keeps
    /// them unless asked).
    pub fn flush(&mut self) {
        self.map.clear();
        self.slots.clear();
        self.free.clear();
        self.lists.clear();
        self.list_of.clear();
        self.free_lists.clear();
    }

    /// Every entry: static ones first, then learned ones oldest first within each port.
    pub fn entries(&self) -> impl Iterator<Item = FdbEntry> + '_ {
        let statics = self.statics.iter().map(|(&mac, &port)| FdbEntry {
            mac,
            port,
            last_seen: 0,
            is_static: true,
        });
        statics.chain(self.learned_entries())
    }

    fn learned_entries(&self) -> impl Iterator<Item = FdbEntry> + '_ {
        self.lists.iter().flat_map(move |list| {
            let mut idx = list.head;
            std::iter::from_fn(move || {
                let slot = self.slots.get(idx as usize)?;
                idx = slot.next;
                Some(FdbEntry {
                    mac: slot.mac,
                    port: slot.port,
                    last_seen: slot.last_seen,
                    is_static: false,
                })
            })
        })
    }

    fn remove_slot(&mut self, idx: u32) {
        self.unlink(idx);
        let mac = self.slots[idx as usize].mac;
        self.map.remove(&mac.to_u64());
        self.free.push(idx);
    }

    /// The list of `port`'s entries, made (or a left port's reused) if it has none.
    fn list_for(&mut self, port: PortId) -> u32 {
        if let Some(&l) = self.list_of.get(&port) {
            return l;
        }
        let l = match self.free_lists.pop() {
            Some(l) => {
                self.lists[l as usize] = PortList::new(port);
                l
            }
            None => {
                self.lists.push(PortList::new(port));
                (self.lists.len() - 1) as u32
            }
        };
        self.list_of.insert(port, l);
        l
    }

    fn link_tail(&mut self, idx: u32) {
        let l = self.slots[idx as usize].list as usize;
        let list = &mut self.lists[l];
        let old_tail = list.tail;
        list.tail = idx;
        if old_tail == NIL {
            list.head = idx;
        }
        list.len += 1;
        if old_tail != NIL {
            self.slots[old_tail as usize].next = idx;
        }
        let slot = &mut self.slots[idx as usize];
        slot.prev = old_tail;
        slot.next = NIL;
    }

    fn unlink(&mut self, idx: u32) {
        let Slot {
            prev, next, list, ..
        } = self.slots[idx as usize];
        if prev != NIL {
            self.slots[prev as usize].next = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        }
        let list = &mut self.lists[list as usize];
        if list.head == idx {
            list.head = next;
        }
        if list.tail == idx {
            list.tail = prev;
        }
        list.len -= 1;
        let slot = &mut self.slots[idx as usize];
        slot.prev = NIL;
        slot.next = NIL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> MacAddr {
        let b = n.to_be_bytes();
        MacAddr([0x02, 0, b[0], b[1], b[2], b[3]])
    }

    const A: PortId = PortId(0);
    const B: PortId = PortId(1);
    const C: PortId = PortId(2);

    fn fdb(max: usize) -> Fdb {
        Fdb::new(FdbConfig {
            max_entries: max,
            ..FdbConfig::default()
        })
    }

    /// A network's table keeps lists for the ports that learned in it, whatever their
    /// ids: with one list per port id, a switch of many networks held (networks x
    /// ports) lists. A port that leaves gives its list to the next one.
    #[test]
    fn keeps_lists_for_its_own_ports_only() {
        let mut f = fdb(16);
        let far = PortId(1_000_000);
        f.learn(mac(1), far, 0);
        f.learn(mac(2), B, 0);
        assert_eq!((f.lists.len(), f.port_lists()), (2, 2));
        assert_eq!(f.remove_port(far), 1);
        f.learn(mac(3), C, 0);
        assert_eq!((f.lists.len(), f.port_lists()), (2, 2));
        assert_eq!((f.port_len(far), f.port_len(B), f.port_len(C)), (0, 1, 1));
        assert_eq!(f.lookup(mac(3), 0), Some(C));
        // Moving to a port that had no list makes one.
        f.learn(mac(3), A, 10_000);
        assert_eq!((f.port_len(A), f.port_len(C)), (1, 0));
    }

    #[test]
    fn learns_and_refreshes() {
        let mut f = fdb(16);
        assert_eq!(f.learn(mac(1), A, 0), Learned::New { evicted: None });
        assert_eq!(f.learn(mac(1), A, 10), Learned::Refreshed);
        assert_eq!(f.lookup(mac(1), 10), Some(A));
        assert_eq!(f.lookup(mac(2), 10), None);
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn entries_age_out_after_the_aging_time() {
        let mut f = fdb(16);
        f.learn(mac(1), A, 0);
        f.learn(mac(2), A, 100_000);
        assert_eq!(f.lookup(mac(1), 299_999), Some(A));
        let first = f.entries().find(|e| e.mac == mac(1)).unwrap();
        assert!(f.is_live(&first, 299_999));
        assert!(!f.is_live(&first, 300_000));
        // Lookups see the expiry even before a sweep.
        assert_eq!(f.lookup(mac(1), 300_000), None);
        assert_eq!(f.expire(300_000), 1);
        assert_eq!(f.len(), 1);
        assert_eq!(f.lookup(mac(2), 300_000), Some(A));
        // A refresh restarts the clock.
        f.learn(mac(2), A, 350_000);
        assert_eq!(f.expire(400_000), 0);
        assert_eq!(f.expire(650_000), 1);
        assert!(f.is_empty());
    }

    #[test]
    fn zero_aging_keeps_entries() {
        let mut f = Fdb::new(FdbConfig {
            aging_ms: 0,
            ..FdbConfig::default()
        });
        f.learn(mac(1), A, 0);
        assert_eq!(f.expire(u64::MAX), 0);
        assert_eq!(f.lookup(mac(1), u64::MAX), Some(A));
    }

    #[test]
    fn limit_evicts_from_the_port_with_most_entries() {
        let mut f = fdb(10);
        // Port A holds 3 long-lived entries, port B floods 7.
        for i in 0..3 {
            f.learn(mac(i), A, i as u64);
        }
        for i in 100..107 {
            f.learn(mac(i), B, 10);
        }
        assert_eq!(f.len(), 10);
        // B keeps flooding new MACs: only B's own (oldest) entries go.
        for i in 200..300 {
            let out = f.learn(mac(i), B, 20);
            assert!(
                matches!(
                    out,
                    Learned::New {
                        evicted: Some((_, B))
                    }
                ),
                "{out:?}"
            );
        }
        assert_eq!(f.len(), 10);
        assert_eq!(f.port_len(A), 3);
        for i in 0..3 {
            assert_eq!(f.lookup(mac(i), 30), Some(A));
        }
        // The oldest of B's entries went first: the newest are still there.
        assert_eq!(f.lookup(mac(299), 30), Some(B));
        assert_eq!(f.lookup(mac(100), 30), None);
    }

    #[test]
    fn a_new_port_evicts_from_the_biggest_not_from_itself() {
        let mut f = fdb(4);
        for i in 0..4 {
            f.learn(mac(i), A, 0);
        }
        assert_eq!(
            f.learn(mac(9), C, 1),
            Learned::New {
                evicted: Some((mac(0), A))
            }
        );
        assert_eq!(f.port_len(C), 1);
        assert_eq!(f.port_len(A), 3);
    }

    #[test]
    fn limit_prefers_expired_entries() {
        let mut g = fdb(2);
        g.learn(mac(1), A, 0);
        g.learn(mac(2), B, 10);
        // A's entry has aged out: it makes room, nothing live is evicted.
        assert_eq!(g.learn(mac(3), B, 300_001), Learned::New { evicted: None });
        assert_eq!(g.lookup(mac(2), 300_001), Some(B));
        assert_eq!(g.port_len(A), 0);
    }

    #[test]
    fn moves_wait_for_the_hold_down() {
        let mut f = fdb(16);
        f.learn(mac(1), A, 1_000);
        // Seen on B 2.9 s after it was last seen on A: stays on A.
        assert_eq!(f.learn(mac(1), B, 3_900), Learned::MoveHeld { owner: A });
        assert_eq!(f.lookup(mac(1), 3_900), Some(A));
        // Frames from B do not refresh A's entry: 3 s after A last saw it, it moves.
        assert_eq!(f.learn(mac(1), B, 4_000), Learned::Moved { from: A });
        assert_eq!(f.lookup(mac(1), 4_000), Some(B));
        assert_eq!(f.port_len(A), 0);
        assert_eq!(f.port_len(B), 1);
    }

    #[test]
    fn an_expired_entry_moves_at_once_as_new() {
        let mut f = fdb(16);
        f.learn(mac(1), A, 0);
        assert_eq!(f.learn(mac(1), B, 300_000), Learned::New { evicted: None });
        assert_eq!(f.lookup(mac(1), 300_000), Some(B));
    }

    #[test]
    fn removing_a_port_forgets_its_entries_only() {
        let mut f = fdb(16);
        f.learn(mac(1), A, 0);
        f.learn(mac(2), B, 0);
        f.learn(mac(3), A, 0);
        assert_eq!(f.remove_port(A), 2);
        assert_eq!(f.remove_port(PortId(77)), 0);
        assert_eq!(f.len(), 1);
        assert_eq!(f.lookup(mac(2), 0), Some(B));
        let macs: Vec<_> = f.entries().map(|e| e.mac).collect();
        assert_eq!(macs, vec![mac(2)]);
        f.flush();
        assert!(f.is_empty());
        assert_eq!(f.learn(mac(2), B, 0), Learned::New { evicted: None });
    }

    #[test]
    fn static_entries_never_age_move_or_count() {
        let mut f = fdb(2);
        f.learn(mac(1), A, 0);
        f.add_static(mac(1), B);
        f.add_static(mac(2), C);
        assert_eq!(f.len(), 0);
        assert_eq!(f.static_len(), 2);
        // Frames from a static MAC on another port change nothing.
        assert_eq!(f.learn(mac(1), A, 10_000), Learned::Static);
        assert_eq!(f.lookup(mac(1), 10_000), Some(B));
        // Never aged, never evicted by the limit.
        for i in 10..20 {
            f.learn(mac(i), A, 20_000);
        }
        assert_eq!(f.expire(u64::MAX / 2), 2);
        assert_eq!(f.lookup(mac(2), u64::MAX / 2), Some(C));
        f.flush();
        assert_eq!(f.lookup(mac(1), 0), Some(B));
        assert_eq!(f.entries().filter(|e| e.is_static).count(), 2);
        assert_eq!(f.remove_port(C), 1);
        assert!(f.remove_static(mac(1)));
        assert!(!f.remove_static(mac(1)));
        assert_eq!(f.lookup(mac(1), 0), None);
        f.learn(mac(5), A, 0);
        f.add_static(mac(6), A);
        assert!(f.remove(mac(5)) && f.remove(mac(6)));
        assert!(!f.remove(mac(5)));
        assert_eq!((f.len(), f.static_len()), (0, 0));
    }

    proptest::proptest! {
        // Any sequence of learns, sweeps and port removals keeps the table within its limit
        // and its lists consistent with its map.
        #[test]
        fn table_never_exceeds_its_limit(
            ops in proptest::collection::vec((0u32..40, 0u32..5, 0u64..5_000, 0u8..20), 1..400)
        ) {
            let mut f = Fdb::new(FdbConfig { max_entries: 16, aging_ms: 20_000, move_hold_down_ms: 3_000 });
            let mut now = 0;
            for (m, p, dt, op) in ops {
                now += dt;
                match op {
                    0 => { f.expire(now); }
                    1 => { f.remove_port(PortId(p)); }
                    _ => { f.learn(mac(m), PortId(p), now); }
                }
                proptest::prop_assert!(f.len() <= 16);
                let listed: usize = (0..5).map(|p| f.port_len(PortId(p))).sum();
                proptest::prop_assert_eq!(listed, f.len());
                proptest::prop_assert_eq!(f.entries().count(), f.len() + f.static_len());
                for e in f.entries() {
                    proptest::prop_assert_eq!(f.map.get(&e.mac.to_u64()).map(|&i| f.slots[i as usize].port), Some(e.port));
                }
            }
        }
    }
}
