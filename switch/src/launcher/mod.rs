//! The namespace launcher (`uswitch run/ps/rm/exec`): Docker-like containers that are
//! network namespaces with one TAP per network.
//!
//! The switch keeps the record and hands out addresses ([`ipam`]); the client creates
//! the namespace, moves the TAPs in and runs commands there ([`netns`]), because the
//! switch itself never leaves its own namespace.

pub mod ipam;
pub mod netns;

pub use ipam::{validate_container_name, Container, Containers, Interface, Subnet};
