//! The overlay's decisions: which network a VNI carries at an endpoint, which remote a
//! datagram comes from (and so which port its inner frame enters at), what is dropped
//! before that, and the split-horizon group of each network's remotes.
//!
//! Each remote of an overlay network is a forwarder port, so learning of remote MACs,
//! aging, counters and flooding (head-end replication) are the core switch's. The remotes
//! of one network share a split-horizon group: what comes from the overlay never goes back
//! into it.

use std::net::IpAddr;

use crate::counters::DropReason;
pub use crate::endpoint::{Endpoint, EndpointId, VniBinding};
use crate::plan::{EgressCaps, PortKind};
use crate::switch::{Forwarder, ForwarderError};
use crate::{NetworkId, PortId};

/// The port name of a remote of a VNI: `vx42:198.18.1.2`, `vx42:[2001:db8::2]`.
pub fn remote_port_name(vni: u32, remote: IpAddr) -> String {
    match remote {
        IpAddr::V4(a) => format!("vx{vni}:{a}"),
        IpAddr::V6(a) => format!("vx{vni}:[{a}]"),
    }
}

impl Forwarder {
    /// Registers an endpoint called `name` (`ADDR:PORT`).
    pub fn add_endpoint(&mut self, name: &str) -> EndpointId {
        self.overlay.push(Endpoint {
            name: name.to_string(),
            bindings: Vec::new(),
            counters: crate::counters::Tallies::new(self.workers),
        });
        EndpointId((self.overlay.len() - 1) as u32)
    }

    pub fn endpoint(&self, id: EndpointId) -> Option<&Endpoint> {
        self.overlay.get(id.0 as usize)
    }

    pub fn endpoints(&self) -> impl Iterator<Item = (EndpointId, &Endpoint)> {
        self.overlay
            .iter()
            .enumerate()
            .map(|(i, e)| (EndpointId(i as u32), e))
    }

    /// Makes `vni` at `endpoint` carry `network` (created if new) with inner MTU `mtu`.
    /// A network rides one overlay at most, and a VNI carries one network per endpoint.
    pub fn bind_vni(
        &mut self,
        endpoint: EndpointId,
        vni: u32,
        network: &str,
        mtu: usize,
    ) -> Result<NetworkId, ForwarderError> {
        let net = self.network_id(network);
        for ep in &self.overlay {
            if let Some(b) = ep.bindings.iter().find(|b| Some(b.network) == net) {
                return Err(ForwarderError::NetworkOnOverlay {
                    network: network.to_string(),
                    endpoint: ep.name.clone(),
                    vni: b.vni,
                });
            }
        }
        let ep = self
            .overlay
            .get(endpoint.0 as usize)
            .ok_or(ForwarderError::NoSuchEndpoint)?;
        if let Some(b) = ep.binding(vni) {
            let carried = self
                .network(b.network)
                .map_or("?", |n| n.name())
                .to_string();
            return Err(ForwarderError::VniInUse {
                vni,
                endpoint: ep.name.clone(),
                network: carried,
            });
        }
        let net = self.network_named(network);
        self.overlay[endpoint.0 as usize].bindings.push(VniBinding {
            vni,
            network: net,
            mtu,
            remotes: Vec::new(),
        });
        Ok(net)
    }

    /// Attaches the remote `remote` of `vni` at `endpoint` as a port of the VNI's network,
    /// in the split-horizon group of the network's remotes.
    pub fn add_remote(
        &mut self,
        endpoint: EndpointId,
        vni: u32,
        remote: IpAddr,
    ) -> Result<PortId, ForwarderError> {
        let ep = self
            .overlay
            .get(endpoint.0 as usize)
            .ok_or(ForwarderError::NoSuchEndpoint)?;
        let b = ep.binding(vni).ok_or(ForwarderError::NoSuchVni(vni))?;
        if b.remotes.iter().any(|(r, _)| *r == remote) {
            return Err(ForwarderError::DuplicateRemote { vni, remote });
        }
        let (network, mtu) = (b.network, b.mtu);
        let name = self
            .network(network)
            .map(|n| n.name().to_string())
            .unwrap_or_default();
        let caps = EgressCaps {
            kind: PortKind::Remote,
            vnet_hdr: false,
            udp_gso: true,
        };
        // One group per network: a remote's frames never go to another remote of it.
        let horizon = network.0 + 1;
        let id = self.attach(&remote_port_name(vni, remote), &name, mtu, caps, horizon)?;
        if let Some(b) = self.overlay[endpoint.0 as usize]
            .bindings
            .iter_mut()
            .find(|b| b.vni == vni)
        {
            b.remotes.push((remote, id));
        }
        Ok(id)
    }

    /// Forgets `vni` at `endpoint`; returns the remotes' ports for the caller to detach
    /// (undoing a half-made overlay).
    pub fn unbind_vni(&mut self, endpoint: EndpointId, vni: u32) -> Vec<PortId> {
        let Some(ep) = self.overlay.get_mut(endpoint.0 as usize) else {
            return Vec::new();
        };
        let Some(i) = ep.bindings.iter().position(|b| b.vni == vni) else {
            return Vec::new();
        };
        ep.bindings
            .remove(i)
            .remotes
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// The remote's port at which the inner frame of `datagram` (a VXLAN header and an
    /// inner frame) from `from` enters, or why it is dropped. Counts the datagram on the
    /// endpoint (as worker `w`), and the drop.
    pub fn admit_vxlan(
        &self,
        w: usize,
        endpoint: EndpointId,
        datagram: &[u8],
        from: IpAddr,
    ) -> Result<PortId, DropReason> {
        let Some(ep) = self.overlay.get(endpoint.0 as usize) else {
            self.unattached();
            return Err(DropReason::VxlanUnknownVni);
        };
        let tally = ep.counters.of(w);
        tally.received(datagram.len());
        let verdict = ep.classify(datagram, from);
        if let Err(reason) = verdict {
            tally.count_drop(reason);
        }
        verdict
    }

    /// Counts, as worker `w`, a read refused whole at `endpoint` (`len` bytes) under
    /// `reason`.
    pub fn refuse_vxlan(&self, w: usize, endpoint: EndpointId, len: usize, reason: DropReason) {
        if let Some(ep) = self.overlay.get(endpoint.0 as usize) {
            let tally = ep.counters.of(w);
            tally.received(len);
            tally.count_drop(reason);
        }
    }

    /// The segment size of a whole GSO packet that arrived from the overlay in one
    /// datagram on `ingress`: the sender's, when the kernel says it (`gro_segment`, UDP
    /// GRO), else what the overlay's MTU leaves after the packet's `headers` (IP and TCP).
    pub fn tunnel_segment_size(
        &self,
        ingress: PortId,
        headers: usize,
        gro_segment: Option<usize>,
    ) -> u16 {
        let mss = gro_segment.unwrap_or_else(|| {
            self.port(ingress)
                .map_or(0, |p| p.mtu().saturating_sub(headers))
        });
        u16::try_from(mss.max(1)).unwrap_or(u16::MAX)
    }

    /// Forgets `port` as a remote (it was detached).
    pub(crate) fn forget_remote(&mut self, port: PortId) {
        for ep in &mut self.overlay {
            for b in &mut ep.bindings {
                b.remotes.retain(|&(_, p)| p != port);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FdbConfig;

    fn header(vni: u32) -> [u8; 8] {
        let mut h = [0u8; 8];
        packets::vxlan::write_header(&mut h, vni);
        h
    }

    #[test]
    fn admits_configured_remotes_only_and_counts_the_rest() {
        let mut fwd = Forwarder::new(FdbConfig::default());
        let ep = fwd.add_endpoint("198.18.1.1:4789");
        fwd.bind_vni(ep, 42, "default", 1450).unwrap();
        let r2: IpAddr = "198.18.1.2".parse().unwrap();
        let r3: IpAddr = "198.18.1.3".parse().unwrap();
        let p2 = fwd.add_remote(ep, 42, r2).unwrap();
        let p3 = fwd.add_remote(ep, 42, r3).unwrap();
        assert_eq!(fwd.port(p2).unwrap().name(), "vx42:198.18.1.2");
        assert_eq!(
            fwd.port(p2).unwrap().horizon(),
            fwd.port(p3).unwrap().horizon()
        );
        assert_eq!(fwd.port(p2).unwrap().mtu(), 1450);
        assert_eq!(fwd.admit_vxlan(0, ep, &header(42), r2), Ok(p2));
        let mapped: IpAddr = "::ffff:198.18.1.3".parse().unwrap();
        assert_eq!(fwd.admit_vxlan(0, ep, &header(42), mapped), Ok(p3));
        let stranger: IpAddr = "198.18.1.9".parse().unwrap();
        assert_eq!(
            fwd.admit_vxlan(0, ep, &header(42), stranger),
            Err(DropReason::VxlanUnknownRemote)
        );
        assert_eq!(
            fwd.admit_vxlan(0, ep, &header(7), r2),
            Err(DropReason::VxlanUnknownVni)
        );
        assert_eq!(
            fwd.admit_vxlan(0, ep, &[8, 0], r2),
            Err(DropReason::VxlanTruncated)
        );
        let c = fwd.endpoint(ep).unwrap().counters();
        assert_eq!(c.rx_frames, 5);
        assert_eq!(c.total_drops(), 3);
        // A detached remote no longer admits.
        fwd.remove_port(p2);
        assert_eq!(
            fwd.admit_vxlan(0, ep, &header(42), r2),
            Err(DropReason::VxlanUnknownRemote)
        );
    }

    #[test]
    fn refuses_what_would_mix_overlays() {
        let mut fwd = Forwarder::new(FdbConfig::default());
        let a = fwd.add_endpoint("198.18.1.1:4789");
        let b = fwd.add_endpoint("198.18.1.1:8472");
        fwd.bind_vni(a, 42, "blue", 1450).unwrap();
        let r: IpAddr = "198.18.1.2".parse().unwrap();
        fwd.add_remote(a, 42, r).unwrap();
        assert!(matches!(
            fwd.add_remote(a, 42, r),
            Err(ForwarderError::DuplicateRemote { vni: 42, .. })
        ));
        assert!(matches!(
            fwd.bind_vni(a, 42, "green", 1450),
            Err(ForwarderError::VniInUse { vni: 42, .. })
        ));
        assert!(matches!(
            fwd.bind_vni(b, 43, "blue", 1450),
            Err(ForwarderError::NetworkOnOverlay { vni: 42, .. })
        ));
        assert!(matches!(
            fwd.add_remote(a, 9, r),
            Err(ForwarderError::NoSuchVni(9))
        ));
        // Undoing a binding hands back its remotes for the caller to detach.
        let ports = fwd.unbind_vni(a, 42);
        assert_eq!(ports.len(), 1);
        for p in ports {
            fwd.remove_port(p);
        }
        fwd.bind_vni(b, 43, "blue", 1450).unwrap();
    }
}
