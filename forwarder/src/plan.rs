//! The plan for one frame: which egresses get it and how each gets it, for the shell to
//! carry out byte for byte (quinn-proto's `Transmit` is the model). The shell moves bytes
//! and never decides where or how a frame goes.

use packets::ip::{IpLayout, PROTO_TCP};
use packets::offload::{Offload, VIRTIO_NET_HDR_LEN};
use packets::tcp::TcpPacket;
use packets::udp::UDP_HEADER_LEN;
use packets::EthernetFrame;

use crate::shared_fdb::FdbCache;
use crate::{NetworkId, PortId};

/// What sits behind a port, as far as forwarding cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortKind {
    /// A TAP interface.
    #[default]
    Tap,
    /// An existing interface through AF_PACKET.
    Uplink,
    /// A remote VTEP of an overlay network: written frames are encapsulated.
    Remote,
}

impl PortKind {
    /// "tap", "uplink" or "vxlan", as `show ports` prints it.
    pub fn name(self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
            PortKind::Uplink => "uplink",
            PortKind::Remote => "vxlan",
        }
    }
}

/// What a port's device can take on egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EgressCaps {
    pub kind: PortKind,
    /// Frames cross the device behind a virtio-net header, so GSO frames and partial
    /// checksums pass as they are.
    pub vnet_hdr: bool,
    /// UDP GSO frames (GSO type UDP_L4) may be written: a TAP whose kernel took the USO
    /// offloads, or a remote (sent with UDP GSO).
    pub udp_gso: bool,
}

/// How one egress gets the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Behind its virtio-net header, as it came: a GSO frame passes whole, a partial
    /// checksum stays partial.
    WithHeader,
    /// The complete frame alone (encapsulated for a remote).
    Frame,
    /// Cut into segments of `size` payload bytes (TCP or UDP), each written alone (for a
    /// remote, sent together with UDP GSO).
    Segments { tcp: bool, size: usize },
    /// A UDP datagram held to be joined with the datagrams of its flow that follow it in
    /// the burst (`packets::gro::UdpJoin`) and written as one UDP GSO frame. One that
    /// cannot join goes as [`Delivery::WithHeader`] when `with_header`, else as
    /// [`Delivery::Frame`].
    JoinUdp { with_header: bool },
    /// Not the frame but [`Plan::reply`], the answer the forwarder wrote in the name of
    /// an address's owner, back to the port that asked; behind a virtio-net header
    /// (already in `reply`) when `with_header`, else from the byte after it.
    Reply { with_header: bool },
}

/// What one worker keeps of its own from frame to frame: which worker it is (the tally it
/// counts in), its caches of the networks' tables, the targets of the frame being
/// planned.
#[derive(Debug, Default)]
pub struct Lane {
    pub worker: usize,
    /// By network id.
    caches: Vec<FdbCache>,
    pub(crate) scratch: Vec<PortId>,
}

impl Lane {
    pub fn new(worker: usize) -> Lane {
        Lane {
            worker,
            ..Lane::default()
        }
    }

    /// This worker's cache of `network`'s table.
    pub(crate) fn cache(&mut self, network: NetworkId) -> &mut FdbCache {
        let i = network.0 as usize;
        if self.caches.len() <= i {
            let worker = self.worker;
            self.caches
                .resize_with(i + 1, || FdbCache::for_worker(worker));
        }
        &mut self.caches[i]
    }
}

/// The plan for one frame, filled by [`crate::Forwarder::plan`] into a vector the caller
/// reuses, so planning allocates nothing per frame; and the [`Lane`] of the worker that
/// plans with it.
#[derive(Debug, Default)]
pub struct Plan {
    /// Finish the partial checksum in place first, once for every egress: it starts at
    /// `.0` and its field is `.1` bytes further on. The frame is then complete.
    pub finish_checksum: Option<(usize, usize)>,
    /// Where the frame goes, and how. Empty: dropped (and counted).
    pub egresses: Vec<(PortId, Delivery)>,
    /// The frame a [`Delivery::Reply`] writes: a virtio-net header, then an ARP reply or
    /// neighbour advertisement. Kept between frames so answering allocates nothing.
    pub reply: Vec<u8>,
    pub lane: Lane,
}

impl Plan {
    /// A plan for worker `w`.
    pub fn for_worker(w: usize) -> Plan {
        Plan {
            lane: Lane::new(w),
            ..Plan::default()
        }
    }

    pub fn clear(&mut self) {
        self.finish_checksum = None;
        self.egresses.clear();
    }

    /// The bytes a [`Delivery::Reply`] writes.
    pub fn reply_bytes(&self, with_header: bool) -> &[u8] {
        if with_header {
            &self.reply
        } else {
            self.reply.get(VIRTIO_NET_HDR_LEN..).unwrap_or_default()
        }
    }
}

/// The length every segment of a GSO frame repeats (Ethernet, IP and TCP or UDP
/// headers), and the Ethernet header's part of it; None for a frame that does not parse.
pub(crate) fn gso_headers(frame: &[u8], tcp: bool) -> Option<(usize, usize)> {
    let ip = IpLayout::of_gso_frame(frame).ok()?;
    let l2 = EthernetFrame::new_checked(frame).ok()?.header_len();
    let l4 = if tcp {
        if ip.protocol != PROTO_TCP {
            return None;
        }
        TcpPacket::new_checked(frame.get(ip.l4..)?)
            .ok()?
            .header_len()
    } else {
        UDP_HEADER_LEN
    };
    Some((ip.l4 + l4, l2))
}

/// Whether what the virtio-net header says can be done to `frame`: a partial checksum
/// inside it, a GSO frame whose headers parse and whose segments have a size. A frame
/// that breaks this is malformed whatever its egress.
pub(crate) fn offload_holds(frame: &[u8], offload: Offload) -> bool {
    match offload {
        Offload::None => true,
        Offload::Checksum { start, offset } => {
            start < frame.len() && start.saturating_add(offset).saturating_add(2) <= frame.len()
        }
        Offload::Segment { tcp, size } => size > 0 && gso_headers(frame, tcp).is_some(),
    }
}

/// Whether the largest segment of a GSO frame (`offload`) fits an MTU of `mtu` (a frame
/// that passed [`offload_holds`]).
pub(crate) fn segments_fit(frame: &[u8], offload: Offload, mtu: usize) -> bool {
    let Offload::Segment { tcp, size } = offload else {
        return true;
    };
    let Some((hdrs, l2)) = gso_headers(frame, tcp) else {
        return false;
    };
    let payload = frame.len().saturating_sub(hdrs);
    hdrs - l2 + size.min(payload) <= mtu
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DropReason, FdbConfig, Forwarder};
    use packets::{write_header, EtherType, MacAddr};

    const H1: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const H2: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    const TAP: EgressCaps = EgressCaps {
        kind: PortKind::Tap,
        vnet_hdr: true,
        udp_gso: true,
    };
    const PLAIN: EgressCaps = EgressCaps {
        kind: PortKind::Tap,
        vnet_hdr: false,
        udp_gso: false,
    };

    /// Ethernet + IPv4 + TCP (or UDP) with `payload` bytes, from `src` to `dst`.
    fn packet(dst: MacAddr, src: MacAddr, tcp: bool, payload: usize) -> Vec<u8> {
        let l4 = if tcp { 20 } else { 8 };
        let mut f = vec![0u8; 14 + 20 + l4 + payload];
        write_header(&mut f, dst, src, EtherType::IPV4).unwrap();
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((20 + l4 + payload) as u16).to_be_bytes());
        f[23] = if tcp { 6 } else { 17 };
        if tcp {
            f[46] = 0x50;
        } else {
            f[38..40].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        }
        f
    }

    /// Two ports: `a` (a TAP with offloads) and `b` with `b_caps` and MTU `b_mtu`; H2 is
    /// learned behind `b`.
    fn two(b_caps: EgressCaps, b_mtu: usize) -> (Forwarder, PortId, PortId) {
        let mut fwd = Forwarder::new(FdbConfig::default());
        let a = fwd.attach("a", "default", 1500, TAP, 0).unwrap();
        let b = fwd.attach("b", "default", b_mtu, b_caps, 0).unwrap();
        let mut plan = Plan::default();
        fwd.plan(b, &packet(H1, H2, false, 10), Offload::None, 0, &mut plan);
        (fwd, a, b)
    }

    #[test]
    fn each_egress_gets_what_it_can_take() {
        let gso = Offload::Segment {
            tcp: true,
            size: 1448,
        };
        let frame = packet(H2, H1, true, 10_000);
        let mut plan = Plan::default();
        let (fwd, a, b) = two(TAP, 1500);
        fwd.plan(a, &frame, gso, 1, &mut plan);
        assert_eq!(plan.egresses, vec![(b, Delivery::WithHeader)]);
        let (fwd, a, b) = two(PLAIN, 1500);
        fwd.plan(a, &frame, gso, 1, &mut plan);
        assert_eq!(
            plan.egresses,
            vec![(
                b,
                Delivery::Segments {
                    tcp: true,
                    size: 1448
                }
            )]
        );
        // A partial checksum is finished once for a port without the header.
        let partial = Offload::Checksum {
            start: 34,
            offset: 16,
        };
        fwd.plan(a, &packet(H2, H1, true, 100), partial, 1, &mut plan);
        assert_eq!(plan.finish_checksum, Some((34, 16)));
        assert_eq!(plan.egresses, vec![(b, Delivery::Frame)]);
    }

    /// A GSO frame whose segments are larger than the egress MTU is the same bytes as
    /// unsegmented frames that would not fit: dropped and counted, with or without the
    /// virtio-net header.
    #[test]
    fn gso_segments_must_fit_the_egress_mtu() {
        let gso = Offload::Segment {
            tcp: true,
            size: 8948,
        };
        let jumbo = packet(H2, H1, true, 40_000);
        for caps in [TAP, PLAIN] {
            let (fwd, a, b) = two(caps, 1500);
            let mut plan = Plan::default();
            fwd.plan(a, &jumbo, gso, 1, &mut plan);
            assert!(plan.egresses.is_empty(), "{caps:?}");
            let c = fwd.port(b).unwrap().counters();
            assert_eq!(c.drops(DropReason::EgressTooBig), 1);
            // Segments of 1448 fit.
            let small = Offload::Segment {
                tcp: true,
                size: 1448,
            };
            fwd.plan(a, &jumbo, small, 2, &mut plan);
            assert_eq!(plan.egresses.len(), 1);
        }
    }

    /// A partial checksum outside the frame is one drop, and the frame one reception.
    #[test]
    fn a_bad_checksum_offset_is_counted_once() {
        let (fwd, a, _) = two(PLAIN, 1500);
        let mut plan = Plan::default();
        let bad = Offload::Checksum {
            start: 34,
            offset: 400,
        };
        fwd.plan(a, &packet(H2, H1, true, 100), bad, 1, &mut plan);
        assert!(plan.egresses.is_empty());
        let c = fwd.port(a).unwrap().counters();
        assert_eq!((c.rx_frames, c.total_drops()), (1, 1));
        assert_eq!(c.drops(DropReason::BadOffload), 1);
        assert_eq!(c.rx_frames, c.forwarded + c.floods + c.rx_drops());
    }

    #[test]
    fn udp_joins_only_towards_one_port_that_takes_it() {
        let udp = packet(H2, H1, false, 64);
        let mut plan = Plan::default();
        let (mut fwd, a, b) = two(TAP, 1500);
        fwd.plan(a, &udp, Offload::None, 1, &mut plan);
        assert_eq!(
            plan.egresses,
            vec![(b, Delivery::JoinUdp { with_header: true })]
        );
        fwd.set_captured(b, true);
        fwd.plan(a, &udp, Offload::None, 1, &mut plan);
        assert_eq!(plan.egresses, vec![(b, Delivery::WithHeader)]);
        fwd.set_captured(b, false);
        fwd.set_udp_join(false);
        fwd.plan(a, &udp, Offload::None, 1, &mut plan);
        assert_eq!(plan.egresses, vec![(b, Delivery::WithHeader)]);
        // A frame to several ports is never held.
        fwd.set_udp_join(true);
        let c = fwd.attach("c", "default", 1500, TAP, 0).unwrap();
        fwd.plan(
            a,
            &packet(MacAddr::BROADCAST, H1, false, 64),
            Offload::None,
            1,
            &mut plan,
        );
        assert_eq!(
            plan.egresses,
            vec![(b, Delivery::WithHeader), (c, Delivery::WithHeader)]
        );
        let (fwd, a, b) = two(PLAIN, 1500);
        fwd.plan(a, &udp, Offload::None, 1, &mut plan);
        assert_eq!(plan.egresses, vec![(b, Delivery::Frame)]);
    }

    /// A frame handed in on a port that is gone is counted by the forwarder.
    #[test]
    fn frames_from_a_detached_port_are_counted() {
        let (mut fwd, a, _) = two(TAP, 1500);
        fwd.remove_port(a);
        let mut plan = Plan::default();
        fwd.plan(a, &packet(H2, H1, false, 10), Offload::None, 1, &mut plan);
        assert!(plan.egresses.is_empty());
        assert_eq!(fwd.unattached_drops(), 1);
    }

    /// 100 000 ports attached and detached in turn: ids are reused, so the per-port
    /// vectors (ports, FDB lists) stay as long as the most ports attached at once, and a
    /// frame costs the same at the end as at the start.
    #[test]
    fn port_churn_leaves_nothing_behind() {
        let mut fwd = Forwarder::new(FdbConfig::default());
        let keep = fwd.add_port("keep", "default", 1500).unwrap();
        let mut plan = Plan::default();
        for i in 0..100_000u32 {
            let p = fwd.add_port(&format!("c{i}"), "default", 1500).unwrap();
            let src = MacAddr([2, 1, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1]);
            fwd.plan(p, &packet(H2, src, false, 10), Offload::None, 0, &mut plan);
            fwd.plan(
                keep,
                &packet(src, H2, false, 10),
                Offload::None,
                0,
                &mut plan,
            );
            assert_eq!(plan.egresses.len(), 1);
            fwd.remove_port(p);
        }
        assert_eq!(fwd.port_slots(), 2);
        let net = fwd.network(fwd.network_id("default").unwrap()).unwrap();
        assert_eq!(net.fdb().len(), 1);
        assert!(net.fdb().port_lists() <= 2, "{}", net.fdb().port_lists());
    }
}
