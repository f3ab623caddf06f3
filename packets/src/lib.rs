//! Wire formats for uswitch.
//!
//! Each format is a zero-copy view over a byte buffer in the style of smoltcp's `wire`
//! module: `new_checked` validates the lengths once, after which every accessor is
//! panic-free. [`ip::IpLayout`] locates the IP packet and its transport header in a frame
//! by one set of rules, which checksum completion, segmentation, GRO, UDP joining and the
//! VXLAN flow hash share. Nothing here allocates on the hot path or performs I/O, so the
//! forwarding core can run on byte arrays in tests, benchmarks and fuzzers exactly as it
//! does on live frames.
#![forbid(unsafe_code)]

pub mod checksum;
pub mod error;
pub mod ethernet;
pub mod gro;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod mac;
pub mod neighbor;
pub mod offload;
pub mod tcp;
pub mod udp;
pub mod vxlan;

pub use ethernet::{
    write_header, EtherType, EthernetFrame, FrameError, ETHERNET_HEADER_LEN, VLAN_TAG_LEN,
};
pub use mac::{MacAddr, MacParseError};
