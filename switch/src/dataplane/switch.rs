//! The data plane's loop: ports (TAPs, uplinks, VXLAN remotes) and endpoints in one mio
//! poll, frames read in bursts and handed to the forwarder, its plans carried out
//! (`forward`), signals, storm rests, vanished ports, and whatever shares the poll (the
//! control socket, as a [`Sidecar`]).
//!
//! Readiness is edge-triggered, so a readable port is drained until `WouldBlock`. To keep
//! one busy port from starving the others, each port reads at most [`BURST`] frames per
//! turn and stays on a ready list until it runs dry; the loop polls without sleeping while
//! that list is not empty. Writes never wait: a full egress drops the frame and counts it.

use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use forwarder::{
    DropReason, EndpointId, FdbConfig, Forwarder, ForwarderError, Millis, PortId, PortKind,
    Protection,
};
use log::{debug, info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry};
use packets::offload::VIRTIO_NET_HDR_LEN;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;

use super::capture::{Capture, DEFAULT_MAX_BYTES};
use super::device::Device;
use super::forward::{plane, Tx};
use super::io::af_packet::PacketSocket;
use super::io::tap::{interface_mtu, is_vanished, Tap, TapError};
use super::io::udp_tunnel::Endpoint;
use super::port::PortIo;
use super::rx::Rx;
use super::tokens::{self, Source};
use crate::config::specs::{inner_mtu, VxlanSpec};

/// Frames read from one port before the loop turns to the next.
pub const BURST: usize = 64;
/// Large enough for any frame a TAP can hand us (64 KiB GSO frames included), so an
/// oversized frame is seen whole and counted rather than silently cut.
const FRAME_BUF: usize = 65_536 + 256;
/// How often aged FDB entries are swept (lookups ignore expired entries in between) and
/// sidecars get their tick.
const SWEEP_EVERY_MS: Millis = 1_000;

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
}

/// A running switch: its ports, its forwarder and its event loop.
pub struct Switch {
    poll: Poll,
    signals: Signals,
    pub(crate) fwd: Forwarder,
    pub(crate) ports: Vec<Option<PortIo>>,
    /// VXLAN endpoints, one per local address and UDP port.
    pub(crate) vxlan: Vec<Endpoint>,
    ready: Vec<PortId>,
    /// VXLAN endpoints readable and not yet drained.
    vxlan_ready: Vec<usize>,
    /// Ports resting from a storm (see [`Switch::rest_if_storming`]).
    resting: Vec<PortId>,
    /// Ports that have (or lately had) a capture, so the loop's capture work scans these
    /// and not every port.
    capturing: Vec<PortId>,
    pub(crate) vanished: Vec<(PortId, String)>,
    pub(crate) tx: Tx,
    pub(crate) rx: Rx,
    pub(crate) buf: Vec<u8>,
    start: Instant,
    /// Frames read so far (the busy-poll window restarts whenever it grows).
    pub(crate) frames_in: u64,
    busy_poll: Duration,
    /// Descriptors handed over by the switch this one took over, not yet claimed.
    pub(crate) inherited: super::inherited::Inherited,
}

impl Switch {
    /// A switch with no ports yet.
    pub fn new(fdb: FdbConfig, protection: Protection) -> Result<Switch, DataplaneError> {
        let poll = Poll::new().map_err(DataplaneError::Poll)?;
        let mut signals =
            Signals::new([SIGINT, SIGTERM, SIGUSR1, SIGHUP]).map_err(DataplaneError::Poll)?;
        poll.registry()
            .register(&mut signals, tokens::signals(), Interest::READABLE)
            .map_err(DataplaneError::Poll)?;
        Ok(Switch {
            poll,
            signals,
            fwd: Forwarder::with_protection(fdb, protection),
            ports: Vec::new(),
            vxlan: Vec::new(),
            ready: Vec::new(),
            vxlan_ready: Vec::new(),
            resting: Vec::new(),
            capturing: Vec::new(),
            vanished: Vec::new(),
            tx: Tx::new(FRAME_BUF),
            rx: Rx::new(FRAME_BUF),
            buf: vec![0; FRAME_BUF],
            start: Instant::now(),
            frames_in: 0,
            busy_poll: Duration::ZERO,
            inherited: Default::default(),
        })
    }

    /// Where sidecars register their sources.
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Whether back-to-back UDP datagrams of one flow are joined into UDP GSO frames.
    pub fn set_udp_join(&mut self, on: bool) {
        self.fwd.set_udp_join(on);
    }

    /// After the last frame, keep polling without sleeping for `window` before blocking
    /// again: a frame that arrives meanwhile is read without a wake-up. Costs a core
    /// while traffic flows; zero (the default) never spins.
    pub fn set_busy_poll(&mut self, window: Duration) {
        self.busy_poll = window;
    }

    pub fn forwarder(&self) -> &Forwarder {
        &self.fwd
    }

    /// The forwarder, for the control plane's table edits (static entries, flushes).
    pub fn forwarder_mut(&mut self) -> &mut Forwarder {
        &mut self.fwd
    }

    /// Milliseconds since the switch started: the forwarder's clock.
    pub fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
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
        let net_mtu = self
            .fwd
            .network_id(network)
            .and_then(|n| self.fwd.network(n))
            .and_then(|n| n.mtu());
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
        if let Some(Some(PortIo {
            dev: Device::Tap(tap),
            ..
        })) = self.ports.get_mut(id.0 as usize)
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
            self.ports.get(id.0 as usize),
            Some(Some(PortIo { dev: Device::Tap(t), .. })) if t.persistent()
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
        let (id, underlay_mtu) = (self.vxlan[idx].id, self.vxlan[idx].underlay_mtu);
        let mtu = inner_mtu(spec, underlay_mtu).map_err(DataplaneError::Overlay)?;
        self.fwd.bind_vni(id, spec.vni, &spec.network, mtu)?;
        for &remote in &spec.remotes {
            if let Err(e) = self.add_remote(idx, spec.vni, remote) {
                for port in self.fwd.unbind_vni(id, spec.vni) {
                    self.detach(port);
                }
                return Err(e);
            }
        }
        self.fwd.default_network_mtu(&spec.network, mtu);
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
        let ep = &self.vxlan[idx];
        let peer = ep.peer(vni, remote);
        let id = self.fwd.add_remote(ep.id, vni, remote)?;
        self.install(id, Device::Vxlan(peer))
    }

    /// The endpoint and VNI that carry `network`'s overlay.
    fn overlay_of(&self, network: &str) -> Result<(usize, u32), DataplaneError> {
        let net = self.fwd.network_id(network);
        self.vxlan
            .iter()
            .enumerate()
            .find_map(|(idx, ep)| {
                let b = self
                    .fwd
                    .endpoint(ep.id)?
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
        Ok(match self.fwd.port_named(&name) {
            Some(id) => self.remove_port(id).is_some(),
            None => false,
        })
    }

    /// The endpoint for `local`:`port`, opened if new (and whether it was).
    fn endpoint_for(&mut self, local: IpAddr, port: u16) -> Result<(usize, bool), DataplaneError> {
        if let Some(i) = self
            .vxlan
            .iter()
            .position(|ep| ep.local == local && ep.port == port)
        {
            return Ok((i, false));
        }
        let id = self
            .fwd
            .add_endpoint(&std::net::SocketAddr::new(local, port).to_string());
        let at = std::net::SocketAddr::new(local, port);
        let ep = match self.inherited.take_endpoint(at) {
            Some(fd) => Endpoint::with_socket(std::net::UdpSocket::from(fd), local, port, id)?,
            None => Endpoint::open(local, port, id)?,
        };
        let idx = self.vxlan.len();
        let fd = ep.raw_fd();
        self.poll
            .registry()
            .register(
                &mut SourceFd(&fd),
                tokens::endpoint(idx),
                Interest::READABLE,
            )
            .map_err(DataplaneError::Poll)?;
        info!(
            "VXLAN endpoint {}:{} on underlay {} (mtu {})",
            ep.local, ep.port, ep.underlay, ep.underlay_mtu
        );
        self.vxlan.push(ep);
        self.vxlan_ready.push(idx);
        Ok((idx, true))
    }

    /// Closes the endpoint just opened at `idx` (the last one) when nothing came of it.
    fn close_endpoint(&mut self, idx: usize) {
        if idx + 1 != self.vxlan.len() {
            return;
        }
        if let Some(ep) = self.vxlan.pop() {
            let _ = self.poll.registry().deregister(&mut SourceFd(&ep.raw_fd()));
            self.vxlan_ready.retain(|&i| i != idx);
        }
    }

    /// The endpoints' sockets, for `show vxlan`.
    pub fn endpoint_views(&self) -> Vec<EndpointView> {
        self.vxlan
            .iter()
            .map(|ep| EndpointView {
                id: ep.id,
                local: ep.local,
                port: ep.port,
                underlay: ep.underlay.clone(),
                underlay_mtu: ep.underlay_mtu,
                source_ports: ep.source_ports(),
                udp_gro: ep.gro,
            })
            .collect()
    }

    /// A port's device, for `show ports`.
    pub fn port_view(&self, id: PortId) -> Option<PortView> {
        let io = self.ports.get(id.0 as usize)?.as_ref()?;
        Some(PortView {
            kind: io.dev.kind(),
            down: io.down,
            rests: io.rests,
            offloads: io.dev.offloads(),
            created: io.dev.created(),
            capture: io.capture.as_ref().map(|c| c.path().display().to_string()),
        })
    }

    fn attach(
        &mut self,
        dev: Device,
        network: &str,
        mtu: usize,
        horizon: u32,
    ) -> Result<PortId, DataplaneError> {
        let id = self
            .fwd
            .attach(dev.name(), network, mtu, dev.caps(), horizon)?;
        if let Err(e) = self.install(id, dev) {
            self.fwd.remove_port(id);
            return Err(e);
        }
        info!(
            "attached port {} to network {network} ({}{}, mtu {mtu})",
            self.fwd.port(id).map_or("?", |p| p.name()),
            match self.port_view(id) {
                Some(v) if v.kind == PortKind::Tap && v.created => "created ",
                Some(v) if v.kind == PortKind::Tap => "existing ",
                _ => "",
            },
            match self.port_view(id).map(|v| v.kind) {
                Some(PortKind::Tap) => "TAP",
                Some(PortKind::Remote) => "VXLAN remote",
                _ => "uplink",
            }
        );
        Ok(id)
    }

    /// Puts the device of port `id` in the poll and on the ready list.
    fn install(&mut self, id: PortId, dev: Device) -> Result<(), DataplaneError> {
        if let Some(fd) = dev.raw_fd() {
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), tokens::port(id), Interest::READABLE)
                .map_err(DataplaneError::Poll)?;
        }
        let io = PortIo::new(dev);
        let pollable = io.queued;
        let slot = id.0 as usize;
        if self.ports.len() <= slot {
            self.ports.resize_with(slot + 1, || None);
        }
        self.ports[slot] = Some(io);
        if pollable {
            // A frame may have arrived between attaching and registering: look once.
            self.ready.push(id);
        }
        Ok(())
    }

    /// The port called `name` and its device.
    fn port_io_named(&mut self, name: &str) -> Result<(PortId, &mut PortIo), DataplaneError> {
        let gone = || DataplaneError::NoSuchPort(name.to_string());
        let id = self.fwd.port_named(name).ok_or_else(gone)?;
        let io = self
            .ports
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or_else(gone)?;
        Ok((id, io))
    }

    /// Starts recording what `port` receives and sends into `file` (a FIFO streams).
    pub fn start_capture(
        &mut self,
        port: &str,
        file: &Path,
        count: Option<u64>,
    ) -> Result<(), DataplaneError> {
        let (id, io) = self.port_io_named(port)?;
        if io.capture.is_some() {
            return Err(DataplaneError::CaptureBusy(port.to_string()));
        }
        let cap = Capture::create(file, count, DEFAULT_MAX_BYTES).map_err(|source| {
            DataplaneError::CaptureFile {
                path: file.display().to_string(),
                source,
            }
        })?;
        io.capture = Some(cap);
        self.fwd.set_captured(id, true);
        self.capturing.push(id);
        info!("capturing port {port} into {}", file.display());
        Ok(())
    }

    /// Ends the capture on `port`; returns its file and the frames it recorded.
    pub fn stop_capture(&mut self, port: &str) -> Result<(String, u64), DataplaneError> {
        let (id, io) = self.port_io_named(port)?;
        let cap = io
            .capture
            .take()
            .ok_or_else(|| DataplaneError::NoCapture(port.to_string()))?;
        self.fwd.set_captured(id, false);
        let (path, frames) = (cap.path().display().to_string(), cap.frames());
        if let Err(e) = cap.finish() {
            warn!("capture into {path}: {e}");
        }
        info!("capture on {port} into {path} stopped after {frames} frames");
        Ok((path, frames))
    }

    /// Runs until SIGINT or SIGTERM, with `sidecar` sharing the poll.
    pub fn run(&mut self, sidecar: &mut dyn Sidecar) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut last_sweep = self.now();
        let mut last_frame = Instant::now();
        let mut seen = self.frames_in;
        loop {
            if self.frames_in != seen {
                seen = self.frames_in;
                last_frame = Instant::now();
            }
            let spinning = !self.busy_poll.is_zero() && last_frame.elapsed() < self.busy_poll;
            let mut timeout = if self.ready.is_empty() && self.vxlan_ready.is_empty() && !spinning {
                Duration::from_millis(SWEEP_EVERY_MS)
            } else {
                Duration::ZERO
            };
            if let Some(wake) = self.next_wake() {
                timeout = timeout.min(wake.saturating_duration_since(Instant::now()));
            }
            match self.poll.poll(&mut events, Some(timeout)) {
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
                    Source::Endpoint(idx) => {
                        if let Some(ep) = self.vxlan.get_mut(idx) {
                            if !ep.queued {
                                ep.queued = true;
                                self.vxlan_ready.push(idx);
                            }
                        }
                    }
                    Source::Port(id) => {
                        if let Some(Some(port)) = self.ports.get_mut(id.0 as usize) {
                            if !port.queued {
                                port.queued = true;
                                self.ready.push(id);
                            }
                        }
                    }
                }
            }
            self.wake_rested();
            self.service_ready();
            self.detach_vanished();
            if self.fwd.has_loop_alerts() {
                self.log_loop_alerts();
            }
            self.flush_captures(false);
            let now = self.now();
            if now.saturating_sub(last_sweep) >= SWEEP_EVERY_MS {
                let n = self.fwd.expire(now);
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

    /// Gives every ready port one burst; ports that ran dry leave the list.
    fn service_ready(&mut self) {
        let now = self.now();
        let mut i = 0;
        while i < self.ready.len() {
            let id = self.ready[i];
            let more = self.service_port(id, now);
            self.flush_held();
            if more {
                i += 1;
            } else {
                if let Some(Some(port)) = self.ports.get_mut(id.0 as usize) {
                    port.queued = false;
                }
                self.ready.swap_remove(i);
            }
        }
        let mut i = 0;
        while i < self.vxlan_ready.len() {
            let idx = self.vxlan_ready[i];
            let more = self.service_vxlan(idx, now);
            self.flush_held();
            if more {
                i += 1;
            } else {
                if let Some(ep) = self.vxlan.get_mut(idx) {
                    ep.queued = false;
                }
                self.vxlan_ready.swap_remove(i);
            }
        }
    }

    /// Reads up to a burst from `id`; true if the port may still have frames.
    ///
    /// Every frame sits in the buffer behind a virtio-net header: the one the device
    /// gave (TAPs with offloads, uplinks) or an all-zero one written here (plain TAPs), so
    /// the rest of the path handles one layout.
    fn service_port(&mut self, id: PortId, now: Millis) -> bool {
        let storm_drops = |fwd: &Forwarder| {
            fwd.port(id)
                .map_or(0, |p| p.counters().drops(DropReason::StormControl))
        };
        let before = storm_drops(&self.fwd);
        for _ in 0..BURST {
            let Some(Some(port)) = self.ports.get_mut(id.0 as usize) else {
                return false;
            };
            let vnet = port.dev.vnet_hdr();
            let start = if vnet { 0 } else { VIRTIO_NET_HDR_LEN };
            let n = match port.dev.read(&mut self.buf[start..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.mark_vanished(id, &e);
                    return false;
                }
            };
            if !vnet {
                self.buf[..VIRTIO_NET_HDR_LEN].fill(0);
            }
            self.frames_in += 1;
            let mut plane = plane!(self, id, now);
            plane.forward(&mut self.buf[..start + n]);
        }
        let dropped = storm_drops(&self.fwd) - before;
        !self.rest_if_storming(id, dropped)
    }

    /// Rests port `id` when storm control dropped nine tenths of a whole burst from it:
    /// the port leaves the poll for as long as its storm-control rate takes to refill a
    /// burst (1 to 100 ms), so the kernel drops the excess in the port's own queue, in
    /// the sender's time, instead of uswitch reading it frame by frame. True if rested.
    fn rest_if_storming(&mut self, id: PortId, dropped: u64) -> bool {
        if dropped * 10 < BURST as u64 * 9 {
            return false;
        }
        let rate = self.fwd.port(id).map_or(0, |p| p.bum_rate());
        let Some(Some(io)) = self.ports.get_mut(id.0 as usize) else {
            return false;
        };
        let Some(fd) = io.dev.raw_fd() else {
            return false;
        };
        if rate == 0 || self.poll.registry().deregister(&mut SourceFd(&fd)).is_err() {
            return false;
        }
        let rest = Duration::from_micros(BURST as u64 * 1_000_000 / rate)
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        let now = Instant::now();
        io.resting_until = Some(now + rest);
        io.rests += 1;
        if io
            .rest_logged
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            io.rest_logged = Some(now);
            warn!(
                "port {} floods far beyond its storm-control rate ({rate}/s): reading it once \
                 every {} ms while the storm lasts (rests so far: {})",
                io.dev.name(),
                rest.as_millis(),
                io.rests
            );
        }
        self.resting.push(id);
        true
    }

    /// When the loop must next wake whatever arrives: a resting port due back, or a
    /// capture's buffered records due out.
    fn next_wake(&self) -> Option<Instant> {
        let rest = self
            .resting
            .iter()
            .filter_map(|id| self.ports.get(id.0 as usize)?.as_ref()?.resting_until);
        let captures = self.capturing.iter().filter_map(|id| {
            self.ports
                .get(id.0 as usize)?
                .as_ref()?
                .capture
                .as_ref()?
                .flush_due()
        });
        rest.chain(captures).min()
    }

    /// Writes out captures whose records have waited long enough (all, with `all`).
    fn flush_captures(&mut self, all: bool) {
        if self.capturing.is_empty() {
            return;
        }
        let now = Instant::now();
        let (ports, fwd) = (&mut self.ports, &mut self.fwd);
        // A capture that ended (its count, its cap, a stop, its port gone) leaves the list.
        self.capturing.retain(|&id| {
            let Some(io) = ports.get_mut(id.0 as usize).and_then(Option::as_mut) else {
                return false;
            };
            let Some(cap) = io.capture.as_mut() else {
                return false;
            };
            if !all && cap.flush_due().is_none_or(|t| t > now) {
                return true;
            }
            if let Err(e) = cap.flush() {
                warn!("capture into {}: {e}; stopping it", cap.path().display());
                io.capture = None;
                fwd.set_captured(id, false);
                return false;
            }
            true
        });
    }

    /// Puts the ports whose rest is over back in the poll and on the ready list.
    fn wake_rested(&mut self) {
        if self.resting.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut i = 0;
        while i < self.resting.len() {
            let id = self.resting[i];
            let Some(Some(io)) = self.ports.get_mut(id.0 as usize) else {
                self.resting.swap_remove(i);
                continue;
            };
            if io.resting_until.is_some_and(|t| t > now) {
                i += 1;
                continue;
            }
            io.resting_until = None;
            self.resting.swap_remove(i);
            if let Some(fd) = io.dev.raw_fd() {
                if let Err(e) = self.poll.registry().register(
                    &mut SourceFd(&fd),
                    tokens::port(id),
                    Interest::READABLE,
                ) {
                    if !self.vanished.iter().any(|(p, _)| *p == id) {
                        self.vanished
                            .push((id, format!("polling it again failed: {e}")));
                    }
                    continue;
                }
            }
            if !io.queued {
                io.queued = true;
                self.ready.push(id);
            }
        }
    }

    /// Writes the UDP datagrams held for joining: a burst's datagrams go out before the
    /// loop turns to anything else.
    fn flush_held(&mut self) {
        if let Some((_, egress)) = self.tx.held.run {
            let now = self.now();
            let mut plane = plane!(self, egress, now);
            plane.flush_held();
        }
    }

    fn mark_vanished(&mut self, id: PortId, err: &io::Error) {
        if !self.vanished.iter().any(|(p, _)| *p == id) {
            let why = if is_vanished(err) {
                "its interface is gone".to_string()
            } else {
                format!("reading failed: {err}")
            };
            self.vanished.push((id, why));
        }
    }

    /// Detaches ports whose interface disappeared; the others keep forwarding.
    fn detach_vanished(&mut self) {
        while let Some((id, why)) = self.vanished.pop() {
            if let Some(port) = self.detach(id) {
                warn!(
                    "detached port {} ({why}); its counters: {}",
                    port.name(),
                    port.counters()
                );
            }
        }
    }

    /// Takes port `id` out of the poll, the lists and the forwarder. Its id may be given
    /// to the next port attached, so nothing here may keep it.
    pub(crate) fn detach(&mut self, id: PortId) -> Option<forwarder::Port> {
        self.flush_held();
        let mut io = self.ports.get_mut(id.0 as usize)?.take()?;
        if let Some(cap) = io.capture.take() {
            let path = cap.path().display().to_string();
            if let Err(e) = cap.finish() {
                warn!("capture into {path}: {e}");
            }
        }
        if let Some(fd) = io.dev.raw_fd() {
            // The fd is closed right after; a failed deregister (a resting port is not
            // registered) changes nothing.
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        self.resting.retain(|&p| p != id);
        self.ready.retain(|&p| p != id);
        self.vanished.retain(|&(p, _)| p != id);
        self.fwd.remove_port(id)
    }

    fn log_loop_alerts(&mut self) {
        for alert in self.fwd.take_loop_alerts() {
            let name = |id| self.fwd.port(id).map_or("?", |p| p.name()).to_string();
            let (port, other) = (name(alert.port), name(alert.other));
            match alert.blocked_until {
                Some(until) => warn!(
                    "possible loop: {} arrived on port {port} while it lives behind {other}; \
                     blocking {port} for {} s (--loop-protect)",
                    alert.mac,
                    until.saturating_sub(self.now()).div_ceil(1000)
                ),
                None => warn!(
                    "possible loop: {} arrived on port {port} while it lives behind {other} \
                     (a MAC moving faster than --mac-move-hold-down); reported at most every {} s",
                    alert.mac,
                    forwarder::LOOP_ALERT_INTERVAL_MS / 1000
                ),
            }
        }
    }

    /// Logs every port's, network's and endpoint's counters, one line each.
    pub fn log_stats(&self) {
        for (_, port) in self.fwd.ports() {
            let net = self.fwd.network(port.network()).map_or("?", |n| n.name());
            info!(
                "stats port={} network={net} {}",
                port.name(),
                port.counters()
            );
        }
        for (_, net) in self.fwd.networks() {
            info!(
                "stats network={} ports={} fdb_entries={} fdb_evictions={} fdb_expired={}",
                net.name(),
                net.ports().len(),
                net.fdb().len(),
                net.stats().evictions,
                net.stats().expired
            );
        }
        for (_, ep) in self.fwd.endpoints() {
            info!("stats endpoint={} {}", ep.name(), ep.counters());
        }
        if self.fwd.unattached_drops() > 0 {
            info!(
                "stats frames_from_detached_ports={}",
                self.fwd.unattached_drops()
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
        let io = self.ports.get(id.0 as usize)?.as_ref()?;
        let persistent = matches!(&io.dev, Device::Tap(t) if t.persistent());
        let goes = unpersisted || (io.dev.created() && !persistent);
        let kind = io.dev.kind();
        let port = self.detach(id)?;
        match (kind, goes) {
            (PortKind::Tap, true) => info!("removed TAP {}", port.name()),
            (PortKind::Tap, false) => info!("left TAP {} in place", port.name()),
            (PortKind::Remote, _) => info!("removed VXLAN remote {}", port.name()),
            (PortKind::Uplink, _) => info!("released uplink {}", port.name()),
        }
        Some((port, goes))
    }

    /// What is buffered written out (held UDP runs, captures) and the counters logged,
    /// before the process exits leaving its devices to a take-over.
    pub fn flush_for_exit(&mut self) {
        self.flush_held();
        self.flush_captures(true);
        self.log_stats();
    }

    /// Detaches every port (TAPs uswitch created vanish with their fd; existing ones
    /// stay), after logging the counters.
    pub fn shutdown(&mut self) {
        self.flush_held();
        self.flush_captures(true);
        self.log_stats();
        let ids: Vec<PortId> = self.fwd.ports().map(|(id, _)| id).collect();
        for id in ids {
            self.remove_port(id);
        }
    }
}

/// The take-over's two halves (see `inherited`).
impl Switch {
    /// The descriptors a take-over receives.
    pub fn handing(&self) -> super::inherited::Handing<'_> {
        let mut ports = Vec::new();
        for (id, port) in self.fwd.ports() {
            let Some(Some(io)) = self.ports.get(id.0 as usize) else {
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
        let endpoints = self
            .vxlan
            .iter()
            .map(|ep| (std::net::SocketAddr::new(ep.local, ep.port), ep.as_fd()))
            .collect();
        super::inherited::Handing { ports, endpoints }
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
