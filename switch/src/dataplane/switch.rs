//! The switch: its workers, the shared state they forward with, and what the control
//! plane does to it. Worker 0 runs here, in the switch's own thread, sharing its poll with
//! the signals and whatever else is beside it (the control socket, as a [`Sidecar`]); the
//! other workers run on threads of their own (`worker`). Ports and endpoints are spread
//! over the workers as they come, each read by one; any worker writes to any port.

use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use forwarder::{
    EndpointId, FdbConfig, Forwarder, ForwarderError, Millis, PortId, PortKind, Protection,
};
use log::{debug, info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Registry};
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;

use super::capture::{Capture, DEFAULT_MAX_BYTES};
use super::device::Device;
use super::fabric::{Command, EndpointDev, Fabric, Shared};
use super::io::af_packet::PacketSocket;
use super::io::tap::{interface_mtu, Tap, TapError};
use super::io::udp_tunnel::Endpoint;
use super::port::PortDev;
use super::tokens::{self, Source};
use super::worker::{self, Detached, Worker, IDLE_WAKE_MS};
use crate::config::specs::{inner_mtu, VxlanSpec};

/// How often aged FDB entries are swept (lookups ignore expired entries in between) and
/// sidecars get their tick.
const SWEEP_EVERY_MS: Millis = IDLE_WAKE_MS;

/// Why the data plane refused to do something.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error(transparent)]
    Tap(TapError),
    #[error(transparent)]
    Forwarder(#[from] ForwarderError),
    /// The event loop could not be set up, or a device not registered with it.
    #[error("the event loop: {0}")]
    Poll(#[source] io::Error),
    /// A VXLAN overlay's spec is refused (the message says what and how to fix it).
    #[error("{0}")]
    Overlay(String),
    #[error(transparent)]
    Tunnel(#[from] super::io::udp_tunnel::TunnelError),
    #[error("no port named {0} (uswitch show ports lists them)")]
    NoSuchPort(String),
    #[error("port {0} is being captured already; stop that first with uswitch capture stop {0}")]
    CaptureBusy(String),
    #[error("port {0} is not being captured")]
    NoCapture(String),
    #[error("cannot write capture file {path}: {source}")]
    CaptureFile {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl From<TapError> for DataplaneError {
    /// Out of descriptors at any step of attaching a TAP is said as that.
    fn from(e: TapError) -> DataplaneError {
        DataplaneError::Tap(e.said_plainly())
    }
}

/// Something that shares the data plane's poll (the control socket) under tokens of its
/// own ([`tokens::sidecar`]), and is called back with the switch in hand.
pub trait Sidecar {
    /// One of the sidecar's sources (by its own number) is ready.
    fn ready(&mut self, switch: &mut Switch, n: usize);
    /// About once a second.
    fn tick(&mut self, switch: &mut Switch);
    /// SIGHUP: read the configuration again and apply what changed.
    fn reload(&mut self, _switch: &mut Switch) {}
}

/// What a batch of signals asks of the loop.
enum Signalled {
    Stop,
    Reload,
    Nothing,
}

/// A switch with nothing beside it.
pub struct Alone;

impl Sidecar for Alone {
    fn ready(&mut self, _: &mut Switch, _: usize) {}
    fn tick(&mut self, _: &mut Switch) {}
}

/// What `show ports` reads of a port's device.
#[derive(Debug, Clone)]
pub struct PortView {
    pub kind: PortKind,
    pub down: bool,
    pub rests: u64,
    pub offloads: Vec<&'static str>,
    pub created: bool,
    pub capture: Option<String>,
    /// The worker that reads the port (for a VXLAN remote, its endpoint's).
    pub worker: usize,
}

/// What `show vxlan` reads of an endpoint's sockets.
#[derive(Debug, Clone)]
pub struct EndpointView {
    pub id: EndpointId,
    pub local: IpAddr,
    pub port: u16,
    pub underlay: String,
    pub underlay_mtu: usize,
    pub source_ports: Vec<u16>,
    pub udp_gro: bool,
    /// The worker that reads the endpoint's socket.
    pub worker: usize,
}

/// How many workers forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// Exactly this many, from the start.
    Fixed(usize),
    /// One to start with, and another as ports come (one per two ports), up to this many.
    Auto(usize),
}

impl Workers {
    /// The default: one per CPU this process may run on (its affinity and cgroup quota
    /// counted), at most one per two ports.
    pub fn auto() -> Workers {
        Workers::Auto(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The most workers this allows.
    pub fn max(self) -> usize {
        match self {
            Workers::Fixed(n) | Workers::Auto(n) => n.max(1),
        }
    }
}

/// The forwarder, read-locked for the control plane between bursts.
pub type ForwarderRead<'a> = parking_lot::MappedRwLockReadGuard<'a, Forwarder>;
/// The forwarder, write-locked: every worker waits for the edit.
pub type ForwarderWrite<'a> = parking_lot::MappedRwLockWriteGuard<'a, Forwarder>;

/// A running switch: its workers, the state they share, worker 0's loop.
pub struct Switch {
    fabric: Arc<Fabric>,
    /// Worker 0, run by [`Switch::run`].
    me: Worker,
    signals: Signals,
    workers: Workers,
    threads: Vec<JoinHandle<()>>,
    /// Ports that have (or lately had) a capture, so the loop's capture work scans these
    /// and not every port.
    capturing: Vec<PortId>,
    /// Descriptors handed over by the switch this one took over, not yet claimed.
    pub(crate) inherited: super::inherited::Inherited,
}

impl Switch {
    /// A switch with no ports yet, and one worker (see [`Switch::set_workers`]).
    pub fn new(fdb: FdbConfig, protection: Protection) -> Result<Switch, DataplaneError> {
        let (me, link) = Worker::new(0).map_err(DataplaneError::Poll)?;
        let mut signals =
            Signals::new([SIGINT, SIGTERM, SIGUSR1, SIGHUP]).map_err(DataplaneError::Poll)?;
        me.poll
            .registry()
            .register(&mut signals, tokens::signals(), Interest::READABLE)
            .map_err(DataplaneError::Poll)?;
        let shared = Shared {
            fwd: Forwarder::with_protection(fdb, protection),
            ports: Vec::new(),
            endpoints: Vec::new(),
            links: vec![link],
            loads: vec![0],
        };
        Ok(Switch {
            fabric: Arc::new(Fabric {
                shared: RwLock::new(shared),
                start: Instant::now(),
                busy_poll_us: AtomicU64::new(0),
                handed_over: AtomicBool::new(false),
            }),
            me,
            signals,
            workers: Workers::Fixed(1),
            threads: Vec::new(),
            capturing: Vec::new(),
            inherited: Default::default(),
        })
    }

    /// How many workers forward; a fixed count starts them all now, an automatic one as
    /// ports come. Workers never stop before the switch does.
    pub fn set_workers(&mut self, workers: Workers) -> Result<(), DataplaneError> {
        self.workers = workers;
        if let Workers::Fixed(n) = workers {
            while self.running_workers() < n.max(1) {
                self.spawn_worker()?;
            }
        }
        Ok(())
    }

    /// The workers forwarding now.
    pub fn running_workers(&self) -> usize {
        self.shared().links.len()
    }

    fn spawn_worker(&mut self) -> Result<usize, DataplaneError> {
        let index = self.running_workers();
        let (worker, link) = Worker::new(index).map_err(DataplaneError::Poll)?;
        let fabric = Arc::clone(&self.fabric);
        let thread = std::thread::Builder::new()
            .name(format!("uswitch-w{index}"))
            .spawn(move || worker.run(fabric))
            .map_err(DataplaneError::Poll)?;
        let mut sh = self.fabric.shared.write();
        sh.links.push(link);
        sh.loads.push(0);
        let n = sh.links.len();
        sh.fwd.set_workers(n);
        drop(sh);
        self.threads.push(thread);
        Ok(index)
    }

    /// The worker to read a new device: a new one while every worker reads two or more
    /// (automatic count, below its cap), else the least loaded.
    fn pick_owner(&mut self) -> Result<usize, DataplaneError> {
        if let Workers::Auto(max) = self.workers {
            let (running, busy) = {
                let sh = self.shared();
                (sh.links.len(), sh.loads.iter().all(|&l| l >= 2))
            };
            if busy && running < max {
                match self.spawn_worker() {
                    Ok(index) => return Ok(index),
                    // A worker more is what the automatic count would like, not what the
                    // port needs: when the system will not give its descriptors or its
                    // thread (a tight `ulimit -n`), a running worker reads the port.
                    Err(e) => warn!(
                        "could not start worker {running} ({e}); a running worker reads the new port"
                    ),
                }
            }
        }
        Ok(self.shared().least_loaded())
    }

    fn shared(&self) -> RwLockReadGuard<'_, Shared> {
        // Recursive: a control request may read while a worker waits to write.
        self.fabric.shared.read_recursive()
    }

    fn shared_mut(&mut self) -> RwLockWriteGuard<'_, Shared> {
        self.fabric.shared.write()
    }

    /// Where sidecars register their sources (worker 0's poll).
    pub fn registry(&self) -> &Registry {
        self.me.poll.registry()
    }

    /// Whether back-to-back UDP datagrams of one flow are joined into UDP GSO frames.
    pub fn set_udp_join(&mut self, on: bool) {
        self.forwarder_mut().set_udp_join(on);
    }

    /// After the last frame, keep polling without sleeping for `window` before blocking
    /// again: a frame that arrives meanwhile is read without a wake-up. Costs a core per
    /// worker while traffic flows; zero (the default) never spins.
    pub fn set_busy_poll(&mut self, window: Duration) {
        let us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        self.fabric.busy_poll_us.store(us, Ordering::Relaxed);
    }

    /// The forwarder, read-locked (the workers keep forwarding). Drop it before calling
    /// anything that changes the switch.
    pub fn forwarder(&self) -> ForwarderRead<'_> {
        RwLockReadGuard::map(self.shared(), |s| &s.fwd)
    }

    /// The forwarder, for the control plane's table edits (static entries, flushes):
    /// write-locked, so the workers wait between bursts until it is dropped.
    pub fn forwarder_mut(&mut self) -> ForwarderWrite<'_> {
        RwLockWriteGuard::map(self.shared_mut(), |s| &mut s.fwd)
    }

    /// Milliseconds since the switch started: the forwarder's clock.
    pub fn now(&self) -> Millis {
        self.fabric.now()
    }

    /// Attaches (creating if needed) the TAP `name` to `network` and brings it up, with
    /// the network's MTU when it sets one.
    pub fn add_tap_port(
        &mut self,
        name: &str,
        network: &str,
        offload: bool,
    ) -> Result<PortId, DataplaneError> {
        if let Some((handed, fd)) = self.inherited.take_port(name, "tap") {
            // Handed over: as it was (it may live in a container already).
            let tap = Tap::adopt(fd, name, handed.persistent, handed.created)?;
            return self.attach(Device::Tap(tap), network, handed.mtu, 0);
        }
        let tap = Tap::open(name, offload)?;
        let net_mtu = {
            let fwd = self.forwarder();
            fwd.network_id(network)
                .and_then(|n| fwd.network(n))
                .and_then(|n| n.mtu())
        };
        if let Some(mtu) = net_mtu {
            tap.set_mtu(mtu as u32)?;
        }
        tap.bring_up()?;
        let mtu = tap.mtu()?;
        self.attach(Device::Tap(tap), network, mtu, 0)
    }

    /// Makes the TAP of port `id` outlive uswitch (a container's interface, kept across
    /// restarts), or not.
    pub fn persist_port(&mut self, id: PortId, on: bool) -> Result<(), DataplaneError> {
        let mut sh = self.shared_mut();
        if let Some(Some(PortDev {
            dev: Device::Tap(tap),
            ..
        })) = sh.ports.get_mut(id.0 as usize)
        {
            tap.set_persist(on)?;
        }
        Ok(())
    }

    /// Attaches again, as port `name` of `network`, the persistent TAP with MAC `mac`
    /// that lives in the network namespace `netns` now (a container's, after a restart of
    /// uswitch).
    pub fn reopen_tap_port(
        &mut self,
        name: &str,
        network: &str,
        netns: &Path,
        mac: &str,
    ) -> Result<PortId, DataplaneError> {
        if let Some((handed, fd)) = self.inherited.take_port(name, "tap") {
            let tap = Tap::adopt(fd, name, true, handed.created)?;
            return self.attach(Device::Tap(tap), network, handed.mtu, 0);
        }
        let (tap, mtu) = Tap::reopen_in(netns, mac, name, true)?;
        self.attach(Device::Tap(tap), network, mtu, 0)
    }

    /// Detaches a port for good: a TAP uswitch made persistent (a container's) stops being
    /// persistent, so its netdev goes with the fd. A TAP that was there before uswitch
    /// (`ip tuntap add`) is left as it was found, persistent still. (Shutting down keeps
    /// persistent TAPs: they are the containers'.) Returns the port and whether its TAP
    /// went.
    pub fn delete_port(&mut self, id: PortId) -> Option<(forwarder::Port, bool)> {
        let made_persistent = matches!(
            self.shared().port(id),
            Some(PortDev { dev: Device::Tap(t), .. }) if t.persistent()
        );
        let mut unpersisted = false;
        if made_persistent {
            match self.persist_port(id, false) {
                Ok(()) => unpersisted = true,
                Err(e) => warn!("{e}"),
            }
        }
        self.detach_saying(id, unpersisted)
    }

    /// Attaches the existing interface `name` to `network` as an uplink (AF_PACKET,
    /// promiscuous). The interface's own MTU and state are left alone.
    pub fn add_uplink_port(&mut self, name: &str, network: &str) -> Result<PortId, DataplaneError> {
        let sock = match self.inherited.take_port(name, "uplink") {
            Some((_, fd)) => PacketSocket::adopt(fd, name),
            None => PacketSocket::open(name)?,
        };
        let mtu = interface_mtu(name)?;
        self.attach(Device::Uplink(sock), network, mtu, 0)
    }

    /// Joins `spec.network` to a VXLAN overlay: opens (or shares) the endpoint for its
    /// local address and port, and attaches a remote port per remote. The network's TAPs
    /// attached from now on get the overlay's inner MTU unless the network has its own.
    /// All or nothing: a failure half-way undoes what this call did.
    pub fn add_vxlan(&mut self, spec: &VxlanSpec) -> Result<(), DataplaneError> {
        spec.validate().map_err(DataplaneError::Overlay)?;
        let (idx, opened) = self.endpoint_for(spec.local, spec.port)?;
        let result = self.join_overlay(idx, spec);
        if result.is_err() && opened {
            self.close_endpoint(idx);
        }
        result
    }

    fn join_overlay(&mut self, idx: usize, spec: &VxlanSpec) -> Result<(), DataplaneError> {
        let (id, underlay_mtu) = {
            let sh = self.shared();
            let ep = &sh.endpoints[idx].ep;
            (ep.id, ep.underlay_mtu)
        };
        let mtu = inner_mtu(spec, underlay_mtu).map_err(DataplaneError::Overlay)?;
        self.forwarder_mut()
            .bind_vni(id, spec.vni, &spec.network, mtu)?;
        for &remote in &spec.remotes {
            if let Err(e) = self.add_remote(idx, spec.vni, remote) {
                let ports = self.forwarder_mut().unbind_vni(id, spec.vni);
                for port in ports {
                    self.detach(port);
                }
                return Err(e);
            }
        }
        self.forwarder_mut().default_network_mtu(&spec.network, mtu);
        info!(
            "network {} joins VXLAN vni {} at {}:{} with {} remote(s), inner mtu {mtu}",
            spec.network,
            spec.vni,
            spec.local,
            spec.port,
            spec.remotes.len()
        );
        Ok(())
    }

    fn add_remote(&mut self, idx: usize, vni: u32, remote: IpAddr) -> Result<(), DataplaneError> {
        let mut sh = self.shared_mut();
        let (peer, ep_id, owner) = {
            let ep = &sh.endpoints[idx];
            (ep.ep.peer(vni, remote), ep.ep.id, ep.owner)
        };
        let id = sh.fwd.add_remote(ep_id, vni, remote)?;
        Self::install(&mut sh, id, Device::Vxlan(peer), owner)?;
        Ok(())
    }

    /// The endpoint and VNI that carry `network`'s overlay.
    fn overlay_of(&self, network: &str) -> Result<(usize, u32), DataplaneError> {
        let sh = self.shared();
        let net = sh.fwd.network_id(network);
        sh.endpoints
            .iter()
            .enumerate()
            .find_map(|(idx, ep)| {
                let b = sh
                    .fwd
                    .endpoint(ep.ep.id)?
                    .bindings()
                    .iter()
                    .find(|b| Some(b.network) == net)?;
                Some((idx, b.vni))
            })
            .ok_or_else(|| {
                DataplaneError::Overlay(format!("network {network} has no VXLAN overlay"))
            })
    }

    /// Adds `remote` to the flood list of `network`'s overlay (a cluster node that has
    /// a port on it).
    pub fn add_overlay_remote(
        &mut self,
        network: &str,
        remote: IpAddr,
    ) -> Result<(), DataplaneError> {
        let (idx, vni) = self.overlay_of(network)?;
        self.add_remote(idx, vni, remote)?;
        info!("network {network}: VXLAN remote {remote} added");
        Ok(())
    }

    /// Takes `remote` off `network`'s overlay, with the entries that pointed at it;
    /// whether it was there.
    pub fn remove_overlay_remote(
        &mut self,
        network: &str,
        remote: IpAddr,
    ) -> Result<bool, DataplaneError> {
        let (_, vni) = self.overlay_of(network)?;
        let name = forwarder::remote_port_name(vni, remote);
        let id = self.forwarder().port_named(&name);
        Ok(match id {
            Some(id) => self.remove_port(id).is_some(),
            None => false,
        })
    }

    /// The endpoint for `local`:`port`, opened if new (and whether it was).
    fn endpoint_for(&mut self, local: IpAddr, port: u16) -> Result<(usize, bool), DataplaneError> {
        if let Some(i) = self
            .shared()
            .endpoints
            .iter()
            .position(|e| e.ep.local == local && e.ep.port == port)
        {
            return Ok((i, false));
        }
        let owner = self.pick_owner()?;
        let mine = owner == self.me.index;
        let at = std::net::SocketAddr::new(local, port);
        let inherited = self.inherited.take_endpoint(at);
        let mut sh = self.shared_mut();
        let id = sh.fwd.add_endpoint(&at.to_string());
        let ep = match inherited {
            Some(fd) => Endpoint::with_socket(std::net::UdpSocket::from(fd), local, port, id)?,
            None => Endpoint::open(local, port, id)?,
        };
        let idx = sh.endpoints.len();
        let fd = ep.raw_fd();
        sh.links[owner]
            .registry
            .register(
                &mut SourceFd(&fd),
                tokens::endpoint(idx),
                Interest::READABLE,
            )
            .map_err(DataplaneError::Poll)?;
        info!(
            "VXLAN endpoint {}:{} on underlay {} (mtu {}), read by worker {owner}",
            ep.local, ep.port, ep.underlay, ep.underlay_mtu
        );
        sh.endpoints.push(EndpointDev { ep, owner });
        sh.loads[owner] += 1;
        if !mine {
            sh.links[owner].send(Command::LookEndpoint(idx));
        }
        drop(sh);
        if mine {
            self.me.adopt_endpoint(idx);
            self.me.on_event(Source::Endpoint(idx));
        }
        Ok((idx, true))
    }

    /// Closes the endpoint just opened at `idx` (the last one) when nothing came of it.
    fn close_endpoint(&mut self, idx: usize) {
        let mut sh = self.shared_mut();
        if idx + 1 != sh.endpoints.len() {
            return;
        }
        if let Some(e) = sh.endpoints.pop() {
            if let Some(link) = sh.links.get(e.owner) {
                let _ = link.registry.deregister(&mut SourceFd(&e.ep.raw_fd()));
                link.send(Command::ForgetEndpoint(idx));
            }
            if let Some(load) = sh.loads.get_mut(e.owner) {
                *load = load.saturating_sub(1);
            }
        }
    }

    /// The endpoints' sockets, for `show vxlan`.
    pub fn endpoint_views(&self) -> Vec<EndpointView> {
        self.shared()
            .endpoints
            .iter()
            .map(|e| EndpointView {
                id: e.ep.id,
                local: e.ep.local,
                port: e.ep.port,
                underlay: e.ep.underlay.clone(),
                underlay_mtu: e.ep.underlay_mtu,
                source_ports: e.ep.source_ports(),
                udp_gro: e.ep.gro,
                worker: e.owner,
            })
            .collect()
    }

    /// A port's device, for `show ports`.
    pub fn port_view(&self, id: PortId) -> Option<PortView> {
        let sh = self.shared();
        let io = sh.port(id)?;
        Some(PortView {
            kind: io.dev.kind(),
            down: io.is_down(),
            rests: io.rests.load(Ordering::Relaxed),
            offloads: io.dev.offloads(),
            created: io.dev.created(),
            capture: io.with_capture(|c| c.as_ref().map(|c| c.path().display().to_string())),
            worker: io.owner,
        })
    }

    fn attach(
        &mut self,
        dev: Device,
        network: &str,
        mtu: usize,
        horizon: u32,
    ) -> Result<PortId, DataplaneError> {
        let owner = self.pick_owner()?;
        let (kind, created) = (dev.kind(), dev.created());
        let mut sh = self.shared_mut();
        let id = sh
            .fwd
            .attach(dev.name(), network, mtu, dev.caps(), horizon)?;
        if let Err(e) = Self::install(&mut sh, id, dev, owner) {
            sh.fwd.remove_port(id);
            return Err(e);
        }
        let name = sh.fwd.port(id).map_or("?", |p| p.name()).to_string();
        drop(sh);
        info!(
            "attached port {name} to network {network} ({}{}, mtu {mtu}, worker {owner})",
            match (kind, created) {
                (PortKind::Tap, true) => "created ",
                (PortKind::Tap, false) => "existing ",
                _ => "",
            },
            match kind {
                PortKind::Tap => "TAP",
                PortKind::Remote => "VXLAN remote",
                PortKind::Uplink => "uplink",
            }
        );
        if owner == self.me.index {
            self.me.on_event(Source::Port(id));
        }
        Ok(id)
    }

    /// Puts the device of port `id` in its owner's poll and in the shared table, and has
    /// the owner look at it at once (a frame may have arrived before it was polled). A
    /// VXLAN remote is read through its endpoint: `owner` is the endpoint's.
    fn install(
        sh: &mut Shared,
        id: PortId,
        dev: Device,
        owner: usize,
    ) -> Result<(), DataplaneError> {
        let fd = dev.raw_fd();
        if let Some(fd) = fd {
            sh.links[owner]
                .registry
                .register(&mut SourceFd(&fd), tokens::port(id), Interest::READABLE)
                .map_err(DataplaneError::Poll)?;
            sh.loads[owner] += 1;
        }
        let slot = id.0 as usize;
        if sh.ports.len() <= slot {
            sh.ports.resize_with(slot + 1, || None);
        }
        sh.ports[slot] = Some(PortDev::new(dev, owner));
        if fd.is_some() && owner != 0 {
            sh.links[owner].send(Command::Look(id));
        }
        Ok(())
    }

    /// The port called `name`.
    fn port_named(&self, name: &str) -> Result<PortId, DataplaneError> {
        let gone = || DataplaneError::NoSuchPort(name.to_string());
        let sh = self.shared();
        let id = sh.fwd.port_named(name).ok_or_else(gone)?;
        sh.port(id).ok_or_else(gone)?;
        Ok(id)
    }

    /// Starts recording what `port` receives and sends into `file` (a FIFO streams).
    pub fn start_capture(
        &mut self,
        port: &str,
        file: &Path,
        count: Option<u64>,
    ) -> Result<(), DataplaneError> {
        let id = self.port_named(port)?;
        let sh = self.shared();
        let io = sh
            .port(id)
            .ok_or_else(|| DataplaneError::NoSuchPort(port.to_string()))?;
        if io.is_captured() {
            return Err(DataplaneError::CaptureBusy(port.to_string()));
        }
        let cap = Capture::create(file, count, DEFAULT_MAX_BYTES).map_err(|source| {
            DataplaneError::CaptureFile {
                path: file.display().to_string(),
                source,
            }
        })?;
        if !io.start_capture(cap) {
            return Err(DataplaneError::CaptureBusy(port.to_string()));
        }
        sh.fwd.set_captured(id, true);
        drop(sh);
        self.capturing.push(id);
        info!("capturing port {port} into {}", file.display());
        Ok(())
    }

    /// Ends the capture on `port`; returns its file and the frames it recorded.
    pub fn stop_capture(&mut self, port: &str) -> Result<(String, u64), DataplaneError> {
        let id = self.port_named(port)?;
        let sh = self.shared();
        let cap = sh
            .port(id)
            .and_then(PortDev::take_capture)
            .ok_or_else(|| DataplaneError::NoCapture(port.to_string()))?;
        sh.fwd.set_captured(id, false);
        drop(sh);
        let (path, frames) = (cap.path().display().to_string(), cap.frames());
        if let Err(e) = cap.finish() {
            warn!("capture into {path}: {e}");
        }
        info!("capture on {port} into {path} stopped after {frames} frames");
        Ok((path, frames))
    }

    /// When worker 0 must next wake whatever arrives: a capture's buffered records due
    /// out.
    fn next_capture_flush(&self) -> Option<Instant> {
        if self.capturing.is_empty() {
            return None;
        }
        let sh = self.shared();
        self.capturing
            .iter()
            .filter_map(|&id| sh.port(id)?.with_capture(|c| c.as_ref()?.flush_due()))
            .min()
    }

    /// Writes out captures whose records have waited long enough (all, with `all`).
    fn flush_captures(&mut self, all: bool) {
        if self.capturing.is_empty() {
            return;
        }
        let now = Instant::now();
        let sh = self.fabric.shared.read_recursive();
        // A capture that ended (its count, its cap, a stop, its port gone) leaves the list.
        self.capturing.retain(|&id| {
            let Some(io) = sh.port(id) else {
                return false;
            };
            io.with_capture(|slot| {
                let Some(cap) = slot.as_mut() else {
                    return false;
                };
                if !all && cap.flush_due().is_none_or(|t| t > now) {
                    return true;
                }
                if let Err(e) = cap.flush() {
                    warn!("capture into {}: {e}; stopping it", cap.path().display());
                    *slot = None;
                    sh.fwd.set_captured(id, false);
                    return false;
                }
                true
            })
        });
    }

    /// Runs worker 0 until SIGINT or SIGTERM, with `sidecar` sharing its poll.
    pub fn run(&mut self, sidecar: &mut dyn Sidecar) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut last_sweep = self.now();
        let mut last_frame = Instant::now();
        let mut seen = self.me.frames_in;
        loop {
            if self.me.frames_in != seen {
                seen = self.me.frames_in;
                last_frame = Instant::now();
            }
            let mut timeout = self.me.timeout(&self.fabric, last_frame);
            if let Some(wake) = self.next_capture_flush() {
                timeout = timeout.min(wake.saturating_duration_since(Instant::now()));
            }
            match self.me.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match tokens::decode(event.token()) {
                    Source::Signals => match self.handle_signals() {
                        Signalled::Stop => return Ok(()),
                        Signalled::Reload => sidecar.reload(self),
                        Signalled::Nothing => {}
                    },
                    Source::Sidecar(n) => sidecar.ready(self, n),
                    source => self.me.on_event(source),
                }
            }
            self.me.take_commands();
            self.me.turn(&self.fabric);
            self.flush_captures(false);
            let now = self.now();
            if now.saturating_sub(last_sweep) >= SWEEP_EVERY_MS {
                let n = self.forwarder().expire(now);
                if n > 0 {
                    debug!("aged out {n} FDB entries");
                }
                sidecar.tick(self);
                last_sweep = now;
            }
        }
    }

    /// What the pending signals ask.
    fn handle_signals(&mut self) -> Signalled {
        let mut stop = false;
        let mut reload = false;
        let pending: Vec<i32> = self.signals.pending().collect();
        for sig in pending {
            match sig {
                SIGUSR1 => self.log_stats(),
                SIGHUP => {
                    info!("received SIGHUP, reading the configuration again");
                    reload = true;
                }
                SIGINT | SIGTERM => {
                    info!(
                        "received {}, shutting down",
                        if sig == SIGINT { "SIGINT" } else { "SIGTERM" }
                    );
                    stop = true;
                }
                _ => {}
            }
        }
        match (stop, reload) {
            (true, _) => Signalled::Stop,
            (false, true) => Signalled::Reload,
            (false, false) => Signalled::Nothing,
        }
    }

    /// Takes port `id` out of the poll, the lists and the forwarder. Its id may be given
    /// to the next port attached, so nothing here may keep it.
    pub(crate) fn detach(&mut self, id: PortId) -> Option<(forwarder::Port, Detached)> {
        worker::detach(&self.fabric, &mut self.me, id)
    }

    /// Logs every port's, network's and endpoint's counters, one line each.
    pub fn log_stats(&self) {
        let fwd = self.forwarder();
        for (_, port) in fwd.ports() {
            let net = fwd.network(port.network()).map_or("?", |n| n.name());
            info!(
                "stats port={} network={net} {}",
                port.name(),
                port.counters()
            );
        }
        for (_, net) in fwd.networks() {
            info!(
                "stats network={} ports={} fdb_entries={} fdb_evictions={} fdb_expired={}",
                net.name(),
                net.ports().len(),
                net.fdb().len(),
                net.stats().evictions,
                net.stats().expired
            );
        }
        for (_, ep) in fwd.endpoints() {
            info!("stats endpoint={} {}", ep.name(), ep.counters());
        }
        if fwd.unattached_drops() > 0 {
            info!(
                "stats frames_from_detached_ports={}",
                fwd.unattached_drops()
            );
        }
    }

    /// Detaches a port at the operator's wish, saying what became of its device; returns
    /// the port and whether its TAP went with it.
    pub fn remove_port(&mut self, id: PortId) -> Option<(forwarder::Port, bool)> {
        self.detach_saying(id, false)
    }

    /// Detaches port `id` and logs what became of its device: a TAP goes with the fd when
    /// uswitch created it and it is not persistent, or when `unpersisted` (uswitch just
    /// cleared the persistence it had set). Returns the port and whether the TAP went.
    fn detach_saying(&mut self, id: PortId, unpersisted: bool) -> Option<(forwarder::Port, bool)> {
        let (port, dev) = self.detach(id)?;
        let goes = unpersisted || (dev.created && !dev.persistent);
        match (dev.kind, goes) {
            (PortKind::Tap, true) => info!("removed TAP {}", port.name()),
            (PortKind::Tap, false) => info!("left TAP {} in place", port.name()),
            (PortKind::Remote, _) => info!("removed VXLAN remote {}", port.name()),
            (PortKind::Uplink, _) => info!("released uplink {}", port.name()),
        }
        Some((port, goes))
    }

    /// Stops the other workers and waits for them: they hold nothing back (a worker
    /// writes out what it held at the end of every burst).
    fn stop_workers(&mut self) {
        {
            let sh = self.shared();
            for link in sh.links.iter().skip(1) {
                link.send(Command::Stop);
            }
        }
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                warn!("a worker panicked while stopping");
            }
        }
    }

    /// What is buffered written out (held UDP runs, captures) and the counters logged,
    /// before the process exits leaving its devices to a take-over; no worker reads
    /// them any more.
    pub fn flush_for_exit(&mut self) {
        self.stop_workers();
        self.flush_captures(true);
        self.log_stats();
    }

    /// Detaches every port (TAPs uswitch created vanish with their fd; existing ones
    /// stay), after logging the counters.
    pub fn shutdown(&mut self) {
        self.stop_workers();
        self.flush_captures(true);
        self.log_stats();
        let ids: Vec<PortId> = self.forwarder().ports().map(|(id, _)| id).collect();
        for id in ids {
            self.remove_port(id);
        }
    }
}

impl Drop for Switch {
    /// The workers stop with the switch, however it goes.
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// The take-over's two halves (see `inherited`).
impl Switch {
    /// The descriptors a take-over receives, with the shared state write-locked while
    /// they are sent: no worker reads a device meanwhile. [`Handing::handed`] says they
    /// are the new switch's; dropping the `Handing` otherwise lets the workers go on.
    pub fn handing(&self) -> Handing<'_> {
        Handing {
            shared: self.fabric.shared.write(),
            handed_over: &self.fabric.handed_over,
        }
    }

    /// Gives the switch the descriptors a take-over received, to use before opening
    /// anything of the same name.
    pub fn inherit(&mut self, bank: super::inherited::Inherited) {
        self.inherited = bank;
    }

    /// Whether descriptors handed over are still unclaimed.
    pub fn inherits(&self) -> bool {
        !self.inherited.is_empty()
    }

    /// Closes the handed-over descriptors nothing claimed.
    pub fn release_inherited(&mut self) {
        self.inherited.release();
    }
}

/// The shared state, held while its descriptors are handed over.
pub struct Handing<'a> {
    shared: RwLockWriteGuard<'a, Shared>,
    handed_over: &'a AtomicBool,
}

impl Handing<'_> {
    /// The new switch has the devices: no worker of this one reads them again (they stop
    /// with [`Switch::flush_for_exit`]).
    pub fn handed(self) {
        self.handed_over.store(true, Ordering::Relaxed);
    }

    /// The descriptors a take-over receives.
    pub fn descriptors(&self) -> super::inherited::Handing<'_> {
        let sh = &self.shared;
        let mut ports = Vec::new();
        for (id, port) in sh.fwd.ports() {
            let Some(io) = sh.port(id) else {
                continue;
            };
            let (kind, fd, persistent) = match &io.dev {
                Device::Tap(t) => ("tap", t.as_fd(), t.persistent()),
                Device::Uplink(u) => ("uplink", u.as_fd(), false),
                Device::Vxlan(_) => continue,
            };
            ports.push((
                super::inherited::HandedPort {
                    name: port.name().to_string(),
                    kind: kind.to_string(),
                    mtu: port.mtu(),
                    persistent,
                    created: io.dev.created(),
                },
                fd,
            ));
        }
        let endpoints = sh
            .endpoints
            .iter()
            .map(|e| {
                (
                    std::net::SocketAddr::new(e.ep.local, e.ep.port),
                    e.ep.as_fd(),
                )
            })
            .collect();
        super::inherited::Handing { ports, endpoints }
    }
}
