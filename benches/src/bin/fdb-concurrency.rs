//! Which forwarding-table structure lets several workers share one network's table: each
//! simulated frame learns its source (a refresh: the MAC is known) and looks up its
//! destination, as `Forwarder::plan` does, from 1, 2 and 4 threads at once, for
//!
//! - `mutex`: today's `Fdb` behind one lock, taken per frame;
//! - `mutex-burst`: the same lock taken once per burst of 64 frames (plan a burst, then
//!   write it);
//! - `rwlock-atomic`: a map behind a read-write lock whose entries hold their port and
//!   last-seen time in atomics, so a lookup and a refresh take the read side only and
//!   only a new or moved MAC takes the write side (the Linux bridge's way: its FDB is
//!   read under RCU and `updated` is a plain store);
//! - `dashmap`: a sharded concurrent map (`dashmap`), an entry's fields updated in place;
//! - `rcu-atomic`: read-copy-update: readers load the current map through `arc-swap`
//!   (no lock, no shared counter) and update an entry's atomics; a new MAC copies the map
//!   and swaps the copy in, under a mutex of the writers';
//! - `exact+caches` (what uswitch ships, `forwarder::shared_fdb`): today's exact `Fdb`
//!   behind a mutex, and in front of it a cache per worker, which answers a known source
//!   on its port and a known destination without the lock, invalidated by a generation
//!   the table bumps on any change; a known source's refresh (once a millisecond) is
//!   noted in a list of the worker's own and applied by the next holder of the lock.
//!
//! As in the switch, each source MAC enters at one port and each port is read by one
//! worker: thread `t` sends from the MACs behind its own ports, to any MAC.
//!
//! Aggregate frames per second, median of five 200 ms runs:
//!
//!   cargo run --release -p uswitch-benches --bin fdb-concurrency
//!
//! The threads outnumber the cores on a 2-core machine at 4: that row shows what
//! oversubscription costs each structure, not scaling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use forwarder::shared_fdb::{FdbCache, SharedFdb};
use forwarder::{Fdb, FdbConfig, PortId};
use packets::MacAddr;
use uswitch_benches::Rng;

const MACS: u32 = 4096;
const PORTS: u32 = 64;
const BURST: usize = 64;

fn mac(i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr([0x02, 0x42, b[0], b[1], b[2], b[3]])
}

/// An entry whose fields a reader may update without the write lock.
struct Entry {
    port: AtomicU32,
    last_seen: AtomicU64,
}

impl Entry {
    /// A frame from this MAC seen on `port` at `now`. Stores only what changed: a cache
    /// line written by every worker for every frame would bounce between the cores.
    fn refresh(&self, port: u32, now: u64) {
        if self.last_seen.load(Ordering::Relaxed) != now {
            self.last_seen.store(now, Ordering::Relaxed);
        }
        if self.port.load(Ordering::Relaxed) != port {
            self.port.store(port, Ordering::Relaxed);
        }
    }
}

/// One structure under test: what a worker does for one frame, and for a burst.
trait Table: Send + Sync {
    fn frame(&self, src: u32, dst: u32, now: u64) -> Option<u32>;
    /// A frame through this worker's own `cache` (structures without one ignore it).
    fn frame_cached(&self, _cache: &mut FdbCache, src: u32, dst: u32, now: u64) -> Option<u32> {
        self.frame(src, dst, now)
    }
    fn burst(&self, frames: &[(u32, u32)], now: u64) -> u32 {
        frames
            .iter()
            .filter_map(|&(s, d)| self.frame(s, d, now))
            .sum()
    }
}

struct Locked(Mutex<Fdb>);

impl Table for Locked {
    fn frame(&self, src: u32, dst: u32, now: u64) -> Option<u32> {
        let mut fdb = self.0.lock().ok()?;
        fdb.learn(mac(src), PortId(src % PORTS), now);
        fdb.lookup(mac(dst), now).map(|p| p.0)
    }
}

struct LockedBurst(Locked);

impl Table for LockedBurst {
    fn frame(&self, src: u32, dst: u32, now: u64) -> Option<u32> {
        self.0.frame(src, dst, now)
    }
    fn burst(&self, frames: &[(u32, u32)], now: u64) -> u32 {
        let Ok(mut fdb) = self.0 .0.lock() else {
            return 0;
        };
        let mut sum = 0;
        for &(s, d) in frames {
            fdb.learn(mac(s), PortId(s % PORTS), now);
            sum += fdb.lookup(mac(d), now).map_or(0, |p| p.0);
        }
        sum
    }
}

struct RwAtomic(RwLock<HashMap<u64, Entry>>);

impl Table for RwAtomic {
    fn frame(&self, src: u32, dst: u32, now: u64) -> Option<u32> {
        let map = self.0.read().ok()?;
        let port = src % PORTS;
        match map.get(&mac(src).to_u64()) {
            Some(e) => e.refresh(port, now),
            None => {
                drop(map);
                let mut map = self.0.write().ok()?;
                map.entry(mac(src).to_u64()).or_insert(Entry {
                    port: AtomicU32::new(port),
                    last_seen: AtomicU64::new(now),
                });
                return None;
            }
        }
        map.get(&mac(dst).to_u64())
            .map(|e| e.port.load(Ordering::Relaxed))
    }
}

struct Rcu {
    map: arc_swap::ArcSwap<HashMap<u64, Arc<Entry>>>,
    writers: Mutex<()>,
}

impl Table for Rcu {
    fn frame(&self, src: u32, dst: u32, now: u64) -> Option<u32> {
        let map = self.map.load();
        let port = src % PORTS;
        match map.get(&mac(src).to_u64()) {
            Some(e) => e.refresh(port, now),
            None => {
                let _writer = self.writers.lock().ok()?;
                let mut copy = HashMap::clone(&self.map.load());
                copy.entry(mac(src).to_u64()).or_insert_with(|| {
                    Arc::new(Entry {
                        port: AtomicU32::new(port),
                        last_seen: AtomicU64::new(now),
                    })
                });
                self.map.store(Arc::new(copy));
                return None;
            }
        }
        map.get(&mac(dst).to_u64())
            .map(|e| e.port.load(Ordering::Relaxed))
    }
}

struct Dash(dashmap::DashMap<u64, (u32, u64)>);

impl Table for Dash {
    fn frame(&self, src: u32, dst: u32, now: u64) -> Option<u32> {
        let port = src % PORTS;
        match self.0.get_mut(&mac(src).to_u64()) {
            Some(mut e) => {
                if *e != (port, now) {
                    *e = (port, now);
                }
            }
            None => {
                self.0.insert(mac(src).to_u64(), (port, now));
            }
        }
        self.0.get(&mac(dst).to_u64()).map(|e| e.0)
    }
}

struct Cached(SharedFdb);

impl Table for Cached {
    fn frame(&self, src: u32, dst: u32, now: u64) -> Option<u32> {
        self.frame_cached(&mut FdbCache::default(), src, dst, now)
    }

    fn frame_cached(&self, cache: &mut FdbCache, src: u32, dst: u32, now: u64) -> Option<u32> {
        self.0.learn(cache, mac(src), PortId(src % PORTS), now);
        self.0.lookup(cache, mac(dst), now).map(|p| p.0)
    }
}

/// Frames per second from `threads` workers sharing `table`, each with its own stream of
/// random (source, destination) pairs among the known MACs.
fn run(table: Arc<dyn Table>, threads: usize, burst: bool) -> f64 {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(200);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let table = Arc::clone(&table);
            std::thread::spawn(move || {
                let mut rng = Rng(0x5eed_f000 + t as u64);
                let mut cache = FdbCache::for_worker(t);
                let own = (MACS as usize / threads) as u64;
                let mut frames = 0u64;
                let mut sink = 0u32;
                let mut batch = [(0u32, 0u32); BURST];
                while Instant::now() < deadline {
                    for f in batch.iter_mut() {
                        // A source behind one of this thread's ports (MAC i is on port
                        // i % PORTS, and port p is read by thread p % threads).
                        let src = (rng.below(own) as usize * threads + t) as u32;
                        *f = (src, rng.below(MACS as u64) as u32);
                    }
                    // One millisecond clock for all, as the switch's: most refreshes
                    // store nothing.
                    let now = start.elapsed().as_millis() as u64;
                    sink = sink.wrapping_add(if burst {
                        table.burst(&batch, now)
                    } else {
                        batch
                            .iter()
                            .filter_map(|&(s, d)| table.frame_cached(&mut cache, s, d, now))
                            .sum()
                    });
                    frames += BURST as u64;
                }
                std::hint::black_box(sink);
                frames
            })
        })
        .collect();
    let frames: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    frames as f64 / 0.2
}

fn build(name: &str) -> (Arc<dyn Table>, bool) {
    let mut fdb = Fdb::new(FdbConfig {
        max_entries: MACS as usize,
        aging_ms: 0,
        ..FdbConfig::default()
    });
    let map: HashMap<u64, Entry> = (0..MACS)
        .map(|i| {
            fdb.learn(mac(i), PortId(i % PORTS), 0);
            (
                mac(i).to_u64(),
                Entry {
                    port: AtomicU32::new(i % PORTS),
                    last_seen: AtomicU64::new(0),
                },
            )
        })
        .collect();
    let rcu: HashMap<u64, Arc<Entry>> = (0..MACS)
        .map(|i| {
            let e = Entry {
                port: AtomicU32::new(i % PORTS),
                last_seen: AtomicU64::new(0),
            };
            (mac(i).to_u64(), Arc::new(e))
        })
        .collect();
    let dash = dashmap::DashMap::new();
    for i in 0..MACS {
        dash.insert(mac(i).to_u64(), (i % PORTS, 0));
    }
    let shared = SharedFdb::new(FdbConfig {
        max_entries: MACS as usize,
        aging_ms: 0,
        ..FdbConfig::default()
    });
    for i in 0..MACS {
        shared.learn(&mut FdbCache::default(), mac(i), PortId(i % PORTS), 0);
    }
    match name {
        "exact+caches" => (Arc::new(Cached(shared)), false),
        "mutex" => (Arc::new(Locked(Mutex::new(fdb))), false),
        "mutex-burst" => (Arc::new(LockedBurst(Locked(Mutex::new(fdb)))), true),
        "rwlock-atomic" => (Arc::new(RwAtomic(RwLock::new(map))), false),
        "rcu-atomic" => (
            Arc::new(Rcu {
                map: arc_swap::ArcSwap::from_pointee(rcu),
                writers: Mutex::new(()),
            }),
            false,
        ),
        _ => (Arc::new(Dash(dash)), false),
    }
}

fn main() {
    println!("| structure | 1 thread (M frames/s) | 2 threads | 4 threads | 2 / 1 |");
    println!("|---|---:|---:|---:|---:|");
    for name in [
        "mutex",
        "mutex-burst",
        "rwlock-atomic",
        "rcu-atomic",
        "dashmap",
        "exact+caches",
    ] {
        let rates: Vec<f64> = [1, 2, 4]
            .iter()
            .map(|&threads| {
                let mut samples: Vec<f64> = (0..5)
                    .map(|_| {
                        let (table, burst) = build(name);
                        run(table, threads, burst)
                    })
                    .collect();
                samples.sort_by(f64::total_cmp);
                samples[2] / 1e6
            })
            .collect();
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.2}x |",
            rates[0],
            rates[1],
            rates[2],
            rates[1] / rates[0]
        );
    }
}
