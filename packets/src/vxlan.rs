//! VXLAN (RFC 7348): the 8-byte header between the outer UDP header and the inner
//! Ethernet frame, and the inner flow hash that picks the UDP source port. Also the UDP
//! header and its IPv4/IPv6 checksums for a sender that writes its own (test tools, the
//! fuzzer; uswitch's UDP sockets let the kernel write them).
//!
//! ```text
//!  0                   1                   2                   3
//! |R|R|R|R|I|R|R|R|            reserved (24 bits)                 |
//! |            VXLAN network identifier (VNI)     |   reserved    |
//! ```
//!
//! The Linux vxlan driver drops a datagram whose flags are anything but `0x08` or whose
//! last byte is not zero, so uswitch sends exactly that and checks the same on receive,
//! telling the two mistakes apart so they are counted separately.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ethernet::{EtherType, EthernetFrame};
use crate::offload::{fold, sum16};

/// The VXLAN header's length.
pub const VXLAN_HEADER_LEN: usize = 8;
/// The UDP header's length.
pub const UDP_HEADER_LEN: usize = 8;
/// What uswitch writes in front of an inner frame: UDP then VXLAN.
pub const ENCAP_LEN: usize = UDP_HEADER_LEN + VXLAN_HEADER_LEN;
/// The IANA port for VXLAN (the kernel's own default, without `dstport`, is 8472).
pub const IANA_PORT: u16 = 4789;
/// The I flag: the VNI is valid.
pub const FLAG_I: u8 = 0x08;
/// The largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;
/// Outer overhead on an IPv4 underlay: IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
pub const OVERHEAD_V4: usize = 50;
/// Outer overhead on an IPv6 underlay: IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14.
pub const OVERHEAD_V6: usize = 70;
/// The UDP source ports used for hashed flows (the kernel's default ephemeral range).
pub const SOURCE_PORTS: (u16, u16) = (32768, 60999);

/// Why a datagram is not a VXLAN frame uswitch accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VxlanError {
    /// Shorter than the VXLAN header.
    #[error("{0}-byte datagram is shorter than the 8-byte VXLAN header")]
    Truncated(usize),
    /// The I flag is clear: the VNI means nothing.
    #[error("VXLAN flags {0:#04x} lack the I bit")]
    NoIBit(u8),
    /// Flags other than I, or a reserved field, are set.
    #[error("VXLAN header has reserved bits set")]
    ReservedBits,
}

/// Parses the VXLAN header at the start of `datagram` (a UDP payload) and returns the
/// VNI; the inner frame follows at [`VXLAN_HEADER_LEN`].
pub fn parse_header(datagram: &[u8]) -> Result<u32, VxlanError> {
    let Some(h) = datagram.get(..VXLAN_HEADER_LEN) else {
        return Err(VxlanError::Truncated(datagram.len()));
    };
    if h[0] & FLAG_I == 0 {
        return Err(VxlanError::NoIBit(h[0]));
    }
    if h[0] != FLAG_I || h[1] != 0 || h[2] != 0 || h[3] != 0 || h[7] != 0 {
        return Err(VxlanError::ReservedBits);
    }
    Ok(u32::from_be_bytes([0, h[4], h[5], h[6]]))
}

/// Writes the VXLAN header for `vni` (its top byte is ignored).
pub fn write_header(out: &mut [u8; VXLAN_HEADER_LEN], vni: u32) {
    let v = vni.to_be_bytes();
    *out = [FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0];
}

/// Writes the UDP and VXLAN headers that go in front of a `payload_len`-byte inner
/// frame, with a zero UDP checksum (see [`udp_checksum_v6`] for IPv6).
pub fn write_encap(
    out: &mut [u8; ENCAP_LEN],
    src_port: u16,
    dst_port: u16,
    vni: u32,
    payload_len: usize,
) {
    let udp_len = (ENCAP_LEN + payload_len).min(u16::MAX as usize) as u16;
    out[0..2].copy_from_slice(&src_port.to_be_bytes());
    out[2..4].copy_from_slice(&dst_port.to_be_bytes());
    out[4..6].copy_from_slice(&udp_len.to_be_bytes());
    out[6..8].fill(0);
    let mut vx = [0u8; VXLAN_HEADER_LEN];
    write_header(&mut vx, vni);
    out[8..].copy_from_slice(&vx);
}

/// The UDP checksum over IPv6 of a datagram made of `head` (the UDP header, checksum
/// field zero, and whatever follows it) and `rest`, ready to store in the header. IPv6
/// forbids a zero UDP checksum, so zero is sent as `0xffff`.
pub fn udp_checksum_v6(src: &Ipv6Addr, dst: &Ipv6Addr, head: &[u8], rest: &[u8]) -> u16 {
    let len = (head.len() + rest.len()) as u32;
    let mut acc = sum16(0, &src.octets());
    acc = sum16(acc, &dst.octets());
    acc += (len >> 16) + (len & 0xffff) + 17;
    acc = sum16(acc, head);
    acc = sum16_from(acc, rest, head.len() % 2 == 1);
    match !fold(acc) {
        0 => 0xffff,
        c => c,
    }
}

/// The UDP checksum over IPv4 (optional there; uswitch sends zero, as the kernel does by
/// default, and accepts both).
pub fn udp_checksum_v4(src: &Ipv4Addr, dst: &Ipv4Addr, head: &[u8], rest: &[u8]) -> u16 {
    let len = (head.len() + rest.len()) as u32;
    let mut acc = sum16(0, &src.octets());
    acc = sum16(acc, &dst.octets());
    acc += len + 17;
    acc = sum16(acc, head);
    acc = sum16_from(acc, rest, head.len() % 2 == 1);
    match !fold(acc) {
        0 => 0xffff,
        c => c,
    }
}

/// Adds `data` to a running sum that ended on an odd byte (`odd`): that byte was summed
/// as the high half of a word whose low half is `data`'s first byte, after which the rest
/// is aligned again.
fn sum16_from(acc: u32, data: &[u8], odd: bool) -> u32 {
    match data.split_first() {
        Some((&first, tail)) if odd => fold32(acc + first as u32, sum16(0, tail)),
        _ => fold32(acc, sum16(0, data)),
    }
}

fn fold32(a: u32, b: u32) -> u32 {
    fold(a) as u32 + fold(b) as u32
}

/// A hash of the inner flow: MAC addresses and EtherType, plus IP addresses, protocol
/// and ports when the frame carries IPv4 or IPv6. Frames of one flow hash alike, so they
/// take one UDP source port and one path through an ECMP underlay. Any input is fine.
pub fn flow_hash(frame: &[u8]) -> u32 {
    let mut h = Fnv::new();
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        h.write(frame.get(..12).unwrap_or(frame));
        return h.finish();
    };
    h.write(&eth.dst().0);
    h.write(&eth.src().0);
    let ethertype = eth.ethertype();
    h.write(&ethertype.0.to_be_bytes());
    let ip = eth.payload();
    let (addrs, proto, l4) = if ethertype == EtherType::IPV4 && ip.len() >= 20 {
        let ihl = ((ip[0] & 0x0f) as usize) * 4;
        // Later fragments carry no ports.
        let first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
        let l4 = if first_fragment { ip.get(ihl..) } else { None };
        (&ip[12..20], ip[9], l4)
    } else if ethertype == EtherType::IPV6 && ip.len() >= 40 {
        (&ip[8..40], ip[6], ip.get(40..))
    } else {
        return h.finish();
    };
    h.write(addrs);
    h.write(&[proto]);
    if matches!(proto, 6 | 17 | 132) {
        if let Some(ports) = l4.and_then(|l4| l4.get(..4)) {
            h.write(ports);
        }
    }
    h.finish()
}

/// The UDP source port for a flow hash, in [`SOURCE_PORTS`].
pub fn source_port(hash: u32) -> u16 {
    let (lo, hi) = SOURCE_PORTS;
    let span = (hi - lo) as u32 + 1;
    lo + (hash % span) as u16
}

/// 32-bit FNV-1a: small, stable across runs and platforms.
struct Fnv(u32);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0x811c_9dc5)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u32;
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }

    fn finish(&self) -> u32 {
        // FNV's low bits mix poorly; fold the high half in.
        self.0 ^ (self.0 >> 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::internet_checksum;

    /// A VXLAN datagram as the Linux kernel sends it for VNI 42 (captured header).
    const KERNEL_HEADER: [u8; 8] = [0x08, 0, 0, 0, 0x00, 0x00, 0x2a, 0x00];

    #[test]
    fn parses_the_kernels_header() {
        assert_eq!(parse_header(&KERNEL_HEADER), Ok(42));
        let mut h = [0u8; 8];
        write_header(&mut h, 42);
        assert_eq!(h, KERNEL_HEADER);
        write_header(&mut h, MAX_VNI);
        assert_eq!(parse_header(&h), Ok(MAX_VNI));
        assert_eq!(h, [0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0]);
    }

    #[test]
    fn rejects_what_the_kernel_rejects() {
        assert_eq!(parse_header(&[]), Err(VxlanError::Truncated(0)));
        assert_eq!(parse_header(&[8, 0, 0]), Err(VxlanError::Truncated(3)));
        assert_eq!(
            parse_header(&[0, 0, 0, 0, 0, 0, 42, 0]),
            Err(VxlanError::NoIBit(0))
        );
        assert_eq!(
            parse_header(&[0x80, 0, 0, 0, 0, 0, 42, 0]),
            Err(VxlanError::NoIBit(0x80))
        );
        for i in [0usize, 1, 2, 3, 7] {
            let mut h = KERNEL_HEADER;
            h[i] |= 0x01;
            assert_eq!(parse_header(&h), Err(VxlanError::ReservedBits), "byte {i}");
        }
    }

    #[test]
    fn writes_udp_and_vxlan_headers() {
        let mut out = [0u8; ENCAP_LEN];
        write_encap(&mut out, 40000, 4789, 0x123456, 60);
        assert_eq!(
            out,
            [
                0x9c, 0x40, 0x12, 0xb5, 0x00, 76, 0, 0, // UDP: 40000 -> 4789, 76 bytes
                0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0, // VXLAN: VNI 0x123456
            ]
        );
    }

    /// The checksum over header and payload in two pieces equals the one over the
    /// datagram in one piece, at even and odd split points, and verifies to zero.
    #[test]
    fn udp_checksums_verify() {
        let src6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst6: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let src4 = Ipv4Addr::new(198, 18, 1, 1);
        let dst4 = Ipv4Addr::new(198, 18, 1, 2);
        for len in [0usize, 1, 2, 59, 60, 1450] {
            let mut dgram = vec![0u8; ENCAP_LEN + len];
            let mut head = [0u8; ENCAP_LEN];
            write_encap(&mut head, 50000, 4789, 7, len);
            dgram[..ENCAP_LEN].copy_from_slice(&head);
            for (i, b) in dgram[ENCAP_LEN..].iter_mut().enumerate() {
                *b = (i * 7 + 3) as u8;
            }
            for split in [8usize, 9, 16] {
                let (h, r) = dgram.split_at(split.min(dgram.len()));
                let c6 = udp_checksum_v6(&src6, &dst6, h, r);
                let c4 = udp_checksum_v4(&src4, &dst4, h, r);
                assert_eq!(c6, udp_checksum_v6(&src6, &dst6, &dgram, &[]));
                assert_eq!(c4, udp_checksum_v4(&src4, &dst4, &dgram, &[]));
                // Verify: the sum over pseudo-header and datagram with the field filled
                // in is all ones.
                let mut filled = dgram.clone();
                filled[6..8].copy_from_slice(&c6.to_be_bytes());
                let mut pseudo = Vec::new();
                pseudo.extend_from_slice(&src6.octets());
                pseudo.extend_from_slice(&dst6.octets());
                pseudo.extend_from_slice(&(filled.len() as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, 17]);
                pseudo.extend_from_slice(&filled);
                assert_eq!(internet_checksum(&pseudo), 0, "len {len} split {split}");
            }
        }
    }

    #[test]
    fn flow_hash_is_stable_per_flow_and_spreads_flows() {
        let mut frame = vec![0u8; 14 + 20 + 8];
        frame[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[23] = 17;
        frame[26..30].copy_from_slice(&[198, 18, 0, 1]);
        frame[30..34].copy_from_slice(&[198, 18, 0, 2]);
        let mut ports = std::collections::HashSet::new();
        for sport in 0..200u16 {
            frame[34..36].copy_from_slice(&(10000 + sport).to_be_bytes());
            let h = flow_hash(&frame);
            assert_eq!(h, flow_hash(&frame));
            let p = source_port(h);
            assert!((SOURCE_PORTS.0..=SOURCE_PORTS.1).contains(&p));
            ports.insert(p);
        }
        assert!(ports.len() > 150, "{} distinct ports", ports.len());
        // The payload does not change the hash.
        let before = flow_hash(&frame);
        frame.extend_from_slice(b"payload");
        assert_eq!(before, flow_hash(&frame));
        // Runts and garbage hash without panicking.
        for n in 0..40 {
            flow_hash(&frame[..n]);
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..32)) {
            let r = parse_header(&bytes);
            if let Ok(vni) = r {
                let mut h = [0u8; 8];
                write_header(&mut h, vni);
                proptest::prop_assert_eq!(&h[..], &bytes[..8]);
            }
            flow_hash(&bytes);
        }
    }
}
