//! uswitch's I/O shell: TAP ports, the event loop, the control socket, the command line
//! and its client subcommands. The forwarding decisions live in the `forwarder` crate;
//! this crate only moves bytes.

pub mod capture;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod control;
pub mod device;
pub mod event_loop;
pub mod launcher;
pub mod packet;
pub mod tap;
pub mod vxlan;
