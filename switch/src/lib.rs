//! uswitch's shell: the data plane that moves frames, the control plane that every front
//! end speaks to, the configuration, the command line, and the namespace launcher. The
//! forwarding decisions live in the `forwarder` crate; the wire formats in `packets`.
//!
//! The modules, and the one way their arrows point:
//!
//! ```text
//! cli ──> control ──> dataplane ──> (forwarder ──> packets)
//!  │    ↗ ↗  │            │
//! docker │   ├──> launcher│ <── cni (the uswitch-cni plugin)
//!  │    cni  ├──> firewall, state_file
//!  └──> config <──────────┘
//! ```
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cli;
pub mod cluster;
pub mod cni;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod docker;
pub mod firewall;
pub mod launcher;
pub mod metrics;
pub mod state_file;
