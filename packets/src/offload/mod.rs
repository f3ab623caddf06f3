//! Offloads done in software, for an egress that cannot take them as they came: the
//! virtio-net header that AF_PACKET (`PACKET_VNET_HDR`) and TAP (`IFF_VNET_HDR`) put
//! before a frame (here), checksum completion for frames whose L4 checksum the sender
//! left partial ([`checksum`]), and segmentation of GSO frames bigger than the MTU
//! ([`segment`]).

pub mod checksum;
pub mod segment;

pub use checksum::{complete_checksum, finish_partial, L4Checksum};
pub use segment::{
    segment_gso, segment_headers, segment_tcp, segment_udp, tcp_gso_header, Segments,
};

/// `struct virtio_net_hdr` without the mergeable-buffers field: 10 bytes.
pub const VIRTIO_NET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum is partial.
pub const F_NEEDS_CSUM: u8 = 1;
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
pub const GSO_ECN: u8 = 0x80;

/// The fields of a virtio-net header (little-endian on the wire, as on x86 and ARM hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VirtioNetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VirtioNetHdr {
    pub fn parse(b: &[u8]) -> Option<VirtioNetHdr> {
        let b = b.get(..VIRTIO_NET_HDR_LEN)?;
        let u = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VirtioNetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    pub fn emit(&self) -> [u8; VIRTIO_NET_HDR_LEN] {
        let mut b = [0u8; VIRTIO_NET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }

    /// What the header says must still be done to its frame; `None` for a GSO type
    /// uswitch does not know (UFO, or anything newer).
    pub fn offload(&self) -> Option<Offload> {
        Some(match self.gso_type & !GSO_ECN {
            GSO_NONE if self.flags & F_NEEDS_CSUM != 0 => Offload::Checksum {
                start: self.csum_start as usize,
                offset: self.csum_offset as usize,
            },
            GSO_NONE => Offload::None,
            GSO_TCPV4 | GSO_TCPV6 => Offload::Segment {
                tcp: true,
                size: self.gso_size as usize,
            },
            GSO_UDP_L4 => Offload::Segment {
                tcp: false,
                size: self.gso_size as usize,
            },
            _ => return None,
        })
    }
}

/// What a frame's virtio-net header says is still to be done to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offload {
    /// A complete frame.
    None,
    /// The L4 checksum is partial: the field at `start + offset` holds the pseudo-header
    /// sum.
    Checksum { start: usize, offset: usize },
    /// A GSO frame: segments of `size` payload bytes, TCP or UDP.
    Segment { tcp: bool, size: usize },
}

impl Offload {
    /// Whether the frame stands for several segments.
    pub fn is_gso(&self) -> bool {
        matches!(self, Offload::Segment { .. })
    }
}

/// Why a frame could not be finished in software.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// The checksum location lies outside the frame.
    #[error("partial checksum at {start}+{offset} outside a {len}-byte frame")]
    BadChecksumOffsets {
        start: usize,
        offset: usize,
        len: usize,
    },
    /// The headers of a GSO frame do not parse as Ethernet/IP/TCP or UDP.
    #[error("GSO frame with malformed headers")]
    Malformed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{fold, internet as internet_checksum, sum16};
    use crate::ip::IpLayout;

    fn pseudo_sum(seg: &[u8], _l3: usize, _v4: bool, proto: u8, l4_len: usize) -> u32 {
        let mut ip = IpLayout::of_gso_frame(seg).unwrap();
        ip.protocol = proto;
        ip.pseudo_sum(seg, l4_len)
    }

    /// A frame as a kernel hands it to a veth with the checksum offloaded: the field
    /// holds the pseudo-header sum. uswitch finishes it; a corrupted one stays wrong.
    #[test]
    fn partial_checksums_are_finished_and_bad_ones_left() {
        // A SYN as a kernel container sent it through a kernel VXLAN over a veth (the
        // addresses, ports, lengths and checksum field as captured).
        let mut syn = vec![
            0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00, // Ethernet
            0x45, 0, 0, 60, 0x3f, 0xf9, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1, 0xc5,
            0x86, 0, 80, 0x4e, 0xb4, 0x5d, 0x6a, 0, 0, 0, 0, 0xa0, 0x02, 0xfd, 0x5c, 0x8c, 0x56, 0,
            0, // checksum: the pseudo-header sum
            2, 4, 5, 0x82, 4, 2, 8, 10, 0xf2, 0xcb, 0x4b, 0x42, 0, 0, 0, 0, 1, 3, 3, 10,
        ];
        let ip = internet_checksum(&syn[14..34]);
        syn[24..26].copy_from_slice(&ip.to_be_bytes());
        assert_eq!(finish_partial(&mut syn), L4Checksum::Finished);
        assert_eq!(finish_partial(&mut syn), L4Checksum::Valid);
        syn[60] ^= 0xff;
        assert_eq!(finish_partial(&mut syn), L4Checksum::Invalid);
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(finish_partial(&mut arp), L4Checksum::NotApplicable);
        for n in 0..syn.len() {
            let mut cut = syn[..n].to_vec();
            finish_partial(&mut cut);
        }
    }

    /// An Ethernet + IPv4 + TCP frame with `payload` bytes of data and correct checksums.
    fn tcp4(payload: usize, flags: u8) -> Vec<u8> {
        let mut f = vec![
            0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00, // Ethernet
            0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0,
            2, // IPv4
            0x13, 0x88, 0xc0, 0x00, 0, 0, 0x10, 0, 0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0,
            0, // TCP
        ];
        f.extend((0..payload).map(|i| (i % 251) as u8));
        let total = (20 + 20 + payload) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f
    }

    fn tcp6(payload: usize) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, 6, 64]);
        f.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[
            0x13, 0x88, 0xc0, 0x00, 0, 0, 0x10, 0, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        f.extend((0..payload).map(|i| (i % 253) as u8));
        let plen = (20 + payload) as u16;
        f[18..20].copy_from_slice(&plen.to_be_bytes());
        f
    }

    /// Whether the IPv4 header and TCP checksums of `seg` verify.
    fn verifies(seg: &[u8], v4: bool) -> bool {
        let l3 = 14;
        let (ip_len, pseudo) = if v4 {
            if internet_checksum(&seg[l3..l3 + 20]) != 0 {
                return false;
            }
            (20, sum16(0, &seg[l3 + 12..l3 + 20]))
        } else {
            (40, sum16(0, &seg[l3 + 8..l3 + 40]))
        };
        let tcp = &seg[l3 + ip_len..];
        let acc = pseudo + 6 + tcp.len() as u32;
        !fold(sum16(acc, tcp)) == 0
    }

    /// A whole TCP GSO packet gets a header that makes it one again; a single segment,
    /// a packet whose IP length does not span the frame, or not TCP, gets none.
    #[test]
    fn tcp_gso_headers_for_whole_gso_packets() {
        let h = tcp_gso_header(&tcp4(4000, 0x10), 1398).expect("a GSO packet");
        assert_eq!((h.gso_type, h.gso_size, h.hdr_len), (GSO_TCPV4, 1398, 54));
        assert_eq!(
            (h.flags, h.csum_start, h.csum_offset),
            (F_NEEDS_CSUM, 34, 16)
        );
        let h6 = tcp_gso_header(&tcp6(4000), 1398).expect("a GSO packet");
        assert_eq!(
            (h6.gso_type, h6.hdr_len, h6.csum_start),
            (GSO_TCPV6, 74, 54)
        );
        assert_eq!(tcp_gso_header(&tcp4(1000, 0x10), 1398), None);
        let mut padded = tcp4(4000, 0x10);
        padded.push(0);
        assert_eq!(tcp_gso_header(&padded, 1398), None);
        assert_eq!(tcp_gso_header(&udp(true, 4000), 1398), None);
        for n in 0..80 {
            tcp_gso_header(&tcp4(4000, 0x10)[..n], 1);
        }
    }

    #[test]
    fn virtio_header_round_trips() {
        let h = VirtioNetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let b = h.emit();
        assert_eq!(b, [1, 1, 54, 0, 0xa8, 0x05, 34, 0, 16, 0]);
        assert_eq!(VirtioNetHdr::parse(&b), Some(h));
        assert_eq!(VirtioNetHdr::parse(&b[..9]), None);
    }

    #[test]
    fn completes_a_partial_tcp_checksum() {
        // Build a frame, compute its real checksum, then replace it with the
        // pseudo-header seed as a sender with checksum offload leaves it.
        let mut f = tcp4(100, 0x18);
        let mut segs = Vec::new();
        segment_tcp(&f, 1500, &mut Vec::new(), |s| segs.push(s.to_vec())).unwrap();
        let good = segs.remove(0);
        assert!(verifies(&good, true));
        let tcp_len = (20 + 100) as u32;
        let seed = fold(sum16(0, &f[26..34]) + 6 + tcp_len);
        f[24..26].copy_from_slice(&good[24..26]); // IPv4 header checksum
        f[50..52].copy_from_slice(&seed.to_be_bytes());
        complete_checksum(&mut f, 34, 16).unwrap();
        assert_eq!(f, good);
        assert!(complete_checksum(&mut f, 34, 200).is_err());
        assert!(complete_checksum(&mut f, 400, 0).is_err());
    }

    #[test]
    fn segments_tcp_over_ipv4() {
        let f = tcp4(4000, 0x19); // ACK + PSH + FIN
        let mut segs = Vec::new();
        let n = segment_tcp(&f, 1448, &mut Vec::new(), |s| segs.push(s.to_vec())).unwrap();
        assert_eq!(n, 3);
        let sizes: Vec<usize> = segs.iter().map(|s| s.len() - 54).collect();
        assert_eq!(sizes, vec![1448, 1448, 1104]);
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            assert!(verifies(s, true), "segment {i}");
            let seq = u32::from_be_bytes([s[38], s[39], s[40], s[41]]);
            assert_eq!(seq, 0x1000 + i as u32 * 1448);
            let flags = s[47];
            assert_eq!(flags & 0x09 != 0, i == 2, "FIN/PSH only on the last");
            assert_eq!(u16::from_be_bytes([s[16], s[17]]) as usize, s.len() - 14);
            assert_eq!(u16::from_be_bytes([s[18], s[19]]), 0x1234 + i as u16);
            joined.extend_from_slice(&s[54..]);
        }
        assert_eq!(&joined[..], &f[54..]);
    }

    #[test]
    fn segments_tcp_over_ipv6() {
        let f = tcp6(3000);
        let mut segs = Vec::new();
        let n = segment_tcp(&f, 1440, &mut Vec::new(), |s| segs.push(s.to_vec())).unwrap();
        assert_eq!(n, 3);
        for s in &segs {
            assert!(verifies(s, false));
            assert_eq!(u16::from_be_bytes([s[18], s[19]]) as usize, s.len() - 54);
        }
    }

    /// Ethernet + IPv4 or IPv6 + UDP with `payload` bytes and a zero checksum.
    fn udp(v4: bool, payload: usize) -> Vec<u8> {
        let mut f = if v4 {
            let mut t = tcp4(0, 0);
            t.truncate(34);
            t[23] = 17;
            t
        } else {
            let mut t = tcp6(0);
            t.truncate(54);
            t[20] = 17;
            t
        };
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x09, 0, 0, 0, 0]);
        f.extend((0..payload).map(|i| (i % 241) as u8));
        let l4 = f.len() - payload - 8;
        f[l4 + 4..l4 + 6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        if v4 {
            f[16..18].copy_from_slice(&((20 + 8 + payload) as u16).to_be_bytes());
        } else {
            f[18..20].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        }
        f
    }

    fn udp_verifies(seg: &[u8], v4: bool) -> bool {
        let (l3, ip_len) = (14, if v4 { 20 } else { 40 });
        if v4 && internet_checksum(&seg[l3..l3 + 20]) != 0 {
            return false;
        }
        let udp = &seg[l3 + ip_len..];
        u16::from_be_bytes([udp[4], udp[5]]) as usize == udp.len()
            && !fold(sum16(pseudo_sum(seg, l3, v4, 17, udp.len()), udp)) == 0
    }

    #[test]
    fn segments_udp_over_ipv4_and_ipv6() {
        for v4 in [true, false] {
            let f = udp(v4, 3000);
            let mut segs = Vec::new();
            let n = segment_udp(&f, 1200, &mut Vec::new(), |s| segs.push(s.to_vec())).unwrap();
            assert_eq!(n, 3);
            let hdrs = if v4 { 42 } else { 62 };
            let mut joined = Vec::new();
            for s in &segs {
                assert!(udp_verifies(s, v4), "v4={v4}");
                joined.extend_from_slice(&s[hdrs..]);
            }
            assert_eq!(&joined[..], &f[hdrs..]);
            assert_eq!(segs[2].len() - hdrs, 600);
        }
    }

    #[test]
    fn completes_partial_udp_checksums_over_ipv4_and_ipv6() {
        for v4 in [true, false] {
            let mut f = udp(v4, 333);
            let (l3, ip_len) = (14, if v4 { 20 } else { 40 });
            let l4 = l3 + ip_len;
            if v4 {
                let c = internet_checksum(&f[l3..l3 + 20]);
                f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
            }
            // The sender leaves the pseudo-header sum in the checksum field.
            let seed = fold(pseudo_sum(&f, l3, v4, 17, f.len() - l4));
            f[l4 + 6..l4 + 8].copy_from_slice(&seed.to_be_bytes());
            complete_checksum(&mut f, l4, 6).unwrap();
            assert!(udp_verifies(&f, v4), "v4={v4}");
        }
    }

    #[test]
    fn refuses_what_is_not_tcp() {
        let mut f = tcp4(100, 0x10);
        f[23] = 17; // UDP
        assert_eq!(
            segment_tcp(&f, 1000, &mut Vec::new(), |_| {}),
            Err(OffloadError::Malformed)
        );
        assert_eq!(
            segment_tcp(&f[..20], 1000, &mut Vec::new(), |_| {}),
            Err(OffloadError::Malformed)
        );
        assert_eq!(
            segment_tcp(&tcp4(10, 0x10), 0, &mut Vec::new(), |_| {}),
            Err(OffloadError::Malformed)
        );
    }

    proptest::proptest! {
        /// Any TCP or UDP GSO frame, cut at any size, gives segments that each verify,
        /// are no longer than asked, and carry the payload in order.
        #[test]
        fn segmentation_keeps_the_payload(v4 in proptest::bool::ANY, is_tcp in proptest::bool::ANY,
                                          len in 0usize..9000, size in 1usize..2000) {
            let (frame, hdrs) = match (is_tcp, v4) {
                (true, true) => (tcp4(len, 0x18), 54),
                (true, false) => (tcp6(len), 74),
                (false, true) => (udp(true, len), 42),
                (false, false) => (udp(false, len), 62),
            };
            let mut segs = Vec::new();
            let n = segment_gso(&frame, is_tcp, size, &mut Vec::new(), |s| segs.push(s.to_vec()))
                .unwrap();
            proptest::prop_assert_eq!(n, len.div_ceil(size).max(1));
            let mut joined = Vec::new();
            for s in &segs {
                let ok = if is_tcp { verifies(s, v4) } else { udp_verifies(s, v4) };
                proptest::prop_assert!(ok);
                proptest::prop_assert!(s.len() - hdrs <= size);
                joined.extend_from_slice(&s[hdrs..]);
            }
            proptest::prop_assert_eq!(&joined[..], &frame[hdrs..]);
            // Gathered (headers built behind room for a VXLAN header, the payload left
            // where it lies), each segment is byte for byte the copied one.
            let mut heads = Vec::new();
            let gathered = segment_headers(&frame, is_tcp, size, 8, &mut heads).unwrap();
            proptest::prop_assert_eq!(gathered.count, n);
            proptest::prop_assert_eq!(gathered.header_len, hdrs);
            for (i, (head, seg)) in heads.chunks_exact(8 + hdrs).zip(&segs).enumerate() {
                proptest::prop_assert_eq!(&head[..8], &[0u8; 8][..]);
                let mut whole = head[8..].to_vec();
                whole.extend_from_slice(gathered.payload(&frame, i));
                proptest::prop_assert_eq!(&whole, seg);
            }
        }
    }
}
