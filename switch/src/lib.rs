//! uswitch's I/O shell: TAP ports, the event loop and the command line. The forwarding
//! decisions live in the `forwarder` crate; this crate only moves bytes.

pub mod cli;
pub mod event_loop;
pub mod tap;
