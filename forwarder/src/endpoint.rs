//! A VXLAN endpoint as the forwarder knows it: its VNIs, their remotes, and what it
//! received (see `overlay` for the decisions made with it).

use std::net::IpAddr;

use packets::vxlan::{parse_header, VxlanError};

use crate::counters::{DropReason, PortCounters, Tallies};
use crate::{NetworkId, PortId};

/// A VXLAN endpoint's handle (one per local address and UDP port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u32);

/// A VNI an endpoint carries: its network, the inner MTU, and the remotes' ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VniBinding {
    pub vni: u32,
    pub network: NetworkId,
    pub mtu: usize,
    pub remotes: Vec<(IpAddr, PortId)>,
}

/// What the forwarder knows of one endpoint: its VNIs and what it received.
#[derive(Debug)]
pub struct Endpoint {
    pub(crate) name: String,
    pub(crate) bindings: Vec<VniBinding>,
    /// Datagrams received, and those dropped before reaching a remote's port, by reason.
    pub(crate) counters: Tallies,
}

impl Endpoint {
    /// `ADDR:PORT`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bindings(&self) -> &[VniBinding] {
        &self.bindings
    }

    /// Every worker's counts added up.
    pub fn counters(&self) -> PortCounters {
        self.counters.sum()
    }

    pub(crate) fn binding(&self, vni: u32) -> Option<&VniBinding> {
        self.bindings.iter().find(|b| b.vni == vni)
    }

    /// The remote's port a datagram from `from` on `vni` enters at, or why not.
    pub(crate) fn classify(&self, datagram: &[u8], from: IpAddr) -> Result<PortId, DropReason> {
        let vni = parse_header(datagram).map_err(|e| match e {
            VxlanError::Truncated(_) => DropReason::VxlanTruncated,
            VxlanError::NoIBit(_) => DropReason::VxlanNoIBit,
            VxlanError::ReservedBits => DropReason::VxlanReservedBits,
        })?;
        let binding = self.binding(vni).ok_or(DropReason::VxlanUnknownVni)?;
        // An IPv4 sender on an IPv6 socket arrives mapped; compare like with like.
        let from = match from {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        binding
            .remotes
            .iter()
            .find(|(r, _)| *r == from)
            .map(|&(_, p)| p)
            .ok_or(DropReason::VxlanUnknownRemote)
    }
}
