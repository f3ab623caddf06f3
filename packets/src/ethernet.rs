//! Ethernet II frames, with an optional 802.1Q / 802.1ad tag.
//!
//! uswitch forwards frames without rewriting them, so the view exposes only what the
//! forwarding decision needs: the two addresses, the (inner) EtherType, and whether a VLAN
//! tag is present, which widens the largest legal frame by four bytes.

use crate::mac::MacAddr;

/// Destination, source and EtherType.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// An 802.1Q tag: TPID (the outer EtherType) plus the tag control information.
pub const VLAN_TAG_LEN: usize = 4;

/// EtherType values uswitch cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// 802.1Q customer tag.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// 802.1ad service tag (QinQ).
    pub const QINQ: EtherType = EtherType(0x88a8);

    pub fn is_vlan_tag(self) -> bool {
        self == Self::VLAN || self == Self::QINQ
    }
}

/// Why a byte buffer is not an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame shorter than the 14-byte Ethernet header.
    #[error("runt frame: {0} bytes, an Ethernet header needs 14")]
    Runt(usize),
    /// A VLAN TPID with fewer than four bytes of tag after it.
    #[error("truncated VLAN tag: {0} bytes, a tagged header needs 18")]
    TruncatedVlan(usize),
}

/// A read-only view of an Ethernet II frame whose header length has been checked.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` after checking it holds a full Ethernet header, and a full VLAN tag
    /// when the EtherType announces one.
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        let len = buffer.as_ref().len();
        if len < ETHERNET_HEADER_LEN {
            return Err(FrameError::Runt(len));
        }
        let frame = EthernetFrame { buffer };
        if frame.outer_ethertype().is_vlan_tag() && len < ETHERNET_HEADER_LEN + VLAN_TAG_LEN {
            return Err(FrameError::TruncatedVlan(len));
        }
        Ok(frame)
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn mac_at(&self, offset: usize) -> MacAddr {
        let b = self.bytes();
        MacAddr([
            b[offset],
            b[offset + 1],
            b[offset + 2],
            b[offset + 3],
            b[offset + 4],
            b[offset + 5],
        ])
    }

    pub fn dst(&self) -> MacAddr {
        self.mac_at(0)
    }

    pub fn src(&self) -> MacAddr {
        self.mac_at(6)
    }

    /// The EtherType right after the addresses (a TPID when the frame is tagged).
    pub fn outer_ethertype(&self) -> EtherType {
        let b = self.bytes();
        EtherType(u16::from_be_bytes([b[12], b[13]]))
    }

    /// The 12-bit VLAN id of the outermost tag, if the frame carries one.
    pub fn vlan_id(&self) -> Option<u16> {
        if self.outer_ethertype().is_vlan_tag() {
            let b = self.bytes();
            Some(u16::from_be_bytes([b[14], b[15]]) & 0x0fff)
        } else {
            None
        }
    }

    /// The EtherType of the payload, past the outermost tag.
    pub fn ethertype(&self) -> EtherType {
        if self.outer_ethertype().is_vlan_tag() {
            let b = self.bytes();
            EtherType(u16::from_be_bytes([b[16], b[17]]))
        } else {
            self.outer_ethertype()
        }
    }

    /// Header bytes: 14, or 18 with a tag.
    pub fn header_len(&self) -> usize {
        if self.outer_ethertype().is_vlan_tag() {
            ETHERNET_HEADER_LEN + VLAN_TAG_LEN
        } else {
            ETHERNET_HEADER_LEN
        }
    }

    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[self.header_len()..]
    }

    /// Length of the whole frame.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Never true for a checked frame; present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// Whether the frame's payload fits in an interface MTU of `mtu` bytes.
    pub fn fits_mtu(&self, mtu: usize) -> bool {
        self.len() <= mtu + self.header_len()
    }
}

/// Writes an Ethernet II header into the first 14 bytes of `buf` (for tests, benches
/// and generators). Returns `None` if `buf` is too short.
pub fn write_header(
    buf: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    ethertype: EtherType,
) -> Option<()> {
    let h = buf.get_mut(..ETHERNET_HEADER_LEN)?;
    h[0..6].copy_from_slice(&dst.0);
    h[6..12].copy_from_slice(&src.0);
    h[12..14].copy_from_slice(&ethertype.0.to_be_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // An ARP request from 02:00:00:00:00:01 for 198.18.0.2, as a Linux host sends it.
    const ARP_REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst: broadcast
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x06, // ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // htype, ptype, hlen, plen, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 198, 18, 0, 1, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 18, 0, 2, // target
    ];

    // A VLAN 100 tagged IPv4 frame header with four payload bytes.
    const TAGGED: [u8; 22] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x81, 0x00, 0x20, 0x64, // TPID, PCP 1, VID 100
        0x08, 0x00, // IPv4
        0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn deconstructs_arp_request() {
        let f = EthernetFrame::new_checked(&ARP_REQUEST[..]).unwrap();
        assert_eq!(f.dst(), MacAddr::BROADCAST);
        assert_eq!(f.src(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert_eq!(f.vlan_id(), None);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload().len(), 28);
        assert!(f.fits_mtu(28));
        assert!(!f.fits_mtu(27));
    }

    #[test]
    fn deconstructs_tagged_frame() {
        let f = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(f.outer_ethertype(), EtherType::VLAN);
        assert_eq!(f.vlan_id(), Some(100));
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        // The tag does not count against the MTU.
        assert!(f.fits_mtu(4));
    }

    #[test]
    fn rejects_runts_and_cut_tags() {
        assert_eq!(
            EthernetFrame::new_checked(&[][..]).unwrap_err(),
            FrameError::Runt(0)
        );
        assert_eq!(
            EthernetFrame::new_checked(&ARP_REQUEST[..13]).unwrap_err(),
            FrameError::Runt(13)
        );
        assert_eq!(
            EthernetFrame::new_checked(&TAGGED[..16]).unwrap_err(),
            FrameError::TruncatedVlan(16)
        );
        assert!(EthernetFrame::new_checked(&TAGGED[..18]).is_ok());
    }

    #[test]
    fn constructs_header() {
        let mut buf = [0u8; 42];
        write_header(
            &mut buf,
            MacAddr::BROADCAST,
            MacAddr([2, 0, 0, 0, 0, 1]),
            EtherType::ARP,
        )
        .unwrap();
        buf[14..].copy_from_slice(&ARP_REQUEST[14..]);
        assert_eq!(buf, ARP_REQUEST);
        assert!(
            write_header(&mut buf[..13], MacAddr::ZERO, MacAddr::ZERO, EtherType::ARP).is_none()
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Ok(f) = EthernetFrame::new_checked(&bytes[..]) {
                let _ = (f.dst(), f.src(), f.ethertype(), f.vlan_id(), f.payload(), f.fits_mtu(0));
                proptest::prop_assert!(f.header_len() <= f.len());
            } else {
                proptest::prop_assert!(bytes.len() < ETHERNET_HEADER_LEN + VLAN_TAG_LEN);
            }
        }
    }
}
