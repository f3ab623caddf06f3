//! One network's forwarding table shared by every worker, read without a lock on the
//! fast path.
//!
//! The table itself is the exact, single-threaded [`Fdb`] (aging, the limit with fair
//! eviction, the move hold-down), behind a mutex. In front of it each worker keeps an
//! [`FdbCache`]: what it last learned or looked up, so that a frame whose source is already
//! known on its port and whose destination is known takes no lock and writes no shared
//! memory. The worker goes to the table only when the cache cannot answer exactly:
//!
//! - a source MAC not cached on this port (new, moving, or a static entry's), or cached but
//!   not yet refreshed in the current millisecond: the table's `last_seen` is refreshed at
//!   the clock's own resolution, so aging and eviction order are what one thread would
//!   have made them;
//! - a destination not cached, or cached with a `last_seen` that has aged out by the
//!   cache's knowledge (another worker may have refreshed it since: the table decides).
//!
//! Anything that makes a cached answer untrue (a move, an eviction, aging, a removal, a
//! flush, a port leaving, a static entry) bumps the table's generation; a worker whose
//! cache is of an older generation drops it before its next lookup. The check is one
//! relaxed load of a line that is written only on such events, so it stays in every
//! core's cache. (Measured against a lock per frame or burst, a read-write lock with
//! atomic entries, read-copy-update and dashmap in `benches/src/bin/fdb-concurrency.rs`:
//! see the README.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use ahash::RandomState;
use packets::MacAddr;
use parking_lot::{Mutex, MutexGuard};

use crate::fdb::{Fdb, FdbConfig, Learned};
use crate::{Millis, PortId};

/// Entries a worker caches per network at most; a full cache starts again empty (the
/// table has everything).
pub const CACHE_ENTRIES: usize = 16_384;

/// Every table gets an identity of its own, so a cache never takes one table's entries
/// for another's (a network removed and made again under the same id).
static NEXT_TABLE: AtomicU64 = AtomicU64::new(1);

/// A network's forwarding table, shared by the workers.
#[derive(Debug)]
pub struct SharedFdb {
    table: Mutex<Fdb>,
    generation: AtomicU64,
    /// The table's aging, for caches to judge an entry's age without the lock.
    aging_ms: AtomicU64,
    identity: u64,
}

/// The table locked, for reading it whole (`show fdb`, counts).
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
    /// When this worker last refreshed the entry in the table from `port` (None: the
    /// entry was cached by a lookup, not learned here).
    refreshed: Option<Millis>,
    is_static: bool,
}

/// One worker's cache of one network's table.
#[derive(Debug, Default)]
pub struct FdbCache {
    table: u64,
    generation: u64,
    entries: HashMap<u64, Cached, RandomState>,
}

impl FdbCache {
    fn put(&mut self, mac: MacAddr, entry: Cached) {
        if self.entries.len() >= CACHE_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(mac.to_u64(), entry);
    }
}

impl SharedFdb {
    pub fn new(config: FdbConfig) -> SharedFdb {
        SharedFdb {
            aging_ms: AtomicU64::new(config.aging_ms),
            table: Mutex::new(Fdb::new(config)),
            generation: AtomicU64::new(0),
            identity: NEXT_TABLE.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The table, locked for reading.
    pub fn read(&self) -> FdbRead<'_> {
        FdbRead(self.table.lock())
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
        if let Some(c) = cache.entries.get(&mac.to_u64()) {
            if c.is_static {
                return Learned::Static;
            }
            if c.port == port && c.refreshed == Some(now) {
                return Learned::Refreshed;
            }
        }
        let (learned, seen) = {
            let mut table = self.table.lock();
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
            let table = self.table.lock();
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
        self.table.lock().lookup(mac, now)
    }

    pub fn set_config(&self, config: FdbConfig) {
        let mut table = self.table.lock();
        table.set_config(config);
        self.aging_ms.store(config.aging_ms, Ordering::Relaxed);
        self.invalidate();
    }

    pub fn add_static(&self, mac: MacAddr, port: PortId) {
        self.table.lock().add_static(mac, port);
        self.invalidate();
    }

    pub fn remove(&self, mac: MacAddr) -> bool {
        let removed = self.table.lock().remove(mac);
        self.invalidate();
        removed
    }

    pub fn flush(&self) {
        self.table.lock().flush();
        self.invalidate();
    }

    /// Forgets every entry, static ones too (the network is removed).
    pub fn flush_all(&self) {
        self.table.lock().flush_all();
        self.invalidate();
    }

    pub fn remove_port(&self, port: PortId) -> usize {
        let n = self.table.lock().remove_port(port);
        self.invalidate();
        n
    }

    /// Sweeps what aged out by `now`; how many went.
    pub fn expire(&self, now: Millis) -> usize {
        let n = self.table.lock().expire(now);
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
}
