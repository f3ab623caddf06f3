//! The switching brain of uswitch, with no I/O.
//!
//! A [`Forwarder`] holds the networks (isolated broadcast domains), the ports attached to
//! them, one forwarding database ([`Fdb`]) per network, and the counters. The I/O shell
//! hands it a frame, the ingress port and the current time; it answers with a
//! [`Decision`]. It never touches a file descriptor or reads a clock, so every behaviour
//! (learning, aging, eviction, move hold-down, isolation, drop reasons) is tested with byte
//! arrays and a virtual clock.

pub mod counters;
pub mod fdb;
pub mod storm;
mod switch;

pub use counters::{DropReason, NetworkStats, PortCounters};
pub use fdb::{Fdb, FdbConfig, FdbEntry, Learned};
pub use switch::{
    Decision, Forwarder, ForwarderError, LoopAlert, Network, Port, Protection,
    LOOP_ALERT_INTERVAL_MS, MAX_GSO_FRAME,
};

/// Monotonic time in milliseconds, from an origin the caller chooses.
pub type Millis = u64;

/// A port's handle inside one [`Forwarder`]. Ids are never reused while the forwarder lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u32);

/// A network's handle inside one [`Forwarder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(pub u32);
