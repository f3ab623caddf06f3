//! The data plane: the loop that moves frames between the ports' devices and carries out
//! the forwarder's plans. It decides nothing about where or how a frame goes; the
//! `forwarder` crate does.
//!
//! - [`switch`]: the loop (poll, tokens, ready lists, signals, storm rests) and the
//!   ports' lifecycle;
//! - `forward`: a frame's plan carried out (captures, checksum, segments, UDP joining);
//! - `overlay_rx`: VXLAN endpoints read, admitted by the forwarder, TCP GRO;
//! - [`inherited`]: the descriptors a take-over receives, used before opening anew;
//! - [`io`]: the devices (TAP, AF_PACKET, UDP tunnel sockets); [`device`]: the three
//!   behind one type; [`capture`]: pcapng captures.

pub mod capture;
pub mod device;
mod forward;
pub mod inherited;
pub mod io;
mod overlay_rx;
mod port;
mod rx;
pub mod switch;
pub mod tokens;

pub use switch::{Alone, DataplaneError, EndpointView, PortView, Sidecar, Switch, BURST};
