//! Descriptors handed over by a running uswitch to the one taking it over
//! (`--take-over`): its ports' TAP queues and uplink sockets and its VXLAN endpoints'
//! sockets. The new switch sets itself up as at any start, but wherever it would open a
//! device it first takes the one handed over under that port's name (or that endpoint's
//! address): the netdevs, the frames queued in them and the bound ports never go away.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};

use serde::{Deserialize, Serialize};

/// A port's device as the old switch describes it, beside its descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandedPort {
    pub name: String,
    /// `tap` or `uplink`.
    pub kind: String,
    /// The port's MTU (a container's TAP cannot be asked by name from here).
    pub mtu: usize,
    pub persistent: bool,
    /// Whether uswitch created the TAP (it goes when the last descriptor closes).
    pub created: bool,
}

/// What a take-over received and has not yet claimed.
#[derive(Debug, Default)]
pub struct Inherited {
    ports: HashMap<String, (HandedPort, OwnedFd)>,
    endpoints: HashMap<SocketAddr, OwnedFd>,
}

impl Inherited {
    pub fn new(
        ports: Vec<(HandedPort, OwnedFd)>,
        endpoints: Vec<(SocketAddr, OwnedFd)>,
    ) -> Inherited {
        Inherited {
            ports: ports
                .into_iter()
                .map(|(p, fd)| (p.name.clone(), (p, fd)))
                .collect(),
            endpoints: endpoints.into_iter().collect(),
        }
    }

    /// The device handed over for port `name` of kind `kind`, taken out of the bank.
    pub fn take_port(&mut self, name: &str, kind: &str) -> Option<(HandedPort, OwnedFd)> {
        match self.ports.get(name) {
            Some((p, _)) if p.kind == kind => self.ports.remove(name),
            _ => None,
        }
    }

    /// The socket handed over for the endpoint at `at`, taken out of the bank.
    pub fn take_endpoint(&mut self, at: SocketAddr) -> Option<OwnedFd> {
        self.endpoints.remove(&at)
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.endpoints.is_empty()
    }

    /// Closes what nobody claimed, naming it: a TAP uswitch created and the new
    /// configuration does not have goes with it.
    pub fn release(&mut self) {
        for (name, (p, _)) in self.ports.drain() {
            log::info!(
                "take-over: port {name} ({}) is not in this switch's configuration; its \
                 descriptor is closed",
                p.kind
            );
        }
        for (at, _) in self.endpoints.drain() {
            log::info!("take-over: VXLAN endpoint {at} is no longer used; its socket is closed");
        }
    }
}

/// What a running switch hands over: each port's device and each endpoint's socket.
pub struct Handing<'a> {
    pub ports: Vec<(HandedPort, BorrowedFd<'a>)>,
    pub endpoints: Vec<(SocketAddr, BorrowedFd<'a>)>,
}
