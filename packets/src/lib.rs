//! Wire formats for uswitch.
//!
//! Each format is a zero-copy view over a byte buffer in the style of smoltcp's `wire`
//! module: `new_checked` validates the length once, after which every accessor is
//! panic-free. Nothing here allocates or performs I/O, so the forwarding core can run on
//! byte arrays in tests, benchmarks and fuzzers exactly as it does on live frames.

pub mod ethernet;
pub mod gro;
pub mod mac;
pub mod offload;
pub mod vxlan;

pub use ethernet::{
    write_header, EtherType, EthernetFrame, FrameError, ETHERNET_HEADER_LEN, VLAN_TAG_LEN,
};
pub use mac::{MacAddr, MacParseError};
