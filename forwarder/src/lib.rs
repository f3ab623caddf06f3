//! The switching brain of uswitch, with no I/O.
//!
//! A [`Forwarder`] holds the networks (isolated broadcast domains), the ports attached to
//! them, one forwarding database ([`Fdb`]) per network, the overlay's endpoints, and the
//! counters. The I/O shell hands it a frame, the ingress port and the current time; it
//! answers with a [`Plan`]: which egresses get the frame, and how each gets it. It never
//! touches a file descriptor or reads a clock, so every behaviour (learning, aging,
//! eviction, move hold-down, isolation, split horizon, VXLAN admission, drop reasons) is
//! tested with byte arrays and a virtual clock.
#![forbid(unsafe_code)]

pub mod counters;
mod endpoint;
pub mod fdb;
pub mod neighbors;
pub mod overlay;
pub mod plan;
pub mod shared_fdb;
pub mod storm;
mod switch;

pub use counters::{DropReason, NetworkStats, PortCounters, Tallies, Tally};
pub use fdb::{Fdb, FdbConfig, FdbEntry, Learned};
pub use neighbors::{Neighbors, Origin};
pub use overlay::{remote_port_name, Endpoint, EndpointId, VniBinding};
pub use plan::{Delivery, EgressCaps, Lane, Plan, PortKind};
pub use shared_fdb::SharedFdb;
pub use switch::{
    Decision, Forwarder, ForwarderError, LoopAlert, Network, Port, Protection,
    LOOP_ALERT_INTERVAL_MS, MAX_GSO_FRAME,
};

/// Monotonic time in milliseconds, from an origin the caller chooses.
pub type Millis = u64;

/// A port's handle inside one [`Forwarder`]. A detached port's id is given to the next
/// port attached, so the shell must forget an id when it detaches its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u32);

/// A network's handle inside one [`Forwarder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(pub u32);
