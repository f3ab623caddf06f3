//! The data plane: the loop that moves frames between the ports' devices and carries out
//! the forwarder's plans. It decides nothing about where or how a frame goes; the
//! `forwarder` crate does.
//!
//! - [`switch`]: the switch: its workers, the ports' lifecycle, worker 0's loop beside
//!   the signals and the control plane;
//! - `worker`: one worker's loop (poll, tokens, ready lists, storm rests, vanished ports);
//! - `fabric`: what the workers share (forwarder, devices, endpoints) and how each is
//!   reached (channels, wakers);
//! - `forward`: a frame's plan carried out (captures, checksum, segments, UDP joining);
//! - `overlay_rx`: VXLAN endpoints read, admitted by the forwarder, TCP GRO;
//! - [`inherited`]: the descriptors a take-over receives, used before opening anew;
//! - [`io`]: the devices (TAP, AF_PACKET, UDP tunnel sockets); [`device`]: the three
//!   behind one type; [`capture`]: pcapng captures.

pub mod capture;
pub mod device;
mod fabric;
mod forward;
pub mod inherited;
pub mod io;
mod overlay_rx;
mod port;
mod rx;
pub mod switch;
pub mod tokens;
mod worker;

pub use switch::{
    Alone, DataplaneError, EndpointView, ForwarderRead, ForwarderWrite, Handing, PortView, Sidecar,
    Switch, Workers,
};
pub use worker::BURST;
