//! The forwarder-core scenarios of the cost curves: a forwarder set up at one point of a
//! growing dimension (ports per network, MACs learned, networks, VXLAN remotes, workers
//! planning at once) and the
//! frames that exercise it, each entering at a port. `benches/benches/cost.rs` times them
//! under criterion; the `cost-curves` binary times them, weighs their memory and draws the
//! curves for the README.

use std::net::{IpAddr, Ipv4Addr};

use forwarder::{FdbConfig, Forwarder, Plan, PortId, Protection};
use packets::offload::Offload;
use packets::vxlan::{write_header, VXLAN_HEADER_LEN};

use crate::{arp_request, host_mac, udp_frame, Rng};

/// Frames per scenario: enough that a table larger than the caches is missed in.
const FRAMES: usize = 4096;

/// How a frame enters: at a port (a TAP), or as a VXLAN datagram from a remote.
pub enum Entry {
    Port(PortId),
    Remote(IpAddr),
}

/// A forwarder at one point of a curve and the frames that drive it.
pub struct Scenario {
    pub fwd: Forwarder,
    pub frames: Vec<(Entry, Vec<u8>)>,
    /// The VXLAN endpoint, for frames entering from remotes.
    pub endpoint: Option<forwarder::EndpointId>,
}

impl Scenario {
    /// Runs every frame through the forwarder once, as the switch's loop does (admission
    /// for VXLAN datagrams, then the plan); returns how many were planned somewhere.
    pub fn run(&mut self, plan: &mut Plan, now: u64) -> usize {
        let mut sent = 0;
        for (entry, frame) in &self.frames {
            let (ingress, inner) = match (entry, self.endpoint) {
                (Entry::Port(p), _) => (*p, &frame[..]),
                (Entry::Remote(from), Some(ep)) => {
                    match self.fwd.admit_vxlan(0, ep, frame, *from) {
                        Ok(p) => (p, &frame[VXLAN_HEADER_LEN..]),
                        Err(_) => continue,
                    }
                }
                (Entry::Remote(_), None) => continue,
            };
            self.fwd.plan(ingress, inner, Offload::None, now, plan);
            sent += usize::from(!plan.egresses.is_empty());
        }
        sent
    }

    /// Learns every host first (one frame from each, as hosts announce themselves), so
    /// that the timed runs see a warm table.
    fn warm(mut self, hosts: impl IntoIterator<Item = (Entry, Vec<u8>)>) -> Scenario {
        let mut plan = Plan::default();
        let frames = std::mem::replace(&mut self.frames, hosts.into_iter().collect());
        self.run(&mut plan, 0);
        self.frames = frames;
        self
    }
}

/// A forwarder whose table never ages or evicts what a scenario learned, and without
/// storm control: the timed passes replay thousands of floods in the same millisecond,
/// which a rate limit would drop after its first burst, timing drops instead of floods.
fn forwarder(entries: usize) -> Forwarder {
    let fdb = FdbConfig {
        max_entries: entries.max(8192),
        aging_ms: 0,
        ..FdbConfig::default()
    };
    let protection = Protection {
        bum_rate: 0,
        ..Protection::default()
    };
    Forwarder::with_protection(fdb, protection)
}

fn ports(fwd: &mut Forwarder, network: &str, n: u32, from: u32) -> Vec<PortId> {
    (from..from + n)
        .map(|p| {
            fwd.add_port(&format!("p{p}"), network, 1500)
                .expect("adding a port")
        })
        .collect()
}

/// One network of `n` ports, one host behind each; `broadcast` frames are ARP requests
/// (flooded to every other port), the others unicast UDP between random hosts.
pub fn ports_per_network(n: u32, broadcast: bool) -> Scenario {
    let mut fwd = forwarder(n as usize);
    let ids = ports(&mut fwd, "default", n, 0);
    let mut rng = Rng(0x5eed_c051);
    let frames = (0..FRAMES)
        .map(|_| {
            let s = rng.below(n as u64) as u32;
            let d = (s + 1 + rng.below(n as u64 - 1) as u32) % n;
            let f = if broadcast {
                arp_request(s, d)
            } else {
                udp_frame(s, d, host_mac(d), 18, 1024)
            };
            (Entry::Port(ids[s as usize]), f)
        })
        .collect();
    let hosts = (0..n).map(|h| (Entry::Port(ids[h as usize]), arp_request(h, (h + 1) % n)));
    Scenario {
        fwd,
        frames,
        endpoint: None,
    }
    .warm(hosts)
}

/// One network of four ports with `macs` hosts learned behind them (host `h` behind port
/// `h % 4`; `macs` a multiple of 4); unicast UDP between random hosts on different ports
/// (so lookups spread over the whole table).
pub fn macs(macs: u32) -> Scenario {
    let mut fwd = forwarder(macs as usize);
    let ids = ports(&mut fwd, "default", 4, 0);
    let port_of = |h: u32| ids[(h % 4) as usize];
    let mut rng = Rng(0x5eed_3ac5);
    let frames = (0..FRAMES)
        .map(|_| {
            let s = rng.below(macs as u64) as u32;
            let mut d = (s + 1 + rng.below(macs as u64 - 1) as u32) % macs;
            // A host behind the ingress port is not forwarded to (nor timed): take its
            // neighbour, which sits behind the next port.
            if d % 4 == s % 4 {
                d = (d + 1) % macs;
            }
            (
                Entry::Port(port_of(s)),
                udp_frame(s, d, host_mac(d), 18, 1024),
            )
        })
        .collect();
    let hosts = (0..macs).map(|h| (Entry::Port(port_of(h)), udp_frame(h, h, [0xff; 6], 18, 9)));
    Scenario {
        fwd,
        frames,
        endpoint: None,
    }
    .warm(hosts)
}

/// `networks` networks of two ports each, a host behind each port; unicast UDP within a
/// random network.
pub fn networks(networks: u32) -> Scenario {
    let mut fwd = forwarder(2 * networks as usize);
    let ids: Vec<PortId> = (0..networks)
        .flat_map(|n| ports(&mut fwd, &format!("net{n}"), 2, 2 * n))
        .collect();
    let mut rng = Rng(0x5eed_4e75);
    let frames = (0..FRAMES)
        .map(|_| {
            let s = rng.below(2 * networks as u64) as u32;
            let d = s ^ 1;
            (
                Entry::Port(ids[s as usize]),
                udp_frame(s, d, host_mac(d), 18, 1024),
            )
        })
        .collect();
    let hosts = (0..2 * networks).map(|h| (Entry::Port(ids[h as usize]), arp_request(h, h ^ 1)));
    Scenario {
        fwd,
        frames,
        endpoint: None,
    }
    .warm(hosts)
}

/// The address of remote `i` (198.18.2.0/23 holds 510).
fn remote_ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 2, 1)) + i))
}

/// One network on VNI 42 with two local ports and `remotes` VXLAN remotes, a host
/// behind each. Half the frames enter from a random remote bound for a local host, half
/// leave a local host for a random remote's host; with `broadcast`, the local half are
/// ARP requests flooded to every remote (head-end replication).
pub fn remotes(remotes: u32, broadcast: bool) -> Scenario {
    let mut fwd = forwarder(remotes as usize + 2);
    let ep = fwd.add_endpoint("198.18.1.1:4789");
    fwd.bind_vni(ep, 42, "default", 1450)
        .expect("binding VNI 42");
    for r in 0..remotes {
        fwd.add_remote(ep, 42, remote_ip(r))
            .expect("adding a remote");
    }
    let local = ports(&mut fwd, "default", 2, 0);
    // Hosts 0 and 1 are local; host 2 + r is behind remote r.
    let datagram = |f: Vec<u8>| {
        let mut d = vec![0u8; VXLAN_HEADER_LEN];
        if let Some(h) = d.first_chunk_mut() {
            write_header(h, 42);
        }
        d.extend_from_slice(&f);
        d
    };
    let mut rng = Rng(0x5eed_7e30);
    let frames = (0..FRAMES)
        .map(|i| {
            let r = rng.below(remotes as u64) as u32;
            let l = (i % 2) as u32;
            if i % 4 < 2 {
                let f = udp_frame(2 + r, l, host_mac(l), 18, 1024);
                (Entry::Remote(remote_ip(r)), datagram(f))
            } else if broadcast {
                (Entry::Port(local[l as usize]), arp_request(l, 2 + r))
            } else {
                let f = udp_frame(l, 2 + r, host_mac(2 + r), 18, 1024);
                (Entry::Port(local[l as usize]), f)
            }
        })
        .collect();
    let hosts: Vec<_> = (0..2)
        .map(|l| (Entry::Port(local[l as usize]), arp_request(l, 1 - l)))
        .chain((0..remotes).map(|r| {
            let f = arp_request(2 + r, 0);
            (Entry::Remote(remote_ip(r)), datagram(f))
        }))
        .collect();
    Scenario {
        fwd,
        frames,
        endpoint: Some(ep),
    }
    .warm(hosts)
}

/// Ports of the network the workers scenario forwards in.
const WORKER_PORTS: u32 = 16;

/// The forwarder core with `workers` threads planning at once, as the switch's workers
/// do: one network of 16 ports, a host behind each, port `p` read by worker `p % workers`.
/// Each worker's frames are unicast UDP from the hosts behind its ports to random hosts
/// anywhere in the network, so every worker looks up entries that the others learn and
/// refresh, in the one table they share.
pub struct WorkersScenario {
    pub fwd: Forwarder,
    /// Each worker's frames, with the port each enters at.
    pub frames: Vec<Vec<(PortId, Vec<u8>)>>,
}

pub fn workers(workers: u32) -> WorkersScenario {
    let mut fwd = forwarder(WORKER_PORTS as usize);
    fwd.set_workers(workers as usize);
    let ids = ports(&mut fwd, "default", WORKER_PORTS, 0);
    let mut rng = Rng(0x5eed_3071);
    let frames = (0..workers)
        .map(|w| {
            let own: Vec<u32> = (0..WORKER_PORTS).filter(|p| p % workers == w).collect();
            (0..FRAMES)
                .map(|_| {
                    let s = own[rng.below(own.len() as u64) as usize];
                    let d = (s + 1 + rng.below(WORKER_PORTS as u64 - 1) as u32) % WORKER_PORTS;
                    (ids[s as usize], udp_frame(s, d, host_mac(d), 18, 1024))
                })
                .collect()
        })
        .collect();
    let mut plan = Plan::default();
    for h in 0..WORKER_PORTS {
        let f = arp_request(h, (h + 1) % WORKER_PORTS);
        fwd.plan(ids[h as usize], &f, Offload::None, 0, &mut plan);
    }
    WorkersScenario { fwd, frames }
}

impl WorkersScenario {
    /// Every worker plans its frames over and over on a thread of its own, all starting
    /// together, for about `time`; the frames planned in all and the time they took. The
    /// clock advances as a switch's does (milliseconds since the start), so each worker
    /// refreshes its hosts in the shared table once a millisecond.
    pub fn run(&self, time: std::time::Duration) -> (u64, std::time::Duration) {
        let start = std::sync::Barrier::new(self.frames.len());
        let t0 = std::time::Instant::now();
        let total: u64 = std::thread::scope(|scope| {
            let threads: Vec<_> = self
                .frames
                .iter()
                .enumerate()
                .map(|(w, frames)| {
                    let (fwd, start) = (&self.fwd, &start);
                    scope.spawn(move || {
                        let mut plan = Plan::for_worker(w);
                        start.wait();
                        let begin = std::time::Instant::now();
                        let mut planned = 0u64;
                        while begin.elapsed() < time {
                            let now = begin.elapsed().as_millis() as u64 + 1;
                            for (ingress, frame) in frames {
                                fwd.plan(*ingress, frame, Offload::None, now, &mut plan);
                                planned += u64::from(!plan.egresses.is_empty());
                            }
                        }
                        planned
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap_or(0)).sum()
        });
        (total, t0.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every frame of every scenario goes somewhere, pass after pass: the curves time
    /// forwarding, not drops (storm control, unknown remotes, a table that forgot).
    #[test]
    fn every_frame_is_forwarded_in_every_pass() {
        let scenarios = [
            ports_per_network(2, false),
            ports_per_network(64, true),
            macs(5000),
            networks(20),
            remotes(1, false),
            remotes(16, true),
        ];
        let mut plan = Plan::default();
        for (i, mut s) in scenarios.into_iter().enumerate() {
            for pass in 0..3 {
                assert_eq!(
                    s.run(&mut plan, 1),
                    s.frames.len(),
                    "scenario {i}, pass {pass}"
                );
            }
        }
    }

    /// With several workers at once every frame is still forwarded, to the port its
    /// destination lives behind.
    #[test]
    fn workers_share_one_table() {
        for w in [1, 2, 4] {
            let s = workers(w);
            let (planned, _) = s.run(std::time::Duration::from_millis(20));
            let sent: u64 = s.frames.iter().map(|f| f.len() as u64).sum();
            assert!(planned >= sent, "{w} workers: {planned} of at least {sent}");
            // Whole passes only, each of FRAMES planned frames: nothing was dropped.
            assert_eq!(planned % FRAMES as u64, 0, "{w} workers dropped some");
            let net = s.fwd.network(forwarder::NetworkId(0)).expect("the network");
            assert_eq!(net.fdb().len(), WORKER_PORTS as usize);
        }
    }
}
