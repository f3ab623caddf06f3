//! What the workers share: the forwarder, every port's device and every VXLAN endpoint,
//! behind one read-write lock, and the channels that reach each worker.
//!
//! A worker holds the read lock for one burst of one port (frames read, planned and
//! written); the control plane and a worker detaching a vanished port take the write lock
//! between bursts. So a burst never races a change, and a change waits at most for the
//! bursts in flight. Nothing on the frame path writes to shared memory but the FDB's
//! rare misses (see `forwarder::shared_fdb`) and each worker's own counters.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use forwarder::{Forwarder, PortId};
use mio::{Registry, Waker};
use parking_lot::RwLock;

use super::io::udp_tunnel::Endpoint;
use super::port::PortDev;

/// A VXLAN endpoint and the worker that reads its socket.
pub(crate) struct EndpointDev {
    pub(crate) ep: Endpoint,
    pub(crate) owner: usize,
}

/// What a worker is told, between its bursts. Devices are put in (and taken out of) a
/// worker's poll by whoever attaches (or detaches) them, through the worker's registry
/// clone, so that an attach or a detach is done when the call returns; the worker is then
/// told to look at the port at once, or to forget what it kept of it.
pub(crate) enum Command {
    /// Port `id` is yours now: read it at once (a frame may be waiting).
    Look(PortId),
    /// Endpoint `idx` is yours now: read it at once.
    LookEndpoint(usize),
    /// Port `id` was detached: forget what you kept of it.
    Forget(PortId),
    /// Endpoint `idx` was closed.
    ForgetEndpoint(usize),
    /// Stop: the switch shuts down.
    Stop,
}

/// How to reach one worker.
pub(crate) struct Link {
    pub(crate) commands: Sender<Command>,
    /// None for worker 0: mio allows one waker per poll, and worker 0's is the control
    /// plane's (`control::handle`). Worker 0 reads its commands every turn, at least once
    /// a second, and is only ever told to forget a port another worker detached.
    pub(crate) waker: Option<Arc<Waker>>,
    /// The worker's poll, to put devices in and take them out of.
    pub(crate) registry: Registry,
}

impl Link {
    /// Sends `command` and wakes the worker. A worker that stopped ignores it.
    pub(crate) fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            // A failed wake leaves the command for the worker's next turn (at most a
            // second away).
            if let Some(waker) = &self.waker {
                let _ = waker.wake();
            }
        }
    }
}

/// The state every worker reads.
pub(crate) struct Shared {
    pub(crate) fwd: Forwarder,
    /// Devices by port id.
    pub(crate) ports: Vec<Option<PortDev>>,
    /// VXLAN endpoints, one per local address and UDP port.
    pub(crate) endpoints: Vec<EndpointDev>,
    /// The workers, by index (worker 0 runs the control plane).
    pub(crate) links: Vec<Link>,
    /// Devices each worker reads (ports with a descriptor, endpoints).
    pub(crate) loads: Vec<usize>,
}

impl Shared {
    pub(crate) fn port(&self, id: PortId) -> Option<&PortDev> {
        self.ports.get(id.0 as usize)?.as_ref()
    }

    /// The least loaded of the workers.
    pub(crate) fn least_loaded(&self) -> usize {
        (0..self.loads.len())
            .min_by_key(|&w| (self.loads[w], w))
            .unwrap_or(0)
    }
}

/// The shared state and the switch's clock.
pub(crate) struct Fabric {
    pub(crate) shared: RwLock<Shared>,
    pub(crate) start: Instant,
    /// The busy-poll window in microseconds (see `Switch::set_busy_poll`).
    pub(crate) busy_poll_us: AtomicU64,
    /// Set once the devices are another switch's (a take-over): no worker reads again.
    pub(crate) handed_over: AtomicBool,
}

impl Fabric {
    /// Milliseconds since the switch started: the forwarder's clock.
    pub(crate) fn now(&self) -> forwarder::Millis {
        self.start.elapsed().as_millis() as forwarder::Millis
    }
}
