//! One network's forwarding table shared by every worker, read without a lock on the
//! fast path.
//!
//! The table itself is the exact, single-threaded [`Fdb`] (aging, the limit with fair
//! eviction, the move hold-down), behind a mutex. In front of it each worker keeps an
//! [`FdbCache`]: what it last learned or looked up, so that a frame whose source is already
//! known on its port and whose destination is known takes no table lock and writes no
//! memory another worker reads. The worker goes to the table only when the cache cannot
//! answer exactly:
//!
//! - a source MAC not cached on this port (new, moving, or a static entry's);
//! - a destination not cached, or cached with a `last_seen` that has aged out by the
//!   cache's knowledge (another worker may have refreshed it since: the table decides).
//!
//! A source cached on its port is refreshed at the clock's own resolution (once a
//! millisecond), but not through the table's lock: the worker notes the refresh in a list
//! of its own (its [`Pending`] slot, a lock no other worker takes but to empty it), and
//! whoever takes the table's lock next applies every noted refresh first, before it reads
//! or changes anything. So every look at the table (a lookup that misses a cache, a new
//! MAC and the eviction it may cause, the aging sweep, `show fdb`) sees each entry's
//! `last_seen` and its place in its port's age order exactly as one thread would have
//! left them, and the table's lock is taken about once per [`PENDING_MAX`] refreshes
//! instead of once per refresh. (Measured: with 4096 sources refreshed every millisecond,
//! the lock per refresh made two threads slower than one; see the README.)
//!
//! Anything that makes a cached answer untrue (a move, an eviction, aging, a removal, a
//! flush, a port leaving, a static entry) bumps the table's generation; a worker whose
//! cache is of an older generation drops it before its next lookup. The check is one
//! relaxed load of a line that is written only on such events, so it stays in every
//! core's cache. (Measured against a lock per frame or burst, a read-write lock with
//! atomic entries, read-copy-update and dashmap in `benches/src/bin/fdb-concurrency.rs`:
//! see the README.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use ahash::RandomState;
use crossbeam_utils::CachePadded;
use packets::MacAddr;
use parking_lot::{Mutex, MutexGuard};

use crate::fdb::{Fdb, FdbConfig, Learned};
use crate::{Millis, PortId};

/// Entries a worker caches per network at most; a full cache starts again empty (the
/// table has everything).
pub const CACHE_ENTRIES: usize = 16_384;

/// Refreshes a worker notes before it applies them itself (taking the table's lock once
/// for all of them), if nobody else has taken the lock meanwhile.
pub const PENDING_MAX: usize = 128;

/// Lists of noted refreshes per table: worker `w` notes in list `w % PENDING_LISTS`
/// (workers beyond that share a list, and its lock, with another).
const PENDING_LISTS: usize = 16;

/// Every table gets an identity of its own, so a cache never takes one table's entries
/// for another's (a network removed and made again under the same id).
static NEXT_TABLE: AtomicU64 = AtomicU64::new(1);

/// A network's forwarding table, shared by the workers.
#[derive(Debug)]
pub struct SharedFdb {
    table: Mutex<Fdb>,
    /// Made when a worker first notes a refresh, so a network nobody sends on costs
    /// nothing for it.
    pending: OnceLock<Pending>,
    generation: AtomicU64,
    /// The table's aging, for caches to judge an entry's age without the lock.
    aging_ms: AtomicU64,
    identity: u64,
}

/// Refreshes noted by workers and not yet applied to the table.
#[derive(Debug)]
struct Pending {
    /// One list per worker slot, each on a cache line of its own, so workers noting
    /// refreshes at once never write the same line.
    lists: Box<[CachePadded<Mutex<Vec<Refresh>>>]>,
    /// Bit `i`: list `i` may hold refreshes (set under the list's lock when it stops being
    /// empty), so taking the table's lock looks only at lists that have something.
    dirty: AtomicU32,
}

/// `mac` was heard on `port` at `now`.
#[derive(Debug, Clone, Copy)]
struct Refresh {
    mac: MacAddr,
    port: PortId,
    now: Millis,
}

/// The table locked, for reading it whole (`show fdb`, counts), with every noted
/// refresh applied.
pub struct FdbRead<'a>(MutexGuard<'a, Fdb>);

impl std::ops::Deref for FdbRead<'_> {
    type Target = Fdb;
    fn deref(&self) -> &Fdb {
        &self.0
    }
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    port: PortId,
    /// The entry's `last_seen` as this worker last knew it.
    seen: Millis,
    /// When this worker last refreshed the entry from `port` (None: the entry was cached
    /// by a lookup, not learned here).
    refreshed: Option<Millis>,
    is_static: bool,
}

/// One worker's cache of one network's table.
#[derive(Debug, Default)]
pub struct FdbCache {
    table: u64,
    generation: u64,
    /// The worker's index: which list of [`Pending`] it notes refreshes in.
    worker: usize,
    entries: HashMap<u64, Cached, RandomState>,
}

impl FdbCache {
    /// The cache of worker `worker`.
    pub fn for_worker(worker: usize) -> FdbCache {
        FdbCache {
            worker,
            ..FdbCache::default()
        }
    }

    fn put(&mut self, mac: MacAddr, entry: Cached) {
        if self.entries.len() >= CACHE_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(mac.to_u64(), entry);
    }
}

impl Pending {
    fn new() -> Pending {
        Pending {
            lists: (0..PENDING_LISTS)
                .map(|_| CachePadded::new(Mutex::new(Vec::new())))
                .collect(),
            dirty: AtomicU32::new(0),
        }
    }

    /// Notes `refresh` in `worker`'s list; how many the list now holds.
    fn note(&self, worker: usize, refresh: Refresh) -> usize {
        let slot = worker % PENDING_LISTS;
        let mut list = self.lists[slot].lock();
        if list.is_empty() {
            self.dirty.fetch_or(1 << slot, Ordering::AcqRel);
        }
        list.push(refresh);
        list.len()
    }

    /// Applies every noted refresh to `table`, list by list, each in the order noted.
    fn apply(&self, table: &mut Fdb) {
        let mut dirty = self.dirty.swap(0, Ordering::AcqRel);
        while dirty != 0 {
            let slot = dirty.trailing_zeros() as usize;
            dirty &= dirty - 1;
            for r in self.lists[slot].lock().drain(..) {
                table.refresh(r.mac, r.port, r.now);
            }
        }
    }
}

impl SharedFdb {
    pub fn new(config: FdbConfig) -> SharedFdb {
        SharedFdb {
            aging_ms: AtomicU64::new(config.aging_ms),
            table: Mutex::new(Fdb::new(config)),
            pending: OnceLock::new(),
            generation: AtomicU64::new(0),
            identity: NEXT_TABLE.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The table locked, every noted refresh applied first: what one thread would see.
    fn lock(&self) -> MutexGuard<'_, Fdb> {
        let mut table = self.table.lock();
        if let Some(pending) = self.pending.get() {
            pending.apply(&mut table);
        }
        table
    }

    /// The table, locked for reading.
    pub fn read(&self) -> FdbRead<'_> {
        FdbRead(self.lock())
    }

    /// Makes every worker's cache of this table stale.
    fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Drops `cache` if it is of another table or an older generation.
    fn sync(&self, cache: &mut FdbCache) {
        let generation = self.generation.load(Ordering::Acquire);
        if cache.table != self.identity || cache.generation != generation {
            cache.entries.clear();
            cache.table = self.identity;
            cache.generation = generation;
        }
    }

    /// Records that `mac` was the source of a frame received on `port` at `now`, as
    /// [`Fdb::learn`] does, through `cache`.
    pub fn learn(&self, cache: &mut FdbCache, mac: MacAddr, port: PortId, now: Millis) -> Learned {
        self.sync(cache);
        if let Some(c) = cache.entries.get_mut(&mac.to_u64()) {
            if c.is_static {
                return Learned::Static;
            }
            let aging = self.aging_ms.load(Ordering::Relaxed);
            // Silent for the aging time by what this worker knows: the table may have
            // dropped it (a full table sweeps inside `Fdb::learn`, and tells no cache), so
            // the table decides.
            let young = aging == 0 || now.saturating_sub(c.seen) < aging;
            if c.port == port && young {
                if c.refreshed != Some(now) {
                    // Known here: note the refresh for the next holder of the lock.
                    c.refreshed = Some(now);
                    c.seen = now;
                    let queued = self
                        .pending
                        .get_or_init(Pending::new)
                        .note(cache.worker, Refresh { mac, port, now });
                    if queued >= PENDING_MAX {
                        // Applied now, so a worker nobody else interrupts keeps its list
                        // short (the lock is taken once for PENDING_MAX refreshes).
                        drop(self.lock());
                    }
                }
                return Learned::Refreshed;
            }
        }
        let (learned, seen) = {
            let mut table = self.lock();
            let learned = table.learn(mac, port, now);
            // A move or an eviction changes what other workers may have cached: bumped
            // under the lock, so no worker caches the old answer after the new generation.
            if matches!(
                learned,
                Learned::Moved { .. } | Learned::New { evicted: Some(_) }
            ) {
                self.invalidate();
            }
            let seen = table.entry(mac).map(|e| (e.port, e.last_seen, e.is_static));
            (learned, seen)
        };
        self.sync(cache);
        if let Some((owner, last_seen, is_static)) = seen {
            cache.put(
                mac,
                Cached {
                    port: owner,
                    seen: last_seen,
                    refreshed: (owner == port && !is_static).then_some(now),
                    is_static,
                },
            );
        }
        learned
    }

    /// The port `mac` lives behind at `now`, as [`Fdb::lookup`] says, through `cache`.
    pub fn lookup(&self, cache: &mut FdbCache, mac: MacAddr, now: Millis) -> Option<PortId> {
        self.sync(cache);
        if let Some(c) = cache.entries.get(&mac.to_u64()) {
            let aging = self.aging_ms.load(Ordering::Relaxed);
            if c.is_static || aging == 0 || now.saturating_sub(c.seen) < aging {
                return Some(c.port);
            }
        }
        let found = {
            let table = self.lock();
            table
                .lookup(mac, now)
                .and_then(|_| table.entry(mac))
                .map(|e| (e.port, e.last_seen, e.is_static))
        };
        let (port, seen, is_static) = found?;
        self.sync(cache);
        let refreshed = cache
            .entries
            .get(&mac.to_u64())
            .and_then(|c| c.refreshed.filter(|_| c.port == port));
        cache.put(
            mac,
            Cached {
                port,
                seen,
                refreshed,
                is_static,
            },
        );
        Some(port)
    }

    /// [`Fdb::lookup`] without a cache (the control plane's questions).
    pub fn peek(&self, mac: MacAddr, now: Millis) -> Option<PortId> {
        self.lock().lookup(mac, now)
    }

    pub fn set_config(&self, config: FdbConfig) {
        let mut table = self.lock();
        table.set_config(config);
        self.aging_ms.store(config.aging_ms, Ordering::Relaxed);
        self.invalidate();
    }

    pub fn add_static(&self, mac: MacAddr, port: PortId) {
        self.lock().add_static(mac, port);
        self.invalidate();
    }

    pub fn remove(&self, mac: MacAddr) -> bool {
        let removed = self.lock().remove(mac);
        self.invalidate();
        removed
    }

    pub fn flush(&self) {
        self.lock().flush();
        self.invalidate();
    }

    /// Forgets every entry, static ones too (the network is removed).
    pub fn flush_all(&self) {
        self.lock().flush_all();
        self.invalidate();
    }

    pub fn remove_port(&self, port: PortId) -> usize {
        let n = self.lock().remove_port(port);
        self.invalidate();
        n
    }

    /// Sweeps what aged out by `now`; how many went.
    pub fn expire(&self, now: Millis) -> usize {
        let n = self.lock().expire(now);
        if n > 0 {
            self.invalidate();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    fn config(max_entries: usize, aging_ms: Millis) -> FdbConfig {
        FdbConfig {
            max_entries,
            aging_ms,
            move_hold_down_ms: 100,
        }
    }

    #[test]
    fn two_caches_agree_with_the_table() {
        let fdb = SharedFdb::new(config(16, 1_000));
        let (mut a, mut b) = (FdbCache::default(), FdbCache::default());
        assert!(matches!(
            fdb.learn(&mut a, mac(1), PortId(1), 10),
            Learned::New { .. }
        ));
        // Worker b learns of it from the table, then keeps the answer.
        assert_eq!(fdb.lookup(&mut b, mac(1), 11), Some(PortId(1)));
        assert_eq!(fdb.lookup(&mut b, mac(1), 12), Some(PortId(1)));
        // A move seen by b (after the hold-down) is seen by a at once.
        assert!(matches!(
            fdb.learn(&mut b, mac(1), PortId(2), 500),
            Learned::Moved { from: PortId(1) }
        ));
        assert_eq!(fdb.lookup(&mut a, mac(1), 501), Some(PortId(2)));
    }

    #[test]
    fn refreshes_reach_the_table_every_millisecond() {
        let fdb = SharedFdb::new(config(16, 1_000));
        let mut a = FdbCache::default();
        fdb.learn(&mut a, mac(1), PortId(1), 0);
        for now in [0, 0, 400, 900] {
            assert_eq!(
                fdb.learn(&mut a, mac(1), PortId(1), now),
                Learned::Refreshed
            );
        }
        assert_eq!(fdb.read().entry(mac(1)).map(|e| e.last_seen), Some(900));
        // Aged as one thread would have aged it: 1 s after the last frame, not the first.
        assert_eq!(fdb.expire(1_500), 0);
        assert_eq!(fdb.expire(1_900), 1);
        let mut b = FdbCache::default();
        assert_eq!(fdb.lookup(&mut b, mac(1), 1_901), None);
    }

    #[test]
    fn a_cached_destination_ages_out_unless_the_table_says_otherwise() {
        let fdb = SharedFdb::new(config(16, 1_000));
        let (mut a, mut b) = (FdbCache::default(), FdbCache::default());
        fdb.learn(&mut a, mac(1), PortId(1), 0);
        assert_eq!(fdb.lookup(&mut b, mac(1), 10), Some(PortId(1)));
        // a keeps hearing from it: b's cached age is stale, the table's is not.
        fdb.learn(&mut a, mac(1), PortId(1), 900);
        assert_eq!(fdb.lookup(&mut b, mac(1), 1_500), Some(PortId(1)));
        // Nobody hears from it: gone for both.
        assert_eq!(fdb.lookup(&mut b, mac(1), 2_000), None);
        assert_eq!(fdb.lookup(&mut a, mac(1), 2_000), None);
    }

    #[test]
    fn eviction_and_removal_reach_every_cache() {
        let fdb = SharedFdb::new(config(2, 0));
        let (mut a, mut b) = (FdbCache::default(), FdbCache::default());
        fdb.learn(&mut a, mac(1), PortId(1), 0);
        fdb.learn(&mut a, mac(2), PortId(1), 1);
        assert_eq!(fdb.lookup(&mut b, mac(1), 2), Some(PortId(1)));
        // Port 1 holds both; a third MAC on it evicts its oldest, mac 1.
        assert_eq!(
            fdb.learn(&mut a, mac(3), PortId(1), 3),
            Learned::New {
                evicted: Some((mac(1), PortId(1)))
            }
        );
        assert_eq!(fdb.lookup(&mut b, mac(1), 4), None);
        assert_eq!(fdb.lookup(&mut a, mac(2), 4), Some(PortId(1)));
        fdb.remove_port(PortId(1));
        assert_eq!(fdb.lookup(&mut a, mac(2), 5), None);
        fdb.add_static(mac(9), PortId(4));
        assert_eq!(fdb.learn(&mut b, mac(9), PortId(1), 6), Learned::Static);
        assert_eq!(fdb.lookup(&mut a, mac(9), 7), Some(PortId(4)));
        assert!(fdb.remove(mac(9)));
        assert_eq!(fdb.lookup(&mut a, mac(9), 8), None);
    }

    #[test]
    fn a_known_sources_refresh_takes_no_table_lock() {
        let fdb = SharedFdb::new(config(16, 10_000));
        let mut a = FdbCache::for_worker(1);
        fdb.learn(&mut a, mac(1), PortId(1), 0);
        // Another thread holds the table; worker a's refreshes do not wait for it.
        let held = fdb.read();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for now in 1..(PENDING_MAX as Millis) {
                    assert_eq!(
                        fdb.learn(&mut a, mac(1), PortId(1), now),
                        Learned::Refreshed
                    );
                }
                let _ = done.send(());
            });
            let waited = finished.recv_timeout(std::time::Duration::from_secs(10));
            drop(held);
            assert!(waited.is_ok(), "a refresh waited for the table's lock");
        });
        // Whoever looks next sees the last refresh, as one thread would have left it.
        let last = PENDING_MAX as Millis - 1;
        assert_eq!(fdb.read().entry(mac(1)).map(|e| e.last_seen), Some(last));
    }

    #[test]
    fn noted_refreshes_keep_the_eviction_order_exact() {
        let fdb = SharedFdb::new(config(2, 0));
        let (mut a, mut b) = (FdbCache::for_worker(0), FdbCache::for_worker(1));
        fdb.learn(&mut a, mac(1), PortId(1), 0);
        fdb.learn(&mut a, mac(2), PortId(1), 1);
        // mac 1 speaks again: noted by a, not yet in the table.
        assert_eq!(fdb.learn(&mut a, mac(1), PortId(1), 5), Learned::Refreshed);
        // b's new MAC fills the table: port 1's oldest is now mac 2, not mac 1.
        assert_eq!(
            fdb.learn(&mut b, mac(3), PortId(2), 6),
            Learned::New {
                evicted: Some((mac(2), PortId(1)))
            }
        );
        assert_eq!(fdb.lookup(&mut b, mac(1), 7), Some(PortId(1)));
    }

    #[test]
    fn a_noted_refresh_never_undoes_a_move() {
        let fdb = SharedFdb::new(config(16, 0));
        let (mut a, mut b) = (FdbCache::for_worker(0), FdbCache::for_worker(1));
        fdb.learn(&mut a, mac(1), PortId(1), 0);
        assert_eq!(fdb.learn(&mut a, mac(1), PortId(1), 50), Learned::Refreshed);
        // Within the hold-down of the noted refresh (at 50), not of the first frame (at 0).
        assert_eq!(
            fdb.learn(&mut b, mac(1), PortId(2), 120),
            Learned::MoveHeld { owner: PortId(1) }
        );
        assert_eq!(
            fdb.learn(&mut b, mac(1), PortId(2), 200),
            Learned::Moved { from: PortId(1) }
        );
        // A refresh a noted before the move (its cache still said port 1) changes nothing.
        fdb.pending.get_or_init(Pending::new).note(
            0,
            Refresh {
                mac: mac(1),
                port: PortId(1),
                now: 210,
            },
        );
        assert_eq!(fdb.read().entry(mac(1)).map(|e| e.port), Some(PortId(2)));
        assert_eq!(fdb.lookup(&mut a, mac(1), 211), Some(PortId(2)));
    }

    #[test]
    fn a_source_back_from_silence_is_learned_again_after_the_table_dropped_it() {
        // Full tables sweep inside `learn`, without telling the caches.
        let fdb = SharedFdb::new(config(2, 1_000));
        let (mut a, mut b) = (FdbCache::for_worker(0), FdbCache::for_worker(1));
        fdb.learn(&mut a, mac(1), PortId(1), 0);
        fdb.learn(&mut b, mac(2), PortId(2), 1_500);
        // The table is full; mac 1 has aged out and makes room for mac 3.
        fdb.learn(&mut b, mac(3), PortId(2), 1_600);
        assert_eq!(fdb.read().entry(mac(1)), None);
        // a still caches mac 1 on port 1; when it speaks again it is in the table again.
        assert!(matches!(
            fdb.learn(&mut a, mac(1), PortId(1), 1_700),
            Learned::New { .. }
        ));
        assert_eq!(fdb.lookup(&mut b, mac(1), 1_701), Some(PortId(1)));
    }

    #[test]
    fn threads_learning_at_once_keep_the_table_exact() {
        let fdb = std::sync::Arc::new(SharedFdb::new(config(64, 0)));
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let fdb = fdb.clone();
                std::thread::spawn(move || {
                    let mut cache = FdbCache::default();
                    for round in 0..1_000u64 {
                        for m in 0..16u8 {
                            let mac = MacAddr([2, t, 0, 0, 0, m]);
                            fdb.learn(&mut cache, mac, PortId(t as u32), round);
                            let other = MacAddr([2, (t + 1) % 4, 0, 0, 0, m]);
                            if let Some(p) = fdb.lookup(&mut cache, other, round) {
                                assert_eq!(p, PortId(((t + 1) % 4) as u32));
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let table = fdb.read();
        assert_eq!(table.len(), 64);
        for t in 0..4u8 {
            assert_eq!(table.port_len(PortId(t as u32)), 16);
        }
    }

    proptest::proptest! {
        /// The shared table read by two workers through their caches (port `p` read by
        /// worker `p % 2`, lookups from either) answers every learn and lookup exactly
        /// as one `Fdb` driven directly, and holds the same entries with the same ages
        /// after every step: the caches and the noted refreshes are invisible.
        #[test]
        fn two_workers_through_caches_are_one_table(
            ops in proptest::collection::vec((0u8..8, 0u32..4, 0u64..700, 0u8..12), 1..300)
        ) {
            let cfg = FdbConfig { max_entries: 5, aging_ms: 1_000, move_hold_down_ms: 100 };
            let shared = SharedFdb::new(cfg);
            let mut one = Fdb::new(cfg);
            let mut caches = [FdbCache::for_worker(0), FdbCache::for_worker(1)];
            let mut now = 0;
            for (m, p, dt, op) in ops {
                now += dt;
                let (mac, port) = (mac(m + 1), PortId(p));
                match op {
                    0 => proptest::prop_assert_eq!(shared.expire(now), one.expire(now)),
                    1 => proptest::prop_assert_eq!(shared.remove_port(port), one.remove_port(port)),
                    2..=5 => {
                        let worker = (m % 2) as usize;
                        proptest::prop_assert_eq!(
                            shared.lookup(&mut caches[worker], mac, now),
                            one.lookup(mac, now)
                        );
                    }
                    _ => {
                        let worker = (p % 2) as usize;
                        proptest::prop_assert_eq!(
                            shared.learn(&mut caches[worker], mac, port, now),
                            one.learn(mac, port, now)
                        );
                    }
                }
                proptest::prop_assert_eq!(shared.read().sorted_entries(), one.sorted_entries());
            }
        }
    }
}
