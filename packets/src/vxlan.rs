//! VXLAN (RFC 7348): the 8-byte header between the outer UDP header and the inner
//! Ethernet frame, and the inner flow hash that picks the UDP source port (uswitch's UDP
//! sockets let the kernel write the outer IP and UDP headers).
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

use crate::ethernet::EthernetFrame;
use crate::ip::{IpLayout, PROTO_SCTP, PROTO_TCP, PROTO_UDP};

/// The VXLAN header's length.
pub const VXLAN_HEADER_LEN: usize = 8;
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
    h.write(&eth.ethertype().0.to_be_bytes());
    // A GSO frame's IP length may not be its own (it is each segment's, or none): such
    // a frame hashes as its segments do.
    let Ok(ip) = IpLayout::of_frame(frame).or_else(|_| IpLayout::of_gso_frame(frame)) else {
        return h.finish();
    };
    h.write(ip.addrs(frame));
    h.write(&[ip.protocol]);
    // Fragments carry ports in the first one only: hash none, so that all of one
    // datagram's fragments take one path.
    if matches!(ip.protocol, PROTO_TCP | PROTO_UDP | PROTO_SCTP) && !ip.fragment {
        if let Some(ports) = frame.get(ip.l4..ip.end).and_then(|l4| l4.get(..4)) {
            h.write(ports);
        }
    }
    h.finish()
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
    fn flow_hash_is_stable_per_flow_and_spreads_flows() {
        let mut frame = vec![0u8; 14 + 20 + 8];
        frame[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[17] = 28; // total length
        frame[23] = 17;
        frame[26..30].copy_from_slice(&[198, 18, 0, 1]);
        frame[30..34].copy_from_slice(&[198, 18, 0, 2]);
        let mut hashes = std::collections::HashSet::new();
        let mut senders = [0u32; 16];
        for sport in 0..200u16 {
            frame[34..36].copy_from_slice(&(10000 + sport).to_be_bytes());
            let h = flow_hash(&frame);
            assert_eq!(h, flow_hash(&frame));
            hashes.insert(h);
            senders[h as usize % 16] += 1;
        }
        assert_eq!(hashes.len(), 200);
        // Spread over a pool of 16 sending sockets, as the switch picks them.
        assert!(senders.iter().all(|&n| n > 0), "{senders:?}");
        // Ethernet padding does not change the hash.
        let before = flow_hash(&frame);
        frame.extend_from_slice(b"payload");
        assert_eq!(before, flow_hash(&frame));
        // Runts and garbage hash without panicking.
        for n in 0..40 {
            flow_hash(&frame[..n]);
        }
    }

    proptest::proptest! {
        /// Every VNI survives writing and parsing; a bit flipped anywhere but in the VNI
        /// makes the header one the kernel would drop.
        #[test]
        fn headers_round_trip_and_damage_is_refused(vni in 0u32..=MAX_VNI, bit in 0usize..64) {
            let mut h = [0u8; 8];
            write_header(&mut h, vni);
            proptest::prop_assert_eq!(parse_header(&h), Ok(vni));
            h[bit / 8] ^= 1 << (bit % 8);
            let in_vni = (32..56).contains(&bit);
            proptest::prop_assert_eq!(parse_header(&h).is_ok(), in_vni);
        }
    }
}
