//! The forwarding decision: networks, ports, and what happens to each frame.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use packets::neighbor::{self, Question};
use packets::offload::{Offload, VIRTIO_NET_HDR_LEN};
use packets::{EthernetFrame, FrameError, MacAddr};

use crate::counters::{DropReason, NetworkStats, NetworkTally, PortCounters, Tallies, Tally};
use crate::endpoint::Endpoint;
use crate::fdb::{FdbConfig, Learned};
use crate::neighbors::Neighbors;
use crate::plan::{offload_holds, segments_fit, Delivery, EgressCaps, Lane, Plan, PortKind};
use crate::shared_fdb::{FdbCache, SharedFdb};
use crate::storm::TokenBucket;
use crate::{Millis, NetworkId, PortId};

/// The largest GSO frame a port may hand over: 64 KiB of IP plus an Ethernet header and
/// a VLAN tag.
pub const MAX_GSO_FRAME: usize = 65_535 + 18;

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Known unicast: to this one port.
    Forward(PortId),
    /// Broadcast, multicast or unknown unicast: to every port of the network except the
    /// ingress port (see [`Forwarder::flood_targets`]).
    Flood(NetworkId),
    /// Nowhere; already counted on the ingress port under this reason.
    Drop(DropReason),
    /// A question for an address whose owner sits behind a VXLAN remote: answered on the
    /// ingress port in the owner's name instead of flooded across hosts (ARP and
    /// neighbour-discovery suppression).
    Answer { question: Question, owner: MacAddr },
}

/// A configuration mistake the forwarder refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwarderError {
    /// Two ports with one name.
    #[error("port {0} is already attached; give each --port a different interface")]
    DuplicatePort(String),
    /// A network rides one overlay at most.
    #[error("network {network} is already on the overlay at {endpoint} (vni {vni})")]
    NetworkOnOverlay {
        network: String,
        endpoint: String,
        vni: u32,
    },
    /// A VNI carries one network per endpoint.
    #[error("vni {vni} at {endpoint} already carries network {network}")]
    VniInUse {
        vni: u32,
        endpoint: String,
        network: String,
    },
    /// A network removed while ports are still on it.
    #[error("network {network} still has {ports} port(s); remove them first")]
    NetworkInUse { network: String, ports: usize },
    #[error("no such VXLAN endpoint")]
    NoSuchEndpoint,
    #[error("vni {0} is not on this endpoint")]
    NoSuchVni(u32),
    /// The same remote named twice for one VNI.
    #[error("remote {remote} is given twice for vni {vni}; name each remote once")]
    DuplicateRemote { vni: u32, remote: std::net::IpAddr },
}

/// An isolated broadcast domain with its own forwarding database.
#[derive(Debug)]
pub struct Network {
    name: String,
    ports: Vec<PortId>,
    /// Shared by the workers (see [`SharedFdb`]).
    fdb: SharedFdb,
    /// Who holds which address: what ARP and ND suppression answers from. Locked only
    /// for ARP and ND frames.
    neighbors: Mutex<Neighbors>,
    stats: NetworkTally,
    /// The MTU the network's TAPs get when attached, if the network sets one.
    mtu: Option<usize>,
    /// Removed: its id is never handed out again, and lookups skip it.
    removed: bool,
}

impl Network {
    /// The MTU the network's TAPs get when attached, if it sets one.
    pub fn mtu(&self) -> Option<usize> {
        self.mtu
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ports(&self) -> &[PortId] {
        &self.ports
    }

    /// The forwarding table, locked for reading whole.
    pub fn fdb(&self) -> crate::shared_fdb::FdbRead<'_> {
        self.fdb.read()
    }

    /// The forwarding table as the workers share it.
    pub fn table(&self) -> &SharedFdb {
        &self.fdb
    }

    pub fn stats(&self) -> NetworkStats {
        self.stats.read()
    }

    pub fn neighbors(&self) -> MutexGuard<'_, Neighbors> {
        self.neighbors.lock()
    }
}

/// A port as the forwarder sees it: a name, a network, an MTU and counters.
#[derive(Debug)]
pub struct Port {
    name: String,
    network: NetworkId,
    mtu: usize,
    /// One tally per worker, summed on read.
    counters: Tallies,
    /// Taken from by the worker that reads the port, and only for floods.
    bum: Mutex<TokenBucket>,
    /// Frames from this port are dropped until then (loop protection).
    blocked_until: AtomicU64,
    /// When a loop was last reported for this port (reports are rate-limited);
    /// [`NEVER`] before the first.
    last_loop_alert: AtomicU64,
    /// Ports sharing a non-zero horizon (the VXLAN peers of one network) never send each
    /// other frames: split horizon.
    horizon: u32,
    caps: EgressCaps,
    /// Being captured: UDP datagrams are written to it one by one, as they came.
    captured: AtomicBool,
}

/// No loop reported yet.
const NEVER: Millis = Millis::MAX;

impl Port {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn network(&self) -> NetworkId {
        self.network
    }

    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Every worker's counts added up.
    pub fn counters(&self) -> PortCounters {
        self.counters.sum()
    }

    /// What worker `w` counted on the port.
    pub fn counters_of_worker(&self, w: usize) -> PortCounters {
        self.counters.of_worker(w)
    }

    /// Worker `w`'s tally.
    fn tally(&self, w: usize) -> &Tally {
        self.counters.of(w)
    }

    /// The port's storm-control rate in frames per second (0: no limit).
    pub fn bum_rate(&self) -> u64 {
        self.bum.lock().rate()
    }

    /// The port's split-horizon group (0: none).
    pub fn horizon(&self) -> u32 {
        self.horizon
    }

    /// What the port's device takes on egress.
    pub fn caps(&self) -> EgressCaps {
        self.caps
    }

    /// Whether loop protection holds the port blocked at `now`.
    pub fn is_blocked(&self, now: Millis) -> bool {
        now < self.blocked_until.load(Ordering::Relaxed)
    }
}

/// A port that looked like part of a loop: `mac` arrived on it while it lived on `other`,
/// faster than the move hold-down allows a host to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopAlert {
    pub port: PortId,
    pub mac: packets::MacAddr,
    pub other: PortId,
    /// Set when loop protection blocked the port: until when.
    pub blocked_until: Option<Millis>,
}

/// Loop reports per port at most once per this long.
pub const LOOP_ALERT_INTERVAL_MS: Millis = 10_000;

/// Storm control and loop protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protection {
    /// Flooded frames per second per port (0: no limit); [`Forwarder::set_bum_rate`]
    /// overrides it per port.
    pub bum_rate: u64,
    /// When set, a port suspected of a loop is blocked for this long.
    pub loop_block_ms: Option<Millis>,
}

impl Default for Protection {
    /// 20 000 flooded frames per second per port: far above what ARP, neighbour discovery
    /// and service discovery need, far below what a loop produces. No loop blocking.
    fn default() -> Self {
        Protection {
            bum_rate: 20_000,
            loop_block_ms: None,
        }
    }
}

/// Networks, ports and their forwarding databases.
#[derive(Debug)]
pub struct Forwarder {
    fdb_config: FdbConfig,
    protection: Protection,
    networks: Vec<Network>,
    /// Ports by id; a detached port's slot is reused by the next port attached, so the
    /// per-port vectors here and in the FDBs stay as long as the most ports attached at
    /// once, however many come and go.
    ports: Vec<Option<Port>>,
    free_slots: Vec<u32>,
    alerts: Mutex<Vec<LoopAlert>>,
    /// Set while `alerts` is not empty, so the loop's check takes no lock.
    alerting: AtomicBool,
    /// VXLAN endpoints (the overlay module decides with them).
    pub(crate) overlay: Vec<Endpoint>,
    /// Frames handed in on a port that is no longer attached (read in the burst it went).
    pub(crate) unattached_drops: AtomicU64,
    /// The workers that plan frames at once, each counting in its own tally.
    pub(crate) workers: usize,
    /// The lane [`Forwarder::process`] plans with.
    own_lane: Mutex<Lane>,
    /// Whether UDP datagrams may be held and joined into UDP GSO frames.
    udp_join: bool,
    /// Whether ARP requests and neighbour solicitations for addresses behind a remote are
    /// answered here (and claims on local ports heard).
    suppress: bool,
}

impl Forwarder {
    pub fn new(fdb_config: FdbConfig) -> Forwarder {
        Self::with_protection(fdb_config, Protection::default())
    }

    pub fn with_protection(fdb_config: FdbConfig, protection: Protection) -> Forwarder {
        Forwarder {
            fdb_config,
            protection,
            networks: Vec::new(),
            ports: Vec::new(),
            free_slots: Vec::new(),
            alerts: Mutex::new(Vec::new()),
            alerting: AtomicBool::new(false),
            overlay: Vec::new(),
            unattached_drops: AtomicU64::new(0),
            workers: 1,
            own_lane: Mutex::new(Lane::default()),
            udp_join: true,
            suppress: true,
        }
    }

    /// How many workers plan frames at once (at least 1). Each counts in a tally of its
    /// own, summed on read; what was counted so far is kept.
    pub fn set_workers(&mut self, workers: usize) {
        self.workers = workers.max(1);
        for port in self.ports.iter_mut().flatten() {
            port.counters.resize(self.workers);
        }
        for ep in &mut self.overlay {
            ep.counters.resize(self.workers);
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Whether ARP requests and neighbour solicitations for addresses known to live
    /// behind a VXLAN remote are answered on the asker's port instead of flooded (on by
    /// default; `--no-arp-suppress` turns it off, and then no claims are heard either).
    pub fn set_arp_suppress(&mut self, on: bool) {
        self.suppress = on;
    }

    pub fn arp_suppress(&self) -> bool {
        self.suppress
    }

    /// The addresses other nodes of a cluster advertise on `network`, replacing those it
    /// advertised before.
    pub fn set_cluster_neighbors(&mut self, network: NetworkId, entries: &[(IpAddr, MacAddr)]) {
        if let Some(net) = self.networks.get_mut(network.0 as usize) {
            net.neighbors.lock().set_cluster(entries);
        }
    }

    /// New FDB limits for every network, and those made later (a configuration reload).
    pub fn set_fdb_config(&mut self, config: FdbConfig) {
        self.fdb_config = config;
        for net in &self.networks {
            net.fdb.set_config(config);
        }
    }

    /// New storm-control default and loop protection (a configuration reload): ports
    /// attached from now on take the new rate; the caller sets it on those that follow
    /// the default.
    pub fn set_protection(&mut self, protection: Protection) {
        self.protection = protection;
    }

    /// Whether back-to-back UDP datagrams of one flow may be joined into UDP GSO frames
    /// (on by default; `--no-udp-join` turns it off).
    pub fn set_udp_join(&mut self, on: bool) {
        self.udp_join = on;
    }

    /// Marks `port` as captured (or no longer): a captured port gets UDP datagrams one
    /// by one, as they came.
    pub fn set_captured(&self, port: PortId, on: bool) {
        if let Some(p) = self.port(port) {
            p.captured.store(on, Ordering::Relaxed);
        }
    }

    /// Frames handed in on a port that was no longer attached.
    pub fn unattached_drops(&self) -> u64 {
        self.unattached_drops.load(Ordering::Relaxed)
    }

    /// Counts a frame from a port no longer attached.
    pub(crate) fn unattached(&self) {
        self.unattached_drops.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the MTU `network` (created if new) gives its TAPs, unless it has one.
    pub fn default_network_mtu(&mut self, network: &str, mtu: usize) {
        let id = self.network_named(network);
        self.networks[id.0 as usize].mtu.get_or_insert(mtu);
    }

    /// Sets the MTU `network` (created if new) gives its TAPs.
    pub fn set_network_mtu(&mut self, network: &str, mtu: usize) {
        let id = self.network_named(network);
        self.networks[id.0 as usize].mtu = Some(mtu);
    }

    /// Sets the storm-control rate of one port (0: no limit).
    pub fn set_bum_rate(&mut self, port: PortId, rate: u64) {
        if let Some(p) = self.port_mut(port) {
            *p.bum.get_mut() = TokenBucket::new(rate);
        }
    }

    /// The loop reports gathered since the last call, for the shell to log.
    pub fn take_loop_alerts(&self) -> Vec<LoopAlert> {
        let mut alerts = self.alerts.lock();
        self.alerting.store(false, Ordering::Relaxed);
        std::mem::take(&mut *alerts)
    }

    /// Whether loop reports are waiting (cheap: no lock, no allocation).
    pub fn has_loop_alerts(&self) -> bool {
        self.alerting.load(Ordering::Relaxed)
    }

    /// The network called `name`, created if it does not exist yet.
    pub fn network_named(&mut self, name: &str) -> NetworkId {
        if let Some(id) = self.network_id(name) {
            return id;
        }
        self.networks.push(Network {
            name: name.to_string(),
            ports: Vec::new(),
            fdb: SharedFdb::new(self.fdb_config),
            neighbors: Mutex::new(Neighbors::new(self.fdb_config.max_entries)),
            stats: NetworkTally::default(),
            mtu: None,
            removed: false,
        });
        NetworkId((self.networks.len() - 1) as u32)
    }

    pub fn network_id(&self, name: &str) -> Option<NetworkId> {
        self.networks
            .iter()
            .position(|n| !n.removed && n.name == name)
            .map(|i| NetworkId(i as u32))
    }

    pub fn network(&self, id: NetworkId) -> Option<&Network> {
        self.networks.get(id.0 as usize).filter(|n| !n.removed)
    }

    pub fn networks(&self) -> impl Iterator<Item = (NetworkId, &Network)> {
        self.networks
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.removed)
            .map(|(i, n)| (NetworkId(i as u32), n))
    }

    /// Removes a network that has no ports left (an overlay's remotes are ports: unbind
    /// its VNI first).
    pub fn remove_network(&mut self, id: NetworkId) -> Result<(), ForwarderError> {
        let Some(net) = self.networks.get_mut(id.0 as usize).filter(|n| !n.removed) else {
            return Ok(());
        };
        if !net.ports.is_empty() {
            return Err(ForwarderError::NetworkInUse {
                network: net.name.clone(),
                ports: net.ports.len(),
            });
        }
        net.removed = true;
        net.fdb.flush_all();
        Ok(())
    }

    /// Attaches a port called `name` with the given MTU to the network `network`
    /// (created on first use).
    pub fn add_port(
        &mut self,
        name: &str,
        network: &str,
        mtu: usize,
    ) -> Result<PortId, ForwarderError> {
        self.add_port_in_horizon(name, network, mtu, 0)
    }

    /// [`Forwarder::add_port`] for a port in split-horizon group `horizon` (non-zero):
    /// frames received on it are never sent to another port of the group. uswitch puts
    /// the VXLAN peers of a network in one group, so what comes from the overlay never
    /// goes back into it.
    pub fn add_port_in_horizon(
        &mut self,
        name: &str,
        network: &str,
        mtu: usize,
        horizon: u32,
    ) -> Result<PortId, ForwarderError> {
        self.attach(name, network, mtu, EgressCaps::default(), horizon)
    }

    /// Attaches a port called `name` whose device takes `caps`, with the given MTU and
    /// split-horizon group (0: none), to `network` (created on first use). Reuses the
    /// slot of a port detached before.
    pub fn attach(
        &mut self,
        name: &str,
        network: &str,
        mtu: usize,
        caps: EgressCaps,
        horizon: u32,
    ) -> Result<PortId, ForwarderError> {
        if self.ports.iter().flatten().any(|p| p.name == name) {
            return Err(ForwarderError::DuplicatePort(name.to_string()));
        }
        let net = self.network_named(network);
        let port = Port {
            name: name.to_string(),
            network: net,
            mtu,
            counters: Tallies::new(self.workers),
            bum: Mutex::new(TokenBucket::new(self.protection.bum_rate)),
            blocked_until: AtomicU64::new(0),
            last_loop_alert: AtomicU64::new(NEVER),
            horizon,
            caps,
            captured: AtomicBool::new(false),
        };
        let id = match self.free_slots.pop() {
            Some(slot) => {
                self.ports[slot as usize] = Some(port);
                PortId(slot)
            }
            None => {
                self.ports.push(Some(port));
                PortId((self.ports.len() - 1) as u32)
            }
        };
        self.networks[net.0 as usize].ports.push(id);
        Ok(id)
    }

    /// How many port slots exist (the most ports attached at once).
    pub fn port_slots(&self) -> usize {
        self.ports.len()
    }

    /// Detaches a port, forgetting the MACs learned on it; returns it with its final
    /// counters.
    pub fn remove_port(&mut self, id: PortId) -> Option<Port> {
        let port = self.ports.get_mut(id.0 as usize)?.take()?;
        self.free_slots.push(id.0);
        let net = &mut self.networks[port.network.0 as usize];
        net.ports.retain(|&p| p != id);
        net.fdb.remove_port(id);
        self.forget_remote(id);
        Some(port)
    }

    pub fn port(&self, id: PortId) -> Option<&Port> {
        self.ports.get(id.0 as usize)?.as_ref()
    }

    fn port_mut(&mut self, id: PortId) -> Option<&mut Port> {
        self.ports.get_mut(id.0 as usize)?.as_mut()
    }

    /// Every attached port.
    pub fn ports(&self) -> impl Iterator<Item = (PortId, &Port)> {
        self.ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((PortId(i as u32), p.as_ref()?)))
    }

    /// Learns from and decides the fate of `frame`, received on `ingress` at `now`.
    /// Counts the reception, and the drop when the decision is one (as worker 0, through
    /// a lane of the forwarder's own: a caller with no worker of its own, such as a test).
    pub fn process(&self, ingress: PortId, frame: &[u8], now: Millis) -> Decision {
        let mut lane = self.own_lane.lock();
        self.process_frame(&mut lane, ingress, frame, false, now)
    }

    /// [`Forwarder::process`] for a frame that may be a GSO frame (`gso`): one that stands
    /// for several MTU-sized segments and so may exceed the MTU (up to 64 KiB), decided
    /// by the worker whose `lane` it is.
    pub fn process_frame(
        &self,
        lane: &mut Lane,
        ingress: PortId,
        frame: &[u8],
        gso: bool,
        now: Millis,
    ) -> Decision {
        let Some(port) = self.port(ingress) else {
            // A frame read from a port that was detached in the same burst: nobody to
            // count it on but the forwarder itself.
            self.unattached();
            return Decision::Drop(DropReason::EgressError);
        };
        let tally = port.tally(lane.worker);
        tally.received(frame.len());
        if port.is_blocked(now) {
            tally.count_drop(DropReason::LoopProtect);
            return Decision::Drop(DropReason::LoopProtect);
        }
        let mut suspect = None;
        let horizon = port.horizon;
        let net = &self.networks[port.network.0 as usize];
        let cache = lane.cache(port.network);
        let verdict = Self::decide(
            net,
            port,
            tally,
            cache,
            ingress,
            frame,
            gso,
            now,
            &mut suspect,
        );
        // Split horizon: nothing from a group goes to a port of the same group.
        let verdict = match verdict {
            Decision::Forward(egress) if horizon != 0 && self.horizon(egress) == horizon => {
                Decision::Drop(DropReason::SplitHorizon)
            }
            v => v,
        };
        let verdict = self.suppress(lane, ingress, frame, verdict, now);
        let verdict = match verdict {
            Decision::Flood(_) if !port.bum.lock().take(now) => {
                Decision::Drop(DropReason::StormControl)
            }
            Decision::Flood(_)
            | Decision::Forward(_)
            | Decision::Drop(_)
            | Decision::Answer { .. } => verdict,
        };
        if let Some((mac, other)) = suspect {
            self.suspect_loop(port, tally, ingress, mac, other, now);
        }
        match verdict {
            Decision::Drop(reason) => tally.count_drop(reason),
            Decision::Flood(_) => tally.flooded(),
            Decision::Forward(_) => tally.forwarded(),
            Decision::Answer { .. } => tally.answered(),
        }
        verdict
    }

    /// A MAC flapping faster than the hold-down onto `port`: hosts do not move that
    /// fast, frames going round a loop do. Only the worker reading the port gets here.
    fn suspect_loop(
        &self,
        port: &Port,
        tally: &Tally,
        ingress: PortId,
        mac: MacAddr,
        other: PortId,
        now: Millis,
    ) {
        tally.loop_suspected();
        let blocked_until = self.protection.loop_block_ms.map(|ms| now + ms);
        if let Some(until) = blocked_until {
            port.blocked_until.store(until, Ordering::Relaxed);
        }
        let last = port.last_loop_alert.load(Ordering::Relaxed);
        let due = last == NEVER || now.saturating_sub(last) >= LOOP_ALERT_INTERVAL_MS;
        if due || blocked_until.is_some() {
            port.last_loop_alert.store(now, Ordering::Relaxed);
            self.alerts.lock().push(LoopAlert {
                port: ingress,
                mac,
                other,
                blocked_until,
            });
            self.alerting.store(true, Ordering::Relaxed);
        }
    }

    /// ARP and ND suppression for a frame from a local port: the claim it makes is
    /// heard, and a flooded question for an address whose owner is behind a VXLAN
    /// remote becomes an answer. Frames from remotes are neither (their own switch
    /// heard them, and their questions were already let through there).
    fn suppress(
        &self,
        lane: &mut Lane,
        ingress: PortId,
        frame: &[u8],
        verdict: Decision,
        now: Millis,
    ) -> Decision {
        if !self.suppress || matches!(verdict, Decision::Drop(_)) {
            return verdict;
        }
        let Some(port) = self.port(ingress) else {
            return verdict;
        };
        if port.caps.kind == PortKind::Remote {
            return verdict;
        }
        let net = port.network.0 as usize;
        if let Some((ip, mac)) = neighbor::claim(frame) {
            self.networks[net].neighbors.lock().hear(ip, mac);
        }
        let Decision::Flood(_) = verdict else {
            return verdict;
        };
        let Some(question) = neighbor::question(frame) else {
            return verdict;
        };
        let network = &self.networks[net];
        let Some(owner) = network.neighbors.lock().get(question.target) else {
            return verdict;
        };
        let behind_remote = network
            .fdb
            .lookup(lane.cache(port.network), owner, now)
            .and_then(|p| self.port(p))
            .is_some_and(|p| p.caps.kind == PortKind::Remote);
        if owner == question.asker_mac || !behind_remote {
            return verdict;
        }
        Decision::Answer { question, owner }
    }

    fn horizon(&self, port: PortId) -> u32 {
        self.port(port).map_or(0, |p| p.horizon)
    }

    #[allow(clippy::too_many_arguments)]
    fn decide(
        net: &Network,
        port: &Port,
        tally: &Tally,
        cache: &mut FdbCache,
        ingress: PortId,
        frame: &[u8],
        gso: bool,
        now: Millis,
        suspect: &mut Option<(packets::MacAddr, PortId)>,
    ) -> Decision {
        let eth = match EthernetFrame::new_checked(frame) {
            Ok(eth) => eth,
            Err(FrameError::Runt(_)) => return Decision::Drop(DropReason::Runt),
            Err(FrameError::TruncatedVlan(_)) => return Decision::Drop(DropReason::BadVlanTag),
        };
        let fits = if gso {
            frame.len() <= MAX_GSO_FRAME
        } else {
            eth.fits_mtu(port.mtu)
        };
        if !fits {
            return Decision::Drop(DropReason::Oversized);
        }
        let (src, dst) = (eth.src(), eth.dst());
        if src.is_multicast() {
            return Decision::Drop(DropReason::SourceMulticast);
        }
        if src.is_zero() {
            return Decision::Drop(DropReason::SourceZero);
        }
        match net.fdb.learn(cache, src, ingress, now) {
            Learned::New { evicted: Some(_) } => {
                net.stats.evictions.fetch_add(1, Ordering::Relaxed);
            }
            Learned::Moved { .. } => tally.mac_moved(),
            Learned::MoveHeld { owner } => {
                tally.move_held();
                *suspect = Some((src, owner));
            }
            Learned::New { evicted: None } | Learned::Refreshed | Learned::Static => {}
        }
        if dst.is_multicast() {
            if dst.is_link_local() {
                return Decision::Drop(DropReason::LinkLocal);
            }
            return Decision::Flood(port.network);
        }
        match net.fdb.lookup(cache, dst, now) {
            Some(egress) if egress == ingress => Decision::Drop(DropReason::LocalDestination),
            Some(egress) => Decision::Forward(egress),
            None => Decision::Flood(port.network),
        }
    }

    /// The ports a flood from `ingress` in `network` goes to, written into `out` (cleared
    /// first) so the caller can reuse one vector and never allocate per frame.
    pub fn flood_targets(&self, network: NetworkId, ingress: PortId, out: &mut Vec<PortId>) {
        out.clear();
        let horizon = self.horizon(ingress);
        if let Some(net) = self.networks.get(network.0 as usize) {
            out.extend(
                net.ports
                    .iter()
                    .copied()
                    .filter(|&p| p != ingress && (horizon == 0 || self.horizon(p) != horizon)),
            );
        }
    }

    /// Whether `frame` fits the MTU of `egress` (a GSO frame, whose segments the egress
    /// cuts, only has to fit 64 KiB); a frame that does not is counted as an
    /// `egress_too_big` drop on that port, by worker `w`.
    pub fn admit_egress(&self, w: usize, egress: PortId, frame: &[u8], gso: bool) -> bool {
        let Some(port) = self.port(egress) else {
            return false;
        };
        let fits = if gso {
            frame.len() <= MAX_GSO_FRAME
        } else {
            EthernetFrame::new_checked(frame).is_ok_and(|f| f.fits_mtu(port.mtu))
        };
        if !fits {
            port.tally(w).count_drop(DropReason::EgressTooBig);
        }
        fits
    }

    /// Learns from `frame`, received on `ingress` at `now` with what its virtio-net
    /// header says is still to be done to it (`offload`), and writes into `plan` where it
    /// goes and how each egress gets it. Every drop is counted, once, on the port it
    /// happened to, by the worker whose plan (and [`Lane`]) it is; an empty plan is a
    /// dropped frame. Workers plan at once: nothing here takes a lock on the fast path.
    pub fn plan(
        &self,
        ingress: PortId,
        frame: &[u8],
        offload: Offload,
        now: Millis,
        plan: &mut Plan,
    ) {
        plan.clear();
        let w = plan.lane.worker;
        if !offload_holds(frame, offload) {
            self.record_rx_drop(w, ingress, frame.len(), DropReason::BadOffload);
            return;
        }
        let mut egresses = std::mem::take(&mut plan.lane.scratch);
        egresses.clear();
        match self.process_frame(&mut plan.lane, ingress, frame, offload.is_gso(), now) {
            Decision::Forward(egress) => egresses.push(egress),
            Decision::Flood(net) => self.flood_targets(net, ingress, &mut egresses),
            Decision::Drop(_) => {}
            Decision::Answer { question, owner } => {
                let with_header = self.port(ingress).is_some_and(|p| p.caps.vnet_hdr);
                plan.reply.clear();
                if with_header {
                    // A complete frame: a virtio-net header that asks for nothing.
                    plan.reply.resize(VIRTIO_NET_HDR_LEN, 0);
                }
                neighbor::write_answer(&question, owner, &mut plan.reply);
                plan.egresses
                    .push((ingress, Delivery::Reply { with_header }));
                plan.lane.scratch = egresses;
                return;
            }
        }
        self.plan_egresses(w, frame, offload, &egresses, plan);
        plan.lane.scratch = egresses;
    }

    /// [`Forwarder::plan`] once the targets are known.
    fn plan_egresses(
        &self,
        w: usize,
        frame: &[u8],
        offload: Offload,
        egresses: &[PortId],
        plan: &mut Plan,
    ) {
        let targets = &mut plan.egresses;
        let mut offload = offload;
        // A partial checksum bound for a port without the header is finished once, in
        // place, for every egress; the frame is then complete. (Its offsets were checked
        // before the decision.)
        if let Offload::Checksum { start, offset } = offload {
            let plain = egresses
                .iter()
                .any(|&e| self.port(e).is_some_and(|p| !p.caps.vnet_hdr));
            if plain {
                plan.finish_checksum = Some((start, offset));
                offload = Offload::None;
            }
        }
        // A decided frame has a whole Ethernet header; its length is what an MTU leaves
        // out.
        let l2 = EthernetFrame::new_checked(frame).map_or(usize::MAX, |e| e.header_len());
        let alone = egresses.len() == 1;
        let udp_join = self.udp_join;
        for &egress in egresses {
            let Some(port) = self.port(egress) else {
                continue;
            };
            let caps = port.caps;
            let delivery = match offload {
                Offload::Segment { tcp, size } => {
                    // The segments, each the same bytes a plain frame would be, must
                    // fit the egress, whether it or uswitch cuts them.
                    if !segments_fit(frame, offload, port.mtu) || frame.len() > MAX_GSO_FRAME {
                        port.tally(w).count_drop(DropReason::EgressTooBig);
                        continue;
                    }
                    if caps.vnet_hdr {
                        Delivery::WithHeader
                    } else {
                        Delivery::Segments { tcp, size }
                    }
                }
                Offload::None | Offload::Checksum { .. } => {
                    if frame.len() > port.mtu.saturating_add(l2) {
                        port.tally(w).count_drop(DropReason::EgressTooBig);
                        continue;
                    }
                    let captured = port.captured.load(Ordering::Relaxed);
                    let join = alone && udp_join && caps.udp_gso && !captured;
                    match (join, caps.vnet_hdr) {
                        (true, with_header) => Delivery::JoinUdp { with_header },
                        (false, true) => Delivery::WithHeader,
                        (false, false) => Delivery::Frame,
                    }
                }
            };
            targets.push((egress, delivery));
        }
    }

    /// Counts, as worker `w`, a drop on `port` of a frame already counted as received.
    pub fn count_drop(&self, w: usize, port: PortId, reason: DropReason) {
        if let Some(port) = self.port(port) {
            port.tally(w).count_drop(reason);
        }
    }

    /// Counts, as worker `w`, a frame written to `egress`.
    pub fn record_tx(&self, w: usize, egress: PortId, len: usize) {
        self.record_tx_frames(w, egress, 1, len);
    }

    /// Counts, as worker `w`, `frames` frames, `bytes` in all, written to `egress` at once.
    pub fn record_tx_frames(&self, w: usize, egress: PortId, frames: usize, bytes: usize) {
        if let Some(port) = self.port(egress) {
            port.tally(w).sent(frames, bytes);
        }
    }

    /// Counts, as worker `w`, a frame received on `port` and dropped before a decision.
    pub fn record_rx_drop(&self, w: usize, port: PortId, len: usize, reason: DropReason) {
        match self.port(port) {
            Some(port) => {
                let tally = port.tally(w);
                tally.received(len);
                tally.count_drop(reason);
            }
            None => self.unattached(),
        }
    }

    /// Counts, as worker `w`, a frame that `egress` could not take.
    pub fn record_tx_drop(&self, w: usize, egress: PortId, reason: DropReason) {
        self.count_drop(w, egress, reason);
    }

    /// The attached port called `name`.
    pub fn port_named(&self, name: &str) -> Option<PortId> {
        self.ports().find(|(_, p)| p.name == name).map(|(id, _)| id)
    }

    /// Adds a static entry `mac` -> `port` in the port's network.
    pub fn add_static(&mut self, mac: packets::MacAddr, port: PortId) -> Option<NetworkId> {
        let net = self.port(port)?.network;
        self.networks[net.0 as usize].fdb.add_static(mac, port);
        Some(net)
    }

    /// Removes the entry (static or learned) of `mac` in `network`, or in every network;
    /// returns how many went.
    pub fn remove_fdb_entry(&mut self, network: Option<NetworkId>, mac: packets::MacAddr) -> usize {
        let mut removed = 0;
        for (i, net) in self.networks.iter().enumerate() {
            if network.is_none_or(|n| n.0 as usize == i) && net.fdb.remove(mac) {
                removed += 1;
            }
        }
        removed
    }

    /// Forgets the learned entries of `network`, or of every network.
    pub fn flush_fdb(&mut self, network: Option<NetworkId>) {
        for (i, net) in self.networks.iter().enumerate() {
            if network.is_none_or(|n| n.0 as usize == i) {
                net.fdb.flush();
            }
        }
    }

    /// Sweeps aged entries from every network; returns how many went.
    pub fn expire(&self, now: Millis) -> usize {
        let mut total = 0;
        for net in &self.networks {
            let n = net.fdb.expire(now);
            net.stats.expired.fetch_add(n as u64, Ordering::Relaxed);
            total += n;
            // A claim outlives nobody: its MAC gone from the FDB, it goes too.
            let fdb = net.fdb.read();
            net.neighbors
                .lock()
                .forget_local(|mac| fdb.lookup(mac, now).is_some());
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use packets::{write_header, EtherType, MacAddr};

    const H1: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
    const H2: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 2]);
    const H3: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 3]);

    fn frame(dst: MacAddr, src: MacAddr, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        write_header(&mut f, dst, src, EtherType::IPV4).unwrap();
        f
    }

    /// Ports p0, p1, p2 on `default` and p3, p4 on `blue`, MTU 1500.
    fn lab() -> (Forwarder, [PortId; 5]) {
        let mut fwd = Forwarder::new(FdbConfig::default());
        let p = [
            fwd.add_port("p0", "default", 1500).unwrap(),
            fwd.add_port("p1", "default", 1500).unwrap(),
            fwd.add_port("p2", "default", 1500).unwrap(),
            fwd.add_port("p3", "blue", 1500).unwrap(),
            fwd.add_port("p4", "blue", 1500).unwrap(),
        ];
        (fwd, p)
    }

    fn targets(fwd: &Forwarder, d: Decision, ingress: PortId) -> Vec<PortId> {
        match d {
            Decision::Forward(p) => vec![p],
            Decision::Flood(n) => {
                let mut out = Vec::new();
                fwd.flood_targets(n, ingress, &mut out);
                out
            }
            Decision::Drop(_) => vec![],
            Decision::Answer { .. } => vec![ingress],
        }
    }

    #[test]
    fn switch_floods_unknown_then_forwards_learned_unicast() {
        let (fwd, p) = lab();
        let d = fwd.process(p[0], &frame(H2, H1, 60), 0);
        assert_eq!(targets(&fwd, d, p[0]), vec![p[1], p[2]]);
        // H2 answers from p1: H1 is known, so it goes to p0 only.
        let d = fwd.process(p[1], &frame(H1, H2, 60), 1);
        assert_eq!(d, Decision::Forward(p[0]));
        // Now both are known.
        assert_eq!(
            fwd.process(p[0], &frame(H2, H1, 60), 2),
            Decision::Forward(p[1])
        );
        let c = fwd.port(p[0]).unwrap().counters();
        assert_eq!((c.rx_frames, c.rx_bytes, c.floods), (2, 120, 1));
    }

    #[test]
    fn switch_floods_broadcast_and_multicast_within_the_network() {
        let (fwd, p) = lab();
        fwd.process(p[1], &frame(H1, H2, 60), 0);
        for dst in [
            MacAddr::BROADCAST,
            MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
            MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        ] {
            let d = fwd.process(p[0], &frame(dst, H1, 60), 1);
            assert_eq!(targets(&fwd, d, p[0]), vec![p[1], p[2]], "{dst}");
        }
    }

    #[test]
    fn networks_are_isolated() {
        let (fwd, p) = lab();
        // H1 on default, H3 on blue. Each network floods only to its own ports.
        let d = fwd.process(p[3], &frame(MacAddr::BROADCAST, H3, 60), 0);
        assert_eq!(targets(&fwd, d, p[3]), vec![p[4]]);
        let d = fwd.process(p[0], &frame(MacAddr::BROADCAST, H1, 60), 0);
        assert_eq!(targets(&fwd, d, p[0]), vec![p[1], p[2]]);
        // A MAC learned in blue is unknown in default: unicast to it floods default only.
        let d = fwd.process(p[0], &frame(H3, H1, 60), 1);
        assert_eq!(targets(&fwd, d, p[0]), vec![p[1], p[2]]);
        // And the same MAC may live in both networks at once.
        fwd.process(p[1], &frame(H1, H3, 60), 2);
        assert_eq!(
            fwd.process(p[4], &frame(H3, H2, 60), 3),
            Decision::Forward(p[3])
        );
        assert_eq!(
            fwd.process(p[0], &frame(H3, H1, 60), 4),
            Decision::Forward(p[1])
        );
    }

    /// The VXLAN peers of a network share a horizon: a frame from one peer floods to the
    /// local ports only, and unicast to a MAC behind another peer is dropped and counted.
    #[test]
    fn split_horizon_keeps_overlay_frames_out_of_the_overlay() {
        let mut fwd = Forwarder::new(FdbConfig::default());
        let tap = fwd.add_port("tap", "default", 1450).unwrap();
        let a = fwd.add_port_in_horizon("vx:a", "default", 1450, 1).unwrap();
        let b = fwd.add_port_in_horizon("vx:b", "default", 1450, 1).unwrap();
        let other = fwd.add_port_in_horizon("vx:c", "blue", 1450, 2).unwrap();
        let d = fwd.process(a, &frame(MacAddr::BROADCAST, H1, 60), 0);
        assert_eq!(targets(&fwd, d, a), vec![tap]);
        let d = fwd.process(tap, &frame(MacAddr::BROADCAST, H3, 60), 0);
        assert_eq!(targets(&fwd, d, tap), vec![a, b]);
        fwd.process(b, &frame(MacAddr::BROADCAST, H2, 60), 0);
        assert_eq!(
            fwd.process(a, &frame(H2, H1, 60), 1),
            Decision::Drop(DropReason::SplitHorizon)
        );
        assert_eq!(
            fwd.process(a, &frame(H3, H1, 60), 1),
            Decision::Forward(tap)
        );
        assert_eq!(
            fwd.process(tap, &frame(H2, H3, 60), 1),
            Decision::Forward(b)
        );
        let c = fwd.port(a).unwrap().counters();
        assert_eq!(c.drops(DropReason::SplitHorizon), 1);
        assert_eq!(fwd.port(other).unwrap().horizon(), 2);
    }

    #[test]
    fn never_sends_back_out_of_the_ingress_port() {
        let (fwd, p) = lab();
        fwd.process(p[0], &frame(H2, H1, 60), 0);
        fwd.process(p[0], &frame(H1, H2, 60), 0);
        // Both live behind p0: a frame between them is not sent anywhere.
        assert_eq!(
            fwd.process(p[0], &frame(H2, H1, 60), 1),
            Decision::Drop(DropReason::LocalDestination)
        );
        assert_eq!(
            fwd.port(p[0])
                .unwrap()
                .counters()
                .drops(DropReason::LocalDestination),
            2
        );
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let (fwd, p) = lab();
        let mut tagged_cut = frame(H2, H1, 16);
        tagged_cut[12..14].copy_from_slice(&[0x81, 0x00]);
        let cases = [
            (vec![0u8; 13], DropReason::Runt),
            (vec![], DropReason::Runt),
            (tagged_cut, DropReason::BadVlanTag),
            (frame(H2, H1, 1515), DropReason::Oversized),
            (
                frame(H2, MacAddr::BROADCAST, 60),
                DropReason::SourceMulticast,
            ),
            (
                frame(H2, MacAddr([0x01, 0, 0x5e, 0, 0, 9]), 60),
                DropReason::SourceMulticast,
            ),
            (frame(H2, MacAddr::ZERO, 60), DropReason::SourceZero),
            (
                frame(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]), H1, 60),
                DropReason::LinkLocal,
            ),
            (
                frame(MacAddr([0x01, 0x80, 0xc2, 0, 0, 1]), H1, 60),
                DropReason::LinkLocal,
            ),
        ];
        for (bytes, reason) in &cases {
            assert_eq!(
                fwd.process(p[0], bytes, 0),
                Decision::Drop(*reason),
                "{reason}"
            );
        }
        let c = fwd.port(p[0]).unwrap().counters();
        assert_eq!(c.rx_frames, cases.len() as u64);
        assert_eq!(c.total_drops(), cases.len() as u64);
        assert_eq!(c.drops(DropReason::Runt), 2);
        assert_eq!(c.drops(DropReason::SourceMulticast), 2);
        // A full-size frame and a full-size tagged frame pass.
        assert!(matches!(
            fwd.process(p[0], &frame(H2, H1, 1514), 0),
            Decision::Flood(_)
        ));
        let mut tagged = frame(H2, H1, 1518);
        tagged[12..14].copy_from_slice(&[0x81, 0x00]);
        assert!(matches!(fwd.process(p[0], &tagged, 0), Decision::Flood(_)));
        // Nothing invalid was learned.
        assert_eq!(fwd.network(NetworkId(0)).unwrap().fdb().len(), 1);
    }

    #[test]
    fn learned_entries_age_out_and_flood_again() {
        let (fwd, p) = lab();
        fwd.process(p[1], &frame(H1, H2, 60), 0);
        assert_eq!(
            fwd.process(p[0], &frame(H2, H1, 60), 1_000),
            Decision::Forward(p[1])
        );
        assert!(matches!(
            fwd.process(p[0], &frame(H2, H1, 60), 300_000),
            Decision::Flood(_)
        ));
        assert_eq!(fwd.expire(300_000), 1);
        assert_eq!(fwd.network(NetworkId(0)).unwrap().stats().expired, 1);
    }

    #[test]
    fn mac_moves_are_damped_and_counted() {
        let (fwd, p) = lab();
        fwd.process(p[0], &frame(MacAddr::BROADCAST, H1, 60), 0);
        // H1 shows up on p1 one second later: still forwarded, but not moved.
        assert!(matches!(
            fwd.process(p[1], &frame(MacAddr::BROADCAST, H1, 60), 1_000),
            Decision::Flood(_)
        ));
        assert_eq!(
            fwd.process(p[2], &frame(H1, H3, 60), 1_001),
            Decision::Forward(p[0])
        );
        // After the hold-down it moves.
        fwd.process(p[1], &frame(MacAddr::BROADCAST, H1, 60), 3_000);
        assert_eq!(
            fwd.process(p[2], &frame(H1, H3, 60), 3_001),
            Decision::Forward(p[1])
        );
        let c = fwd.port(p[1]).unwrap().counters();
        assert_eq!((c.mac_moves_held, c.mac_moves), (1, 1));
    }

    #[test]
    fn the_limit_applies_per_network_with_fair_eviction() {
        let mut fwd = Forwarder::new(FdbConfig {
            max_entries: 8,
            ..FdbConfig::default()
        });
        let a = fwd.add_port("a", "default", 1500).unwrap();
        let b = fwd.add_port("b", "default", 1500).unwrap();
        let c = fwd.add_port("c", "blue", 1500).unwrap();
        fwd.process(a, &frame(MacAddr::BROADCAST, H1, 60), 0);
        fwd.process(c, &frame(MacAddr::BROADCAST, H3, 60), 0);
        for i in 0..10_000u32 {
            let b4 = i.to_be_bytes();
            let src = MacAddr([0x02, 0x55, b4[0], b4[1], b4[2], b4[3]]);
            fwd.process(b, &frame(MacAddr::BROADCAST, src, 60), 1);
        }
        let net = fwd.network(NetworkId(0)).unwrap();
        assert_eq!(net.fdb().len(), 8);
        assert_eq!(net.fdb().lookup(H1, 2), Some(a));
        assert_eq!(net.stats().evictions, 10_000 - 7);
        // The other network was not touched.
        assert_eq!(fwd.network(NetworkId(1)).unwrap().fdb().len(), 1);
    }

    #[test]
    fn egress_mtu_and_tx_counters() {
        let mut fwd = Forwarder::new(FdbConfig::default());
        let big = fwd.add_port("big", "default", 9000).unwrap();
        let small = fwd.add_port("small", "default", 1500).unwrap();
        let jumbo = frame(MacAddr::BROADCAST, H1, 9014);
        assert!(matches!(fwd.process(big, &jumbo, 0), Decision::Flood(_)));
        assert!(!fwd.admit_egress(0, small, &jumbo, false));
        assert!(fwd.admit_egress(0, small, &frame(H2, H1, 1514), false));
        // A GSO frame stands for MTU-sized segments: it only has to fit 64 KiB.
        assert!(fwd.admit_egress(0, small, &jumbo, true));
        assert!(!fwd.admit_egress(0, small, &frame(H2, H1, 70_000), true));
        assert!(matches!(
            fwd.process_frame(&mut Lane::default(), small, &frame(H2, H1, 60_000), true, 0),
            Decision::Forward(_) | Decision::Flood(_)
        ));
        assert_eq!(
            fwd.process_frame(&mut Lane::default(), small, &frame(H2, H1, 70_000), true, 0),
            Decision::Drop(DropReason::Oversized)
        );
        fwd.record_tx(0, small, 1514);
        fwd.record_tx_drop(0, small, DropReason::EgressFull);
        let c = fwd.port(small).unwrap().counters();
        assert_eq!((c.tx_frames, c.tx_bytes), (1, 1514));
        // The jumbo frame, and the GSO frame over 64 KiB.
        assert_eq!(c.drops(DropReason::EgressTooBig), 2);
        assert_eq!(c.drops(DropReason::EgressFull), 1);
    }

    #[test]
    fn removed_ports_leave_their_network_and_table() {
        let (mut fwd, p) = lab();
        fwd.process(p[1], &frame(MacAddr::BROADCAST, H2, 60), 0);
        let gone = fwd.remove_port(p[1]).unwrap();
        assert_eq!(gone.counters().rx_frames, 1);
        assert!(fwd.remove_port(p[1]).is_none());
        // H2 is unknown again and p1 is no longer a flood target.
        let d = fwd.process(p[0], &frame(H2, H1, 60), 1);
        assert_eq!(targets(&fwd, d, p[0]), vec![p[2]]);
        assert_eq!(
            fwd.process(p[1], &frame(H2, H1, 60), 1),
            Decision::Drop(DropReason::EgressError)
        );
        assert_eq!(
            fwd.add_port("p0", "default", 1500),
            Err(ForwarderError::DuplicatePort("p0".into()))
        );
        // The name is free again once detached.
        assert!(fwd.add_port("p1", "default", 1500).is_ok());
    }

    #[test]
    fn storm_control_caps_floods_per_port() {
        let mut fwd = Forwarder::with_protection(
            FdbConfig::default(),
            Protection {
                bum_rate: 1000,
                loop_block_ms: None,
            },
        );
        let a = fwd.add_port("a", "default", 1500).unwrap();
        let b = fwd.add_port("b", "default", 1500).unwrap();
        let c = fwd.add_port("c", "default", 1500).unwrap();
        fwd.set_bum_rate(c, 0);
        let bcast = frame(MacAddr::BROADCAST, H1, 60);
        let mut flooded = 0;
        for ms in 0..1000 {
            for _ in 0..20 {
                if matches!(fwd.process(a, &bcast, ms), Decision::Flood(_)) {
                    flooded += 1;
                }
            }
        }
        // A tenth of a second's burst, then the rate.
        assert!((1000..=1100).contains(&flooded), "{flooded}");
        let ca = fwd.port(a).unwrap().counters();
        assert_eq!(ca.drops(DropReason::StormControl), 20_000 - flooded);
        // Known unicast is never limited, and other ports have their own bucket.
        fwd.process(b, &frame(H1, H2, 60), 1000);
        assert!((0..5000).all(|_| fwd.process(b, &frame(H1, H2, 60), 1000) == Decision::Forward(a)));
        assert!(matches!(
            fwd.process(b, &bcast_from(H2), 1000),
            Decision::Flood(_)
        ));
        // A port with rate 0 is not limited.
        assert!(
            (0..5000).all(|_| matches!(fwd.process(c, &bcast_from(H3), 1000), Decision::Flood(_)))
        );
    }

    fn bcast_from(src: MacAddr) -> Vec<u8> {
        frame(MacAddr::BROADCAST, src, 60)
    }

    #[test]
    fn a_flapping_mac_is_reported_and_with_protection_blocks_the_port() {
        let mut fwd = Forwarder::with_protection(
            FdbConfig::default(),
            Protection {
                bum_rate: 0,
                loop_block_ms: Some(5_000),
            },
        );
        let a = fwd.add_port("a", "default", 1500).unwrap();
        let b = fwd.add_port("b", "default", 1500).unwrap();
        let c = fwd.add_port("c", "default", 1500).unwrap();
        // H3 behind c; its broadcast comes back in on a and b, as through an outside loop.
        fwd.process(c, &bcast_from(H3), 0);
        fwd.process(a, &bcast_from(H3), 1);
        fwd.process(b, &bcast_from(H3), 2);
        let alerts = fwd.take_loop_alerts();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].port, a);
        assert_eq!(alerts[0].other, c);
        assert_eq!(alerts[0].mac, H3);
        assert_eq!(alerts[0].blocked_until, Some(5_001));
        assert!(fwd.take_loop_alerts().is_empty());
        // Blocked: everything from a and b is dropped for the back-off, c goes on.
        assert_eq!(
            fwd.process(a, &bcast_from(H1), 100),
            Decision::Drop(DropReason::LoopProtect)
        );
        assert!(fwd.port(b).unwrap().is_blocked(100));
        assert!(matches!(
            fwd.process(c, &bcast_from(H3), 100),
            Decision::Flood(_)
        ));
        // After the back-off, a forwards again.
        assert!(matches!(
            fwd.process(a, &bcast_from(H1), 5_001),
            Decision::Flood(_)
        ));
        assert_eq!(fwd.port(a).unwrap().counters().loop_suspicions, 1);
    }

    #[test]
    fn without_protection_loops_are_only_reported_once_per_interval() {
        let mut fwd = Forwarder::new(FdbConfig::default());
        let a = fwd.add_port("a", "default", 1500).unwrap();
        let c = fwd.add_port("c", "default", 1500).unwrap();
        fwd.process(c, &bcast_from(H3), 0);
        for ms in 1..2_000 {
            fwd.process(a, &bcast_from(H3), ms);
        }
        // Held moves all along, one report, nothing blocked.
        assert_eq!(fwd.take_loop_alerts().len(), 1);
        assert_eq!(fwd.port(a).unwrap().counters().loop_suspicions, 1999);
        assert!(!fwd.port(a).unwrap().is_blocked(100));
        // Ten seconds after the first report, the next one is due.
        fwd.process(c, &bcast_from(H3), 10_500);
        fwd.process(a, &bcast_from(H3), 11_000);
        assert_eq!(fwd.take_loop_alerts().len(), 1);
    }

    proptest::proptest! {
        // Invariants over arbitrary frame sequences: no frame crosses networks, none goes
        // back out of its ingress port, none goes from a VXLAN remote to another remote
        // (split horizon), and nothing panics.
        #[test]
        fn decisions_respect_networks_and_ingress(
            frames in proptest::collection::vec(
                (0usize..7, proptest::collection::vec(proptest::num::u8::ANY, 0..80), 0u8..4, 0u8..4),
                1..200,
            )
        ) {
            let (mut fwd, lab_ports) = lab();
            // Two VXLAN remotes of "default" in one split-horizon group: nothing from
            // one may go to the other.
            let mut p = lab_ports.to_vec();
            for name in ["vx:a", "vx:b"] {
                p.push(fwd.add_port_in_horizon(name, "default", 1500, 1).unwrap());
            }
            let macs = [H1, H2, H3, MacAddr::BROADCAST];
            let mut now = 0;
            for (port, mut bytes, d, s) in frames {
                // Mostly well-formed frames among a known set of MACs, so that learning
                // and forwarding are exercised, not only the parser.
                if bytes.len() >= 14 && d != 0 {
                    bytes[..6].copy_from_slice(&macs[d as usize].0);
                    bytes[6..12].copy_from_slice(&macs[s as usize].0);
                }
                now += 7;
                let ingress = p[port];
                let d = fwd.process(ingress, &bytes, now);
                let net = fwd.port(ingress).unwrap().network();
                let horizon = fwd.port(ingress).unwrap().horizon();
                for out in targets(&fwd, d, ingress) {
                    proptest::prop_assert_ne!(out, ingress);
                    proptest::prop_assert_eq!(fwd.port(out).unwrap().network(), net);
                    proptest::prop_assert!(horizon == 0 || fwd.port(out).unwrap().horizon() != horizon);
                }
            }
        }
    }
}

#[cfg(test)]
mod suppression_tests {
    use super::*;
    use crate::plan::{EgressCaps, PortKind};
    use packets::MacAddr;

    const ASKER: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const FAR: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const NEAR: MacAddr = MacAddr([2, 0, 0, 0, 0, 3]);
    const TAP: EgressCaps = EgressCaps {
        kind: PortKind::Tap,
        vnet_hdr: true,
        udp_gso: false,
    };
    const REMOTE: EgressCaps = EgressCaps {
        kind: PortKind::Remote,
        vnet_hdr: false,
        udp_gso: false,
    };

    /// A broadcast ARP request from ASKER (198.18.0.1) for `target`.
    fn who_has(target: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&ASKER.0);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&ASKER.0);
        f.extend_from_slice(&[198, 18, 0, 1, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&target);
        f
    }

    /// A TAP `a`, a local TAP `b` with NEAR (198.18.0.3) behind it, a VXLAN remote `r`
    /// with FAR (198.18.0.2) behind it as the cluster advertised.
    fn overlay() -> (Forwarder, PortId, PortId, PortId) {
        let mut fwd = Forwarder::new(FdbConfig::default());
        let a = fwd.attach("a", "blue", 1500, TAP, 0).unwrap();
        let b = fwd.attach("b", "blue", 1500, TAP, 0).unwrap();
        let r = fwd
            .attach("vx60:198.18.9.2", "blue", 1500, REMOTE, 1)
            .unwrap();
        fwd.add_static(FAR, r);
        let net = fwd.network_id("blue").unwrap();
        fwd.set_cluster_neighbors(net, &[(IpAddr::from([198, 18, 0, 2]), FAR)]);
        let mut claim = who_has([198, 18, 0, 1]);
        claim[6..12].copy_from_slice(&NEAR.0);
        claim[22..28].copy_from_slice(&NEAR.0);
        claim[28..32].copy_from_slice(&[198, 18, 0, 3]);
        let mut plan = Plan::default();
        fwd.plan(b, &claim, Offload::None, 0, &mut plan);
        (fwd, a, b, r)
    }

    #[test]
    fn a_question_for_a_remote_owner_is_answered_on_the_asking_port() {
        let (fwd, a, _, r) = overlay();
        let mut plan = Plan::default();
        fwd.plan(a, &who_has([198, 18, 0, 2]), Offload::None, 1, &mut plan);
        assert_eq!(
            plan.egresses,
            vec![(a, Delivery::Reply { with_header: true })]
        );
        let reply = plan.reply_bytes(false);
        assert_eq!(&reply[0..6], &ASKER.0);
        assert_eq!(&reply[6..12], &FAR.0);
        assert_eq!(&reply[20..22], &[0, 2]);
        assert_eq!(&reply[28..32], &[198, 18, 0, 2]);
        assert_eq!(
            plan.reply_bytes(true).len(),
            reply.len() + VIRTIO_NET_HDR_LEN
        );
        let c = fwd.port(a).unwrap().counters();
        assert_eq!((c.rx_frames, c.answered, c.floods), (1, 1, 0));
        assert_eq!(
            c.rx_frames,
            c.forwarded + c.floods + c.answered + c.rx_drops()
        );
        // Nothing went to the remote.
        assert_eq!(fwd.port(r).unwrap().counters().tx_frames, 0);
    }

    #[test]
    fn local_owners_unknown_targets_and_suppression_off_flood() {
        let (mut fwd, a, b, r) = overlay();
        let mut plan = Plan::default();
        // NEAR's claim was heard on b; its owner is local, so the question floods and
        // NEAR answers itself.
        let net = fwd.network_id("blue").unwrap();
        let known = fwd
            .network(net)
            .unwrap()
            .neighbors()
            .get(IpAddr::from([198, 18, 0, 3]));
        assert_eq!(known, Some(NEAR));
        fwd.plan(a, &who_has([198, 18, 0, 3]), Offload::None, 1, &mut plan);
        assert_eq!(plan.egresses.len(), 2);
        fwd.plan(a, &who_has([198, 18, 0, 99]), Offload::None, 1, &mut plan);
        assert_eq!(
            plan.egresses.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![b, r]
        );
        fwd.set_arp_suppress(false);
        fwd.plan(a, &who_has([198, 18, 0, 2]), Offload::None, 1, &mut plan);
        assert_eq!(plan.egresses.len(), 2);
        assert_eq!(fwd.port(a).unwrap().counters().answered, 0);
    }

    #[test]
    fn questions_from_the_overlay_are_not_answered_and_claims_age_with_their_mac() {
        let (fwd, _, b, r) = overlay();
        let mut plan = Plan::default();
        // From the remote: another host's question, already let through there.
        let mut q = who_has([198, 18, 0, 2]);
        q[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        q[22..28].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        fwd.plan(r, &q, Offload::None, 1, &mut plan);
        assert!(plan
            .egresses
            .iter()
            .all(|e| !matches!(e.1, Delivery::Reply { .. })));
        let net = fwd.network_id("blue").unwrap();
        // b's claim goes when b's MAC ages out of the FDB.
        fwd.expire(FdbConfig::default().aging_ms + 10);
        let n = fwd.network(net).unwrap().neighbors();
        assert_eq!(n.get(IpAddr::from([198, 18, 0, 3])), None);
        assert_eq!(n.get(IpAddr::from([198, 18, 0, 2])), Some(FAR));
        let _ = b;
    }
}
