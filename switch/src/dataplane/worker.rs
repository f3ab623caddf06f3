//! One worker: a mio poll over its share of the ports and endpoints, frames read in bursts
//! and handed to the forwarder, its plans carried out (`forward`) to any port, whichever
//! worker reads it. Worker 0 runs in the switch's own thread beside the control plane
//! ([`super::Switch::run`]); the others run [`Worker::run`] on threads of their own.
//!
//! Readiness is edge-triggered, so a readable port is drained until `WouldBlock`. To keep
//! one busy port from starving the others, each port reads at most [`BURST`] frames per
//! turn and stays on a ready list until it runs dry; the loop polls without sleeping while
//! that list is not empty. Writes never wait: a full egress drops the frame and counts it.
//!
//! A port is read by one worker only, so the frames of a flow (which enter at one port)
//! are planned and written in the order they came.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use forwarder::{DropReason, Forwarder, Millis, PortId};
use log::{debug, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Waker};
use packets::offload::VIRTIO_NET_HDR_LEN;

use super::fabric::{Command, Fabric, Link, Shared};
use super::forward::{plane, Tx};
use super::io::tap::is_vanished;
use super::port::Watched;
use super::rx::Rx;
use super::tokens::{self, Source};

/// Frames read from one port before the loop turns to the next.
pub const BURST: usize = 64;
/// Large enough for any frame a TAP can hand us (64 KiB GSO frames included), so an
/// oversized frame is seen whole and counted rather than silently cut.
const FRAME_BUF: usize = 65_536 + 256;
/// How long a worker sleeps at most when nothing is ready.
pub(crate) const IDLE_WAKE_MS: Millis = 1_000;

/// One worker's own state.
pub(crate) struct Worker {
    pub(crate) index: usize,
    pub(crate) poll: Poll,
    commands: Receiver<Command>,
    /// What this worker keeps of the ports it reads, by port id.
    watched: Vec<Option<Watched>>,
    pub(crate) ready: Vec<PortId>,
    /// Endpoints this worker reads, by index: whether each is on `vxlan_ready`.
    endpoints: Vec<Option<bool>>,
    /// VXLAN endpoints readable and not yet drained.
    pub(crate) vxlan_ready: Vec<usize>,
    /// Ports resting from a storm (see [`Worker::rest_if_storming`]).
    resting: Vec<PortId>,
    pub(crate) vanished: Vec<(PortId, String)>,
    pub(crate) tx: Tx,
    pub(crate) rx: Rx,
    pub(crate) buf: Vec<u8>,
    /// Frames read so far (the busy-poll window restarts whenever it grows).
    pub(crate) frames_in: u64,
    /// Told to stop.
    pub(crate) stopped: bool,
}

impl Worker {
    /// Worker `index`, and how to reach it.
    pub(crate) fn new(index: usize) -> io::Result<(Worker, Link)> {
        let poll = Poll::new()?;
        let waker = match index {
            0 => None,
            _ => Some(Arc::new(Waker::new(poll.registry(), tokens::wake())?)),
        };
        let registry = poll.registry().try_clone()?;
        let (send, commands) = crossbeam_channel::unbounded();
        let worker = Worker {
            index,
            poll,
            commands,
            watched: Vec::new(),
            ready: Vec::new(),
            endpoints: Vec::new(),
            vxlan_ready: Vec::new(),
            resting: Vec::new(),
            vanished: Vec::new(),
            tx: Tx::new(FRAME_BUF, index),
            rx: Rx::new(FRAME_BUF),
            buf: vec![0; FRAME_BUF],
            frames_in: 0,
            stopped: false,
        };
        let link = Link {
            commands: send,
            waker,
            registry,
        };
        Ok((worker, link))
    }

    /// A worker of its own thread: polls, forwards, and does what it is told, until told
    /// to stop.
    pub(crate) fn run(mut self, fabric: Arc<Fabric>) {
        let mut events = Events::with_capacity(256);
        let mut last_frame = Instant::now();
        let mut seen = self.frames_in;
        debug!("worker {} started", self.index);
        while !self.stopped {
            if self.frames_in != seen {
                seen = self.frames_in;
                last_frame = Instant::now();
            }
            let timeout = self.timeout(&fabric, last_frame);
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("worker {}: its poll failed: {e}; it stops", self.index);
                    return;
                }
            }
            for event in events.iter() {
                match tokens::decode(event.token()) {
                    Source::Wake => {}
                    source => self.on_event(source),
                }
            }
            self.take_commands();
            if self.stopped {
                break;
            }
            self.turn(&fabric);
        }
        debug!("worker {} stopped", self.index);
    }

    /// How long to sleep in the poll: not at all while a port is ready or the busy-poll
    /// window is open, else until the next port's rest ends, at most a second.
    pub(crate) fn timeout(&self, fabric: &Fabric, last_frame: Instant) -> Duration {
        let busy = Duration::from_micros(fabric.busy_poll_us.load(Ordering::Relaxed));
        let spinning = !busy.is_zero() && last_frame.elapsed() < busy;
        let mut timeout = if self.ready.is_empty() && self.vxlan_ready.is_empty() && !spinning {
            Duration::from_millis(IDLE_WAKE_MS)
        } else {
            Duration::ZERO
        };
        if let Some(wake) = self.next_rest_end(fabric) {
            timeout = timeout.min(wake.saturating_duration_since(Instant::now()));
        }
        timeout
    }

    /// A port or an endpoint of this worker's poll is ready.
    pub(crate) fn on_event(&mut self, source: Source) {
        match source {
            Source::Endpoint(idx) => self.queue_endpoint(idx),
            Source::Port(id) => self.queue_port(id),
            Source::Signals | Source::Sidecar(_) | Source::Wake => {}
        }
    }

    /// Does what the worker was told.
    pub(crate) fn take_commands(&mut self) {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Look(id)) => self.queue_port(id),
                Ok(Command::LookEndpoint(idx)) => {
                    self.adopt_endpoint(idx);
                    self.queue_endpoint(idx);
                }
                Ok(Command::Forget(id)) => self.forget(id),
                Ok(Command::ForgetEndpoint(idx)) => self.forget_endpoint(idx),
                Ok(Command::Stop) => self.stopped = true,
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    // The switch is gone: nobody will ever tell this worker anything.
                    self.stopped = true;
                    return;
                }
            }
        }
    }

    /// One turn after a poll: rested ports back, every ready port a burst, vanished
    /// ports detached, loop reports logged.
    pub(crate) fn turn(&mut self, fabric: &Fabric) {
        self.wake_rested(fabric);
        self.service_ready(fabric);
        self.detach_vanished(fabric);
        let sh = fabric.shared.read();
        if sh.fwd.has_loop_alerts() {
            log_loop_alerts(&sh.fwd, fabric.now());
        }
    }

    fn queue_port(&mut self, id: PortId) {
        let slot = id.0 as usize;
        if self.watched.len() <= slot {
            self.watched.resize_with(slot + 1, || None);
        }
        let w = self.watched[slot].get_or_insert_with(Watched::default);
        if !w.queued && w.resting_until.is_none() {
            w.queued = true;
            self.ready.push(id);
        }
    }

    /// Reads endpoint `idx` from now on.
    pub(crate) fn adopt_endpoint(&mut self, idx: usize) {
        if self.endpoints.len() <= idx {
            self.endpoints.resize(idx + 1, None);
        }
        self.endpoints[idx].get_or_insert(false);
    }

    fn queue_endpoint(&mut self, idx: usize) {
        if let Some(Some(queued)) = self.endpoints.get_mut(idx) {
            if !*queued {
                *queued = true;
                self.vxlan_ready.push(idx);
            }
        }
    }

    /// Forgets port `id` (detached; its id may come back as another port).
    pub(crate) fn forget(&mut self, id: PortId) {
        if let Some(w) = self.watched.get_mut(id.0 as usize) {
            *w = None;
        }
        self.ready.retain(|&p| p != id);
        self.resting.retain(|&p| p != id);
        self.vanished.retain(|&(p, _)| p != id);
    }

    pub(crate) fn forget_endpoint(&mut self, idx: usize) {
        if let Some(e) = self.endpoints.get_mut(idx) {
            *e = None;
        }
        self.vxlan_ready.retain(|&i| i != idx);
    }

    /// Gives every ready port one burst, each under the shared state's read lock; ports
    /// that ran dry leave the list.
    pub(crate) fn service_ready(&mut self, fabric: &Fabric) {
        let now = fabric.now();
        let mut i = 0;
        while i < self.ready.len() {
            let id = self.ready[i];
            let more = {
                let sh = fabric.shared.read();
                if fabric.handed_over.load(Ordering::Relaxed) {
                    return;
                }
                let more = self.service_port(&sh, id, now);
                self.flush_held(&sh, now);
                more
            };
            if more {
                i += 1;
            } else {
                if let Some(Some(w)) = self.watched.get_mut(id.0 as usize) {
                    w.queued = false;
                }
                self.ready.swap_remove(i);
            }
        }
        let mut i = 0;
        while i < self.vxlan_ready.len() {
            let idx = self.vxlan_ready[i];
            let more = {
                let sh = fabric.shared.read();
                if fabric.handed_over.load(Ordering::Relaxed) {
                    return;
                }
                let more = self.service_vxlan(&sh, idx, now);
                self.flush_held(&sh, now);
                more
            };
            if more {
                i += 1;
            } else {
                if let Some(Some(queued)) = self.endpoints.get_mut(idx) {
                    *queued = false;
                }
                self.vxlan_ready.swap_remove(i);
            }
        }
    }

    /// The port's state here, if this worker reads port `id` of the attachment `sh`
    /// holds (what was kept of an earlier attachment under the same id starts afresh).
    fn watched_mut(&mut self, sh: &Shared, id: PortId) -> Option<&mut Watched> {
        let dev = sh.port(id)?;
        if dev.owner != self.index {
            return None;
        }
        let w = self.watched.get_mut(id.0 as usize)?.as_mut()?;
        if w.incarnation != dev.incarnation {
            *w = Watched {
                incarnation: dev.incarnation,
                queued: w.queued,
                ..Watched::default()
            };
        }
        Some(w)
    }

    /// Reads up to a burst from `id`; true if the port may still have frames.
    ///
    /// Every frame sits in the buffer behind a virtio-net header: the one the device
    /// gave (TAPs with offloads, uplinks) or an all-zero one written here (plain TAPs), so
    /// the rest of the path handles one layout.
    fn service_port(&mut self, sh: &Shared, id: PortId, now: Millis) -> bool {
        if self.watched_mut(sh, id).is_none() {
            return false;
        }
        let me = self.index;
        let storm_drops = |fwd: &Forwarder| {
            fwd.port(id).map_or(0, |p| {
                p.counters_of_worker(me).drops(DropReason::StormControl)
            })
        };
        let before = storm_drops(&sh.fwd);
        for _ in 0..BURST {
            let Some(port) = sh.port(id) else {
                return false;
            };
            let vnet = port.dev.vnet_hdr();
            let start = if vnet { 0 } else { VIRTIO_NET_HDR_LEN };
            let n = match port.dev.read(&mut self.buf[start..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An uplink whose link is down (at attach, or later): the packet socket
                // says so once and then reads what arrives after the link is up again.
                // The port stays, as a bridge port does; deleting the interface is what
                // detaches it (ENODEV).
                Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => {
                    if port.set_down(true) {
                        warn!(
                            "port {}: its link is down; it stays attached and forwards again once the link is up",
                            port.dev.name()
                        );
                    }
                    continue;
                }
                Err(e) => {
                    self.mark_vanished(id, &e);
                    return false;
                }
            };
            if !vnet {
                self.buf[..VIRTIO_NET_HDR_LEN].fill(0);
            }
            port.set_down(false);
            self.frames_in += 1;
            let mut plane = plane!(self, sh, id, now);
            plane.forward(&mut self.buf[..start + n]);
        }
        let dropped = storm_drops(&sh.fwd) - before;
        !self.rest_if_storming(sh, id, dropped)
    }

    /// Rests port `id` when storm control dropped nine tenths of a whole burst from it:
    /// the port leaves the poll for as long as its storm-control rate takes to refill a
    /// burst (1 to 100 ms), so the kernel drops the excess in the port's own queue, in
    /// the sender's time, instead of uswitch reading it frame by frame. True if rested.
    fn rest_if_storming(&mut self, sh: &Shared, id: PortId, dropped: u64) -> bool {
        if dropped * 10 < BURST as u64 * 9 {
            return false;
        }
        let rate = sh.fwd.port(id).map_or(0, |p| p.bum_rate());
        let Some(dev) = sh.port(id) else {
            return false;
        };
        let Some(fd) = dev.dev.raw_fd() else {
            return false;
        };
        if rate == 0 || self.poll.registry().deregister(&mut SourceFd(&fd)).is_err() {
            return false;
        }
        let rests = dev.rests.fetch_add(1, Ordering::Relaxed) + 1;
        let name = dev.dev.name().to_string();
        let Some(w) = self.watched_mut(sh, id) else {
            return false;
        };
        let rest = Duration::from_micros(BURST as u64 * 1_000_000 / rate)
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        let now = Instant::now();
        w.resting_until = Some(now + rest);
        if w.rest_logged
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            w.rest_logged = Some(now);
            warn!(
                "port {name} floods far beyond its storm-control rate ({rate}/s): reading it \
                 once every {} ms while the storm lasts (rests so far: {rests})",
                rest.as_millis(),
            );
        }
        self.resting.push(id);
        true
    }

    /// When the first resting port is due back.
    fn next_rest_end(&self, _fabric: &Fabric) -> Option<Instant> {
        self.resting
            .iter()
            .filter_map(|id| self.watched.get(id.0 as usize)?.as_ref()?.resting_until)
            .min()
    }

    /// Puts the ports whose rest is over back in the poll and on the ready list.
    fn wake_rested(&mut self, fabric: &Fabric) {
        if self.resting.is_empty() {
            return;
        }
        let sh = fabric.shared.read();
        let now = Instant::now();
        let mut i = 0;
        while i < self.resting.len() {
            let id = self.resting[i];
            let index = self.index;
            let Some(w) = self.watched_mut(&sh, id) else {
                self.resting.swap_remove(i);
                continue;
            };
            if w.resting_until.is_some_and(|t| t > now) {
                i += 1;
                continue;
            }
            w.resting_until = None;
            let queued = std::mem::replace(&mut w.queued, true);
            self.resting.swap_remove(i);
            let fd = sh.port(id).and_then(|d| d.dev.raw_fd());
            if let Some(fd) = fd {
                if let Err(e) = self.poll.registry().register(
                    &mut SourceFd(&fd),
                    tokens::port(id),
                    Interest::READABLE,
                ) {
                    if !self.vanished.iter().any(|(p, _)| *p == id) {
                        self.vanished
                            .push((id, format!("polling it again (worker {index}) failed: {e}")));
                    }
                    continue;
                }
            }
            if !queued {
                self.ready.push(id);
            }
        }
    }

    /// Writes the UDP datagrams held for joining: a burst's datagrams go out before the
    /// worker turns to anything else.
    pub(crate) fn flush_held(&mut self, sh: &Shared, now: Millis) {
        if let Some((_, egress)) = self.tx.held.run {
            let mut plane = plane!(self, sh, egress, now);
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
    pub(crate) fn detach_vanished(&mut self, fabric: &Fabric) {
        while let Some((id, why)) = self.vanished.pop() {
            if let Some((port, _)) = detach(fabric, self, id) {
                warn!(
                    "detached port {} ({why}); its counters: {}",
                    port.name(),
                    port.counters()
                );
            }
        }
    }
}

/// What a detached port's device was, for saying what became of it.
pub(crate) struct Detached {
    pub(crate) kind: forwarder::PortKind,
    pub(crate) created: bool,
    pub(crate) persistent: bool,
}

/// Takes port `id` out of its worker's poll, the shared table and the forwarder, and
/// closes its device, from any worker (`me`). Its id may be given to the next port
/// attached, so nothing may keep it.
pub(crate) fn detach(
    fabric: &Fabric,
    me: &mut Worker,
    id: PortId,
) -> Option<(forwarder::Port, Detached)> {
    {
        let sh = fabric.shared.read();
        me.flush_held(&sh, fabric.now());
    }
    let mut sh = fabric.shared.write();
    let dev = sh.ports.get_mut(id.0 as usize)?.take()?;
    if let Some(cap) = dev.take_capture() {
        let path = cap.path().display().to_string();
        if let Err(e) = cap.finish() {
            warn!("capture into {path}: {e}");
        }
    }
    let owner = dev.owner;
    if let Some(fd) = dev.dev.raw_fd() {
        if let Some(link) = sh.links.get(owner) {
            // The fd is closed right after; a failed deregister (a resting port is not
            // registered) changes nothing.
            let _ = link.registry.deregister(&mut SourceFd(&fd));
        }
        if let Some(load) = sh.loads.get_mut(owner) {
            *load = load.saturating_sub(1);
        }
    }
    if owner == me.index {
        me.forget(id);
    } else if let Some(link) = sh.links.get(owner) {
        link.send(Command::Forget(id));
    }
    let facts = Detached {
        kind: dev.dev.kind(),
        created: dev.dev.created(),
        persistent: matches!(&dev.dev, super::device::Device::Tap(t) if t.persistent()),
    };
    let port = sh.fwd.remove_port(id)?;
    drop(sh);
    drop(dev);
    Some((port, facts))
}

/// Logs the loop reports the forwarder gathered.
pub(crate) fn log_loop_alerts(fwd: &Forwarder, now: Millis) {
    for alert in fwd.take_loop_alerts() {
        let name = |id| fwd.port(id).map_or("?", |p| p.name()).to_string();
        let (port, other) = (name(alert.port), name(alert.other));
        match alert.blocked_until {
            Some(until) => warn!(
                "possible loop: {} arrived on port {port} while it lives behind {other}; \
                 blocking {port} for {} s (--loop-protect)",
                alert.mac,
                until.saturating_sub(now).div_ceil(1000)
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
