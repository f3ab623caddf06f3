//! The mio event loop: frames in from the ports (TAPs and uplinks), forwarder decisions,
//! frames out; signals and the control socket's connections share the same poll.
//!
//! Readiness is edge-triggered, so a readable port is drained until `WouldBlock`. To keep
//! one busy port from starving the others, each port reads at most [`BURST`] frames per
//! turn and stays on a ready list until it runs dry; the loop polls without sleeping while
//! that list is not empty. Writes never wait: a full egress drops the frame and counts it.

use std::io;
use std::time::{Duration, Instant};

use forwarder::{Decision, DropReason, FdbConfig, Forwarder, Millis, PortId, Protection};
use log::{debug, info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;

use packets::gro::{Gro, UdpGro};
use packets::offload::{
    complete_checksum, segment_tcp, segment_udp, VirtioNetHdr, F_NEEDS_CSUM, GSO_ECN, GSO_NONE,
    GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, VIRTIO_NET_HDR_LEN,
};

use crate::capture::{Capture, Stopped};
use crate::control::{ControlError, ControlEvent, ControlServer, Response};
use crate::device::Device;
use crate::packet::PacketSocket;
use crate::tap::{is_vanished, Tap, TapError};
use crate::vxlan::{inner_mtu, Batch, Endpoint, VxlanSpec};

/// Frames read from one port before the loop turns to the next.
pub const BURST: usize = 64;
/// Large enough for any frame a TAP can hand us (64 KiB GSO frames included), so an
/// oversized frame is seen whole and counted rather than silently cut.
const FRAME_BUF: usize = 65_536 + 256;
const SIGNALS: Token = Token(usize::MAX);
const CONTROL: Token = Token(usize::MAX - 1);
/// Control connections take tokens from here up; ports use their id (below 2^32).
const FIRST_CONTROL_CONN: usize = 1 << 40;
/// VXLAN endpoints take tokens from here up (their index), below the control connections.
const FIRST_VXLAN: usize = 1 << 39;
/// Where a VXLAN datagram is read into the frame buffer: its 8-byte header then ends
/// where the virtio-net header does, and the inner frame lands where every frame sits.
const VXLAN_AT: usize = VIRTIO_NET_HDR_LEN - packets::vxlan::VXLAN_HEADER_LEN;
/// How often aged FDB entries are swept (lookups ignore expired entries in between).
const SWEEP_EVERY_MS: Millis = 1_000;

/// The [`Plane`] for a frame entering at `$ingress`: the switch's forwarding state,
/// borrowed field by field, so that the frame buffers stay free for the caller.
macro_rules! plane {
    ($sw:expr, $ingress:expr, $now:expr) => {
        Plane {
            fwd: &mut $sw.fwd,
            ports: &mut $sw.ports,
            vanished: &mut $sw.vanished,
            flood_scratch: &mut $sw.flood_scratch,
            segment_scratch: &mut $sw.segment_scratch,
            vxlan_batch: &mut $sw.vxlan_batch,
            held: &mut $sw.held,
            udp_join: $sw.udp_join,
            ingress: $ingress,
            now: $now,
        }
    };
}

/// Why the switch could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tap(#[from] TapError),
    #[error(transparent)]
    Forwarder(#[from] forwarder::ForwarderError),
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The event loop could not be set up.
    #[error("setting up the event loop failed: {0}")]
    Poll(#[source] io::Error),
}

pub(crate) struct PortIo {
    pub(crate) dev: Device,
    /// On the ready list: readable and not yet drained.
    queued: bool,
    /// The last write failed because the interface is down (its netdev, possibly in a
    /// container's namespace, is not up); cleared by the next write that succeeds.
    pub(crate) down: bool,
    pub(crate) capture: Option<Capture>,
    /// Not polled until then: the port floods far beyond its storm-control rate.
    resting_until: Option<Instant>,
    /// How many times the port was rested, and when that was last logged.
    pub(crate) rests: u64,
    rest_logged: Option<Instant>,
}

impl PortIo {
    /// Records `frame` in the port's capture, closing the capture when it is complete.
    fn capture(&mut self, frame: &[u8]) {
        let Some(cap) = self.capture.as_mut() else {
            return;
        };
        let Some(why) = cap.record(frame) else {
            return;
        };
        if let Some(cap) = self.capture.take() {
            let (path, frames) = (cap.path().display().to_string(), cap.frames());
            let result = cap.finish();
            let why = match (why, result) {
                (_, Err(e)) => format!("writing failed: {e}"),
                (Stopped::WriteError, Ok(())) => "writing failed".into(),
                (Stopped::Count, Ok(())) => "it has all the frames asked for".into(),
                (Stopped::SizeCap, Ok(())) => "the file reached its size cap".into(),
            };
            info!(
                "capture on {} into {path} ended after {frames} frames: {why}",
                self.dev.name()
            );
        }
    }
}

/// A running switch: its ports, its forwarder and its event loop.
pub struct Switch {
    poll: Poll,
    signals: Signals,
    pub(crate) control: Option<ControlServer>,
    pub(crate) fwd: Forwarder,
    pub(crate) ports: Vec<Option<PortIo>>,
    pub(crate) networks: crate::commands::NetworkBook,
    /// VXLAN endpoints, one per local address and UDP port.
    pub(crate) vxlan: Vec<Endpoint>,
    ready: Vec<PortId>,
    /// VXLAN endpoints readable and not yet drained.
    vxlan_ready: Vec<usize>,
    /// Ports resting from a storm (see [`Switch::rest_if_storming`]).
    resting: Vec<PortId>,
    vanished: Vec<(PortId, String)>,
    flood_scratch: Vec<PortId>,
    segment_scratch: Vec<u8>,
    /// The datagrams of one GSO frame bound for a VXLAN remote.
    vxlan_batch: Batch,
    /// TCP segments from a VXLAN remote being joined into one GSO frame (behind a
    /// virtio-net header), and the remote's port.
    gro_buf: Vec<u8>,
    gro: Option<(Gro, PortId)>,
    /// UDP datagrams held to be written to one port as one GSO frame.
    held: HeldUdp,
    /// Whether UDP datagrams are held and joined at all (`--no-udp-join` says not).
    udp_join: bool,
    buf: Vec<u8>,
    start: Instant,
    /// Frames read so far (the busy-poll window restarts whenever it grows).
    frames_in: u64,
    busy_poll: Duration,
}

impl Switch {
    /// A switch with no ports yet, listening on `control` if given.
    pub fn new(
        fdb: FdbConfig,
        protection: Protection,
        control: Option<&std::path::Path>,
    ) -> Result<Switch, StartError> {
        let poll = Poll::new().map_err(StartError::Poll)?;
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGUSR1]).map_err(StartError::Poll)?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(StartError::Poll)?;
        let control = match control {
            Some(path) => Some(ControlServer::bind(
                path,
                poll.registry(),
                CONTROL,
                FIRST_CONTROL_CONN,
            )?),
            None => None,
        };
        Ok(Switch {
            poll,
            signals,
            control,
            fwd: Forwarder::with_protection(fdb, protection),
            ports: Vec::new(),
            networks: Default::default(),
            vxlan: Vec::new(),
            ready: Vec::new(),
            vxlan_ready: Vec::new(),
            resting: Vec::new(),
            vanished: Vec::new(),
            flood_scratch: Vec::new(),
            segment_scratch: Vec::with_capacity(FRAME_BUF),
            vxlan_batch: Batch::default(),
            gro_buf: Vec::with_capacity(FRAME_BUF),
            held: HeldUdp {
                buf: Vec::with_capacity(FRAME_BUF),
                run: None,
            },
            udp_join: true,
            gro: None,
            buf: vec![0; FRAME_BUF],
            start: Instant::now(),
            frames_in: 0,
            busy_poll: Duration::ZERO,
        })
    }

    /// After the last frame, keep polling without sleeping for `window` before blocking
    /// again: a frame that arrives meanwhile is read without a wake-up. Costs a core
    /// while traffic flows; zero (the default) never spins.
    /// Whether back-to-back UDP datagrams of one flow are joined into UDP GSO frames.
    pub fn set_udp_join(&mut self, on: bool) {
        self.udp_join = on;
    }

    pub fn set_busy_poll(&mut self, window: Duration) {
        self.busy_poll = window;
    }

    /// Overrides one port's storm-control rate.
    pub fn set_bum_rate(&mut self, port: PortId, rate: u64) {
        self.fwd.set_bum_rate(port, rate);
    }

    /// Where the control socket listens, if it does.
    pub fn control_path(&self) -> Option<&std::path::Path> {
        self.control.as_ref().map(|c| c.path())
    }

    pub fn forwarder(&self) -> &Forwarder {
        &self.fwd
    }

    /// Attaches (creating if needed) the TAP `name` to `network` and brings it up.
    pub fn add_tap_port(
        &mut self,
        name: &str,
        network: &str,
        offload: bool,
    ) -> Result<PortId, StartError> {
        let tap = Tap::open(name, offload)?;
        if let Some(&mtu) = self.networks.mtus.get(network) {
            tap.set_mtu(mtu)?;
        }
        tap.bring_up()?;
        let mtu = tap.mtu()?;
        self.attach(Device::Tap(tap), network, mtu)
    }

    /// Attaches the existing interface `name` to `network` as an uplink (AF_PACKET,
    /// promiscuous). The interface's own MTU and state are left alone.
    pub fn add_uplink_port(&mut self, name: &str, network: &str) -> Result<PortId, StartError> {
        let sock = PacketSocket::open(name)?;
        let mtu = crate::tap::interface_mtu(name)?;
        self.attach(Device::Uplink(sock), network, mtu)
    }

    /// Attaches a TAP that stays in uswitch's namespace with an address: the host's own
    /// door into the network.
    pub fn add_host_port(&mut self, spec: &crate::cli::HostPortSpec) -> Result<PortId, String> {
        let id = self
            .add_tap_port(&spec.port.name, &spec.port.network, true)
            .map_err(|e| e.to_string())?;
        let out = std::process::Command::new("ip")
            .args(["addr", "replace", &spec.address, "dev", &spec.port.name])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                info!("host port {} has address {}", spec.port.name, spec.address);
                Ok(id)
            }
            Ok(o) => Err(format!(
                "giving host port {} the address {}: {}",
                spec.port.name,
                spec.address,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!(
                "running ip (iproute2) for host port {}: {e}",
                spec.port.name
            )),
        }
    }

    /// Joins `spec.network` to a VXLAN overlay: opens (or shares) the endpoint for its
    /// local address and port, and attaches a peer port per remote. The network's TAPs
    /// attached from now on get the overlay's inner MTU unless the network has its own.
    pub fn add_vxlan(&mut self, spec: &VxlanSpec) -> Result<(), String> {
        spec.validate()?;
        if let Some(ep) = self
            .vxlan
            .iter()
            .find(|ep| ep.segments.iter().any(|s| s.network == spec.network))
        {
            return Err(format!(
                "network {} is already on the overlay at {}:{}",
                spec.network, ep.local, ep.port
            ));
        }
        let idx = match self
            .vxlan
            .iter()
            .position(|ep| ep.local == spec.local && ep.port == spec.port)
        {
            Some(i) => i,
            None => {
                let ep = Endpoint::open(spec.local, spec.port)?;
                let idx = self.vxlan.len();
                let fd = ep.raw_fd();
                self.poll
                    .registry()
                    .register(
                        &mut SourceFd(&fd),
                        Token(FIRST_VXLAN + idx),
                        Interest::READABLE,
                    )
                    .map_err(|e| format!("polling the VXLAN socket: {e}"))?;
                info!(
                    "VXLAN endpoint {}:{} on underlay {} (mtu {})",
                    ep.local, ep.port, ep.underlay, ep.underlay_mtu
                );
                self.vxlan.push(ep);
                self.vxlan_ready.push(idx);
                idx
            }
        };
        let ep = &self.vxlan[idx];
        if let Some(seg) = ep.segments.iter().find(|s| s.vni == spec.vni) {
            return Err(format!(
                "vni {} at {}:{} already carries network {}",
                spec.vni, ep.local, ep.port, seg.network
            ));
        }
        let mtu = inner_mtu(spec, ep.underlay_mtu)?;
        let net = self.fwd.network_named(&spec.network);
        self.networks
            .mtus
            .entry(spec.network.clone())
            .or_insert(mtu as u32);
        self.vxlan[idx].segments.push(crate::vxlan::Segment {
            vni: spec.vni,
            network: spec.network.clone(),
            mtu,
            peers: Vec::new(),
        });
        // The peers of one network share a split-horizon group named after it.
        let horizon = net.0 + 1;
        for &remote in &spec.remotes {
            let peer = self.vxlan[idx].peer(spec.vni, remote);
            let id = self
                .attach_in(Device::Vxlan(peer), &spec.network, mtu, horizon)
                .map_err(|e| e.to_string())?;
            self.vxlan[idx].add_peer(spec.vni, remote, id);
        }
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

    fn attach(&mut self, dev: Device, network: &str, mtu: usize) -> Result<PortId, StartError> {
        self.attach_in(dev, network, mtu, 0)
    }

    fn attach_in(
        &mut self,
        dev: Device,
        network: &str,
        mtu: usize,
        horizon: u32,
    ) -> Result<PortId, StartError> {
        let name = dev.name().to_string();
        let id = self.fwd.add_port_in_horizon(&name, network, mtu, horizon)?;
        if let Some(fd) = dev.raw_fd() {
            if let Err(e) = self.poll.registry().register(
                &mut SourceFd(&fd),
                Token(id.0 as usize),
                Interest::READABLE,
            ) {
                self.fwd.remove_port(id);
                return Err(StartError::Poll(e));
            }
        }
        info!(
            "attached port {name} to network {network} ({}{}, mtu {mtu})",
            match (&dev, dev.created()) {
                (Device::Tap(_), true) => "created ",
                (Device::Tap(_), false) => "existing ",
                (Device::Uplink(_) | Device::Vxlan(_), _) => "",
            },
            match dev.kind() {
                "tap" => "TAP",
                "vxlan" => "VXLAN remote",
                _ => "uplink",
            }
        );
        let pollable = dev.raw_fd().is_some();
        let slot = id.0 as usize;
        if self.ports.len() <= slot {
            self.ports.resize_with(slot + 1, || None);
        }
        self.ports[slot] = Some(PortIo {
            dev,
            queued: pollable,
            down: false,
            capture: None,
            resting_until: None,
            rests: 0,
            rest_logged: None,
        });
        if pollable {
            // A frame may have arrived between attaching and registering: look once.
            self.ready.push(id);
        }
        Ok(id)
    }

    pub(crate) fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }

    /// Runs until SIGINT or SIGTERM.
    pub fn run(&mut self) -> io::Result<()> {
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
                if event.token() == SIGNALS {
                    if self.handle_signals() {
                        return Ok(());
                    }
                    continue;
                }
                if event.token() == CONTROL {
                    if let Some(c) = self.control.as_mut() {
                        c.accept(self.poll.registry());
                    }
                    continue;
                }
                if event.token().0 >= FIRST_CONTROL_CONN {
                    self.service_control(event.token());
                    continue;
                }
                if event.token().0 >= FIRST_VXLAN {
                    let idx = event.token().0 - FIRST_VXLAN;
                    if let Some(ep) = self.vxlan.get_mut(idx) {
                        if !ep.queued {
                            ep.queued = true;
                            self.vxlan_ready.push(idx);
                        }
                    }
                    continue;
                }
                let id = PortId(event.token().0 as u32);
                if let Some(Some(port)) = self.ports.get_mut(id.0 as usize) {
                    if !port.queued {
                        port.queued = true;
                        self.ready.push(id);
                    }
                }
            }
            self.wake_rested();
            self.service_ready();
            self.detach_vanished();
            if self.fwd.has_loop_alerts() {
                self.log_loop_alerts();
            }

            let now = self.now();
            if now.saturating_sub(last_sweep) >= SWEEP_EVERY_MS {
                let n = self.fwd.expire(now);
                if n > 0 {
                    debug!("aged out {n} FDB entries");
                }
                if let Some(c) = self.control.as_mut() {
                    c.reap_idle(self.poll.registry());
                }
                for io in self.ports.iter_mut().flatten() {
                    if let Some(cap) = io.capture.as_mut() {
                        if let Err(e) = cap.flush() {
                            warn!("capture into {}: {e}", cap.path().display());
                        }
                    }
                }
                last_sweep = now;
            }
        }
    }

    fn service_control(&mut self, token: Token) {
        let Some(c) = self.control.as_mut() else {
            return;
        };
        if let ControlEvent::Request(token, request) = c.service(token, self.poll.registry()) {
            let response = match request {
                Ok(req) => {
                    debug!("control request: {req:?}");
                    self.execute(req)
                }
                Err(e) => Response::err(e),
            };
            if let Some(c) = self.control.as_mut() {
                c.reply(token, &response, self.poll.registry());
            }
        }
    }

    /// Returns true when the switch should stop.
    fn handle_signals(&mut self) -> bool {
        let mut stop = false;
        let pending: Vec<i32> = self.signals.pending().collect();
        for sig in pending {
            match sig {
                SIGUSR1 => self.log_stats(),
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
        stop
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

    /// Reads up to a burst of datagrams from VXLAN endpoint `idx`, checks each and hands
    /// the inner frames to the forwarder as received on their remote's port; true if the
    /// socket may still have datagrams.
    fn service_vxlan(&mut self, idx: usize, now: Millis) -> bool {
        for _ in 0..BURST {
            let Some(ep) = self.vxlan.get_mut(idx) else {
                return false;
            };
            let got = match ep.recv(&mut self.buf[VXLAN_AT..]) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("VXLAN socket {}:{}: {e}", ep.local, ep.port);
                    return false;
                }
            };
            self.frames_in += 1;
            if got.truncated {
                ep.refuse(got.len, DropReason::Oversized);
                continue;
            }
            // A kernel's GSO packet that crossed a veth whole arrives as one datagram: one
            // VXLAN header and an inner TCP packet of many segments. It goes on as the GSO
            // frame it is.
            if got.len > packets::vxlan::VXLAN_HEADER_LEN + 1518
                && self.forward_tunnel_gso(idx, &got, now)
            {
                continue;
            }
            // One datagram, or (UDP GRO) several of `segment` bytes back to back. Each is
            // handled where it lies: the 10 bytes that end with its VXLAN header become
            // its all-zero virtio-net header (the inner frame is complete), which
            // overwrites only the tail of the datagram before it, already forwarded.
            let mut off = 0;
            while off < got.len {
                let len = got.segment.min(got.len - off);
                let at = VXLAN_AT + off;
                off += len;
                let Some(ep) = self.vxlan.get_mut(idx) else {
                    return false;
                };
                let ingress = match ep.classify(&self.buf[at..at + len], got.from) {
                    Ok(port) => port,
                    Err(reason) => {
                        debug!(
                            "dropped a {len}-byte VXLAN datagram from {}: {reason}",
                            got.from
                        );
                        continue;
                    }
                };
                let inner = at + packets::vxlan::VXLAN_HEADER_LEN;
                // A read of several datagrams is where one TCP stream's segments arrive
                // back to back: join them into one GSO frame (see packets::gro).
                if let Some((run, port)) = self.gro.as_mut() {
                    if *port == ingress
                        && run.append(
                            &mut self.gro_buf,
                            VIRTIO_NET_HDR_LEN,
                            &self.buf[inner..at + len],
                        )
                    {
                        continue;
                    }
                }
                self.flush_gro(now);
                if got.segment < got.len {
                    if let Some(run) = Gro::start(&self.buf[inner..at + len]) {
                        self.gro_buf.clear();
                        self.gro_buf.extend_from_slice(&[0; VIRTIO_NET_HDR_LEN]);
                        self.gro_buf.extend_from_slice(&self.buf[inner..at + len]);
                        self.gro = Some((run, ingress));
                        continue;
                    }
                }
                // A kernel VTEP behind a veth leaves inner checksums partial; finish them
                // (see packets::offload::finish_partial). Segments that joined a run above
                // had theirs verified there, so each frame is summed once.
                packets::offload::finish_partial(&mut self.buf[inner..at + len]);
                let hdr = inner - VIRTIO_NET_HDR_LEN;
                self.buf[hdr..inner].fill(0);
                let mut plane = plane!(self, ingress, now);
                plane.forward(&mut self.buf[hdr..at + len]);
            }
            self.flush_gro(now);
        }
        true
    }

    /// Forwards a read that is one VXLAN header and one inner TCP GSO packet (see
    /// [`packets::offload::tcp_gso_header`]); false if the read is not that.
    fn forward_tunnel_gso(
        &mut self,
        idx: usize,
        got: &crate::vxlan::Received,
        now: Millis,
    ) -> bool {
        let inner = VXLAN_AT + packets::vxlan::VXLAN_HEADER_LEN;
        let end = VXLAN_AT + got.len;
        // One TCP packet spanning the whole read, larger than one segment?
        let Some(mut hdr) = packets::offload::tcp_gso_header(&self.buf[inner..end], 1) else {
            return false;
        };
        let Some(ep) = self.vxlan.get_mut(idx) else {
            return false;
        };
        let ingress = match ep.classify(&self.buf[VXLAN_AT..end], got.from) {
            Ok(port) => port,
            Err(reason) => {
                debug!(
                    "dropped a {}-byte VXLAN datagram from {}: {reason}",
                    got.len, got.from
                );
                return true;
            }
        };
        // The sender's segment size when the kernel says it (UDP GRO), else what the
        // overlay's MTU leaves after the headers.
        let headers = hdr.hdr_len as usize - packets::ETHERNET_HEADER_LEN;
        let mss = if got.segment < got.len {
            got.segment
        } else {
            self.fwd
                .port(ingress)
                .map_or(0, |p| p.mtu().saturating_sub(headers))
        };
        hdr.gso_size = u16::try_from(mss.max(1)).unwrap_or(u16::MAX);
        self.flush_gro(now);
        self.buf[..VIRTIO_NET_HDR_LEN].copy_from_slice(&hdr.emit());
        let mut plane = plane!(self, ingress, now);
        plane.forward(&mut self.buf[..end]);
        true
    }

    /// Forwards the TCP segments joined so far, as one GSO frame (or the single segment
    /// as it came).
    fn flush_gro(&mut self, now: Millis) {
        let Some((run, ingress)) = self.gro.take() else {
            return;
        };
        let hdr = run
            .finish(&mut self.gro_buf[VIRTIO_NET_HDR_LEN..])
            .unwrap_or_default();
        self.gro_buf[..VIRTIO_NET_HDR_LEN].copy_from_slice(&hdr.emit());
        let mut plane = plane!(self, ingress, now);
        plane.forward(&mut self.gro_buf);
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

    /// When the first resting port is due back.
    fn next_wake(&self) -> Option<Instant> {
        self.resting
            .iter()
            .filter_map(|id| self.ports.get(id.0 as usize)?.as_ref()?.resting_until)
            .min()
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
                let token = Token(id.0 as usize);
                if let Err(e) =
                    self.poll
                        .registry()
                        .register(&mut SourceFd(&fd), token, Interest::READABLE)
                {
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
        if let Some((_, egress)) = self.held.run {
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

    pub(crate) fn detach(&mut self, id: PortId) -> Option<forwarder::Port> {
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
        if let Device::Vxlan(_) = io.dev {
            for ep in &mut self.vxlan {
                ep.remove_port(id);
            }
        }
        self.ready.retain(|&p| p != id);
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

    /// Logs every port's and network's counters, one line each.
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
    }

    /// Detaches a port at the operator's wish, saying what became of its TAP.
    pub(crate) fn remove_port(&mut self, id: PortId) -> Option<(forwarder::Port, bool)> {
        let io = self.ports.get(id.0 as usize)?.as_ref()?;
        let (created, kind) = (io.dev.created(), io.dev.kind());
        let port = self.detach(id)?;
        match (kind, created) {
            ("tap", true) => info!("removed TAP {}", port.name()),
            ("tap", false) => info!("left TAP {} in place", port.name()),
            ("vxlan", _) => info!("removed VXLAN remote {}", port.name()),
            _ => info!("released uplink {}", port.name()),
        }
        Some((port, created))
    }

    /// Detaches every port (TAPs uswitch created vanish with their fd; existing ones
    /// stay) and removes the control socket.
    pub fn shutdown(&mut self) {
        self.log_stats();
        let ids: Vec<PortId> = self.fwd.ports().map(|(id, _)| id).collect();
        for id in ids {
            self.remove_port(id);
        }
        self.control = None;
    }
}

/// The parts of the switch one received frame touches, borrowed for its journey.
struct Plane<'a> {
    fwd: &'a mut Forwarder,
    ports: &'a mut [Option<PortIo>],
    vanished: &'a mut Vec<(PortId, String)>,
    flood_scratch: &'a mut Vec<PortId>,
    segment_scratch: &'a mut Vec<u8>,
    vxlan_batch: &'a mut Batch,
    held: &'a mut HeldUdp,
    udp_join: bool,
    ingress: PortId,
    now: Millis,
}

/// UDP datagrams of one flow, bound for one TAP with the USO offloads or one VXLAN
/// remote, being joined into one UDP GSO frame ([`UdpGro`]) so that a burst of small
/// datagrams costs one write (or one `sendmsg` with UDP GSO) instead of one each. Only a datagram bound for that one port alone is held
/// (after the forwarder has learned, decided and counted it), and only for the rest of
/// the burst it arrived in; anything else bound anywhere first flushes it, so no frame
/// overtakes another.
struct HeldUdp {
    /// The first datagram's virtio-net header, then the run.
    buf: Vec<u8>,
    run: Option<(UdpGro, PortId)>,
}

/// What the virtio-net header says must still be done to a frame.
#[derive(Clone, Copy)]
enum Offload {
    /// A complete frame.
    None,
    /// The L4 checksum is partial.
    Checksum { start: usize, offset: usize },
    /// A GSO frame: segments of `size` payload bytes, TCP or UDP.
    Segment { tcp: bool, size: usize },
}

impl Offload {
    fn of(hdr: &VirtioNetHdr) -> Option<Offload> {
        Some(match hdr.gso_type & !GSO_ECN {
            GSO_NONE if hdr.flags & F_NEEDS_CSUM != 0 => Offload::Checksum {
                start: hdr.csum_start as usize,
                offset: hdr.csum_offset as usize,
            },
            GSO_NONE => Offload::None,
            GSO_TCPV4 | GSO_TCPV6 => Offload::Segment {
                tcp: true,
                size: hdr.gso_size as usize,
            },
            GSO_UDP_L4 => Offload::Segment {
                tcp: false,
                size: hdr.gso_size as usize,
            },
            _ => return None,
        })
    }
}

impl Plane<'_> {
    fn is_vnet(&self, port: PortId) -> bool {
        matches!(self.ports.get(port.0 as usize), Some(Some(p)) if p.dev.vnet_hdr())
    }

    /// Captures, learns, decides and transmits one frame from the ingress port. `buf`
    /// holds the virtio-net header, then the frame.
    fn forward(&mut self, buf: &mut [u8]) {
        let hdr_and_offload = VirtioNetHdr::parse(buf).and_then(|h| Some((h, Offload::of(&h)?)));
        let Some((_, mut offload)) = hdr_and_offload else {
            let len = buf.len().saturating_sub(VIRTIO_NET_HDR_LEN);
            self.fwd
                .record_rx_drop(self.ingress, len, DropReason::BadOffload);
            return;
        };
        let gso = matches!(offload, Offload::Segment { .. });
        if let Some(Some(port)) = self.ports.get_mut(self.ingress.0 as usize) {
            port.capture(&buf[VIRTIO_NET_HDR_LEN..]);
        }
        let decision =
            self.fwd
                .process_frame(self.ingress, &buf[VIRTIO_NET_HDR_LEN..], gso, self.now);
        match decision {
            Decision::Forward(egress) => {
                self.flood_scratch.clear();
                self.flood_scratch.push(egress);
            }
            Decision::Flood(net) => self
                .fwd
                .flood_targets(net, self.ingress, self.flood_scratch),
            Decision::Drop(reason) => {
                debug!(
                    "dropped a {}-byte frame from port {}: {reason}",
                    buf.len(),
                    self.ingress.0
                );
                return;
            }
        }
        // A partial checksum bound for a port without the header is finished once, in
        // place, for every egress; the header then says the frame is complete.
        if let Offload::Checksum { start, offset } = offload {
            let plain = (0..self.flood_scratch.len()).any(|i| !self.is_vnet(self.flood_scratch[i]));
            if plain {
                if complete_checksum(&mut buf[VIRTIO_NET_HDR_LEN..], start, offset).is_err() {
                    self.fwd
                        .record_rx_drop(self.ingress, 0, DropReason::BadOffload);
                    return;
                }
                buf[0] &= !F_NEEDS_CSUM;
                offload = Offload::None;
            }
        }
        if let [egress] = self.flood_scratch[..] {
            if self.hold_udp(egress, buf, offload) {
                return;
            }
        }
        self.flush_held();
        for i in 0..self.flood_scratch.len() {
            let egress = self.flood_scratch[i];
            self.transmit(egress, buf, offload);
        }
    }

    /// Holds a UDP datagram bound for `egress` alone, to be written together with the
    /// datagrams of its flow that follow it in the burst (see [`HeldUdp`]); true if it
    /// was held, or dropped as too big for `egress`.
    fn hold_udp(&mut self, egress: PortId, buf: &[u8], offload: Offload) -> bool {
        if !self.udp_join {
            return false;
        }
        let partial = match offload {
            Offload::None => None,
            Offload::Checksum { start, offset } => Some((start, offset)),
            Offload::Segment { .. } => return false,
        };
        // A port being captured gets the datagrams one by one, as they came.
        match self.ports.get(egress.0 as usize) {
            Some(Some(p)) if p.dev.takes_udp_gso() && p.capture.is_none() => {}
            _ => return false,
        }
        // The egress's size check runs only for a datagram that joins (a frame that does
        // not is checked by `transmit`); one it refuses is taken back out of the run.
        let frame = &buf[VIRTIO_NET_HDR_LEN..];
        let held = &mut *self.held;
        if let Some((run, to)) = held.run.as_mut() {
            let (was, len) = (*run, held.buf.len());
            if *to == egress && run.append(&mut held.buf, VIRTIO_NET_HDR_LEN, frame, partial) {
                if !self.fwd.admit_egress(egress, frame, false) {
                    *run = was;
                    held.buf.truncate(len);
                }
                return true;
            }
        }
        self.flush_held();
        let held = &mut *self.held;
        held.buf.clear();
        held.buf.extend_from_slice(&buf[..VIRTIO_NET_HDR_LEN]);
        let Some(run) = UdpGro::start(&mut held.buf, VIRTIO_NET_HDR_LEN, frame, partial) else {
            return false;
        };
        if self.fwd.admit_egress(egress, frame, false) {
            held.run = Some((run, egress));
        }
        true
    }

    /// Writes the datagrams held for joining, if any, counting each: one write of the
    /// joined frame to a port with the header, one `sendmsg` to a VXLAN remote.
    fn flush_held(&mut self) {
        let Some((run, egress)) = self.held.run.take() else {
            return;
        };
        let mut buf = std::mem::take(&mut self.held.buf);
        let hdr = run.finish(&mut buf[VIRTIO_NET_HDR_LEN..]);
        if let Some(h) = hdr {
            buf[..VIRTIO_NET_HDR_LEN].copy_from_slice(&h.emit());
        }
        let remote = matches!(
            self.ports.get(egress.0 as usize),
            Some(Some(PortIo {
                dev: Device::Vxlan(_),
                ..
            }))
        );
        let frame = &buf[VIRTIO_NET_HDR_LEN..];
        match hdr {
            Some(h) if remote => self.transmit_to_remote(egress, frame, false, h.gso_size.into()),
            _ => {
                if let Some(Some(port)) = self.ports.get_mut(egress.0 as usize) {
                    let bytes = if remote { frame } else { &buf[..] };
                    match port.dev.write(bytes) {
                        Ok(_) => {
                            // Every datagram repeats the headers the run holds once.
                            let all = frame.len() + (run.count() - 1) * run.header_len();
                            self.fwd.record_tx_frames(egress, run.count(), all);
                            port.down = false;
                        }
                        Err(e) => {
                            for _ in 0..run.count() {
                                count_tx_error(self.fwd, port, self.vanished, egress, &e);
                            }
                        }
                    }
                }
            }
        }
        self.held.buf = buf;
    }

    /// Writes to `egress` what it can take: the header and the frame as they are for a
    /// port with the header, the frame (segmented if need be) for one without.
    fn transmit(&mut self, egress: PortId, buf: &[u8], offload: Offload) {
        let Some(Some(port)) = self.ports.get_mut(egress.0 as usize) else {
            return;
        };
        let frame = &buf[VIRTIO_NET_HDR_LEN..];
        if port.dev.vnet_hdr() {
            let gso = matches!(offload, Offload::Segment { .. });
            if self.fwd.admit_egress(egress, frame, gso) {
                write_counted(self.fwd, port, self.vanished, egress, buf, frame);
            }
            return;
        }
        let Offload::Segment { tcp, size } = offload else {
            if self.fwd.admit_egress(egress, frame, false) {
                write_counted(self.fwd, port, self.vanished, egress, frame, frame);
            }
            return;
        };
        if let Device::Vxlan(_) = port.dev {
            self.transmit_to_remote(egress, frame, tcp, size);
            return;
        }
        let (fwd, vanished) = (&mut *self.fwd, &mut *self.vanished);
        let mut each = |seg: &[u8]| {
            if fwd.admit_egress(egress, seg, false) {
                write_counted(fwd, port, vanished, egress, seg, seg);
            }
        };
        let done = segment_gso(frame, tcp, size, self.segment_scratch, &mut each);
        if done.is_err() {
            self.fwd.record_tx_drop(egress, DropReason::BadOffload);
        }
    }
}

impl Plane<'_> {
    /// Segments the GSO `frame` for the VXLAN remote `egress` and sends the datagrams
    /// together (UDP GSO): one `sendmsg` for the whole frame where the kernel allows.
    fn transmit_to_remote(&mut self, egress: PortId, frame: &[u8], tcp: bool, size: usize) {
        let Some(Some(port)) = self.ports.get_mut(egress.0 as usize) else {
            return;
        };
        let Device::Vxlan(peer) = &port.dev else {
            return;
        };
        let vni = peer.vni();
        let (fwd, batch) = (&mut *self.fwd, &mut *self.vxlan_batch);
        batch.clear();
        let mut each = |seg: &[u8]| {
            if fwd.admit_egress(egress, seg, false) {
                batch.push(vni, seg);
            }
        };
        let done = segment_gso(frame, tcp, size, self.segment_scratch, &mut each);
        if done.is_err() {
            self.fwd.record_tx_drop(egress, DropReason::BadOffload);
            return;
        }
        let (sent, err) = peer.send_batch(batch);
        for (i, seg) in batch.frames().enumerate() {
            if i < sent {
                self.fwd.record_tx(egress, seg.len());
                port.capture(seg);
            } else if let Some(e) = &err {
                count_tx_error(self.fwd, port, self.vanished, egress, e);
            }
        }
    }
}

/// Cuts a TCP (`tcp`) or UDP GSO frame into segments of `size` payload bytes.
fn segment_gso(
    frame: &[u8],
    tcp: bool,
    size: usize,
    scratch: &mut Vec<u8>,
    each: impl FnMut(&[u8]),
) -> Result<usize, packets::offload::OffloadError> {
    if tcp {
        segment_tcp(frame, size, scratch, each)
    } else {
        segment_udp(frame, size, scratch, each)
    }
}

/// Writes `bytes` (which end with `frame`) to `port`, counting what happened. Never
/// blocks.
fn write_counted(
    fwd: &mut Forwarder,
    port: &mut PortIo,
    vanished: &mut Vec<(PortId, String)>,
    egress: PortId,
    bytes: &[u8],
    frame: &[u8],
) {
    match port.dev.write(bytes) {
        Ok(_) => {
            fwd.record_tx(egress, frame.len());
            port.down = false;
            port.capture(frame);
        }
        Err(e) => count_tx_error(fwd, port, vanished, egress, &e),
    }
}

/// Counts a failed write to `egress` under the reason its error gives.
fn count_tx_error(
    fwd: &mut Forwarder,
    port: &mut PortIo,
    vanished: &mut Vec<(PortId, String)>,
    egress: PortId,
    e: &io::Error,
) {
    match e {
        e if e.kind() == io::ErrorKind::WouldBlock => {
            fwd.record_tx_drop(egress, DropReason::EgressFull)
        }
        // Over the underlay's path MTU (VXLAN never fragments the outer packet).
        e if e.raw_os_error() == Some(libc::EMSGSIZE) => {
            fwd.record_tx_drop(egress, DropReason::EgressTooBig)
        }
        e if matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::ENETDOWN)) => {
            fwd.record_tx_drop(egress, DropReason::EgressDown);
            port.down = true;
        }
        e => {
            fwd.record_tx_drop(egress, DropReason::EgressError);
            if is_vanished(e) && !vanished.iter().any(|(p, _)| *p == egress) {
                vanished.push((egress, "its interface is gone".into()));
            }
        }
    }
}
