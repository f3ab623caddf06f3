//! Where an IP packet and its transport header lie in an Ethernet frame, located once by
//! one set of rules for checksum completion, segmentation, GRO, UDP joining and the
//! VXLAN flow hash alike.

use crate::checksum::{fold, pseudo_header, sum16};
pub use crate::error::IpError;
use crate::ethernet::{EtherType, EthernetFrame};
use crate::ipv4::Ipv4Packet;
use crate::ipv6::{Ipv6Packet, IPV6_HEADER_LEN};

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_SCTP: u8 = 132;

/// The IP packet in a frame: its version, offsets, and what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpLayout {
    pub v4: bool,
    /// Where the IP header starts (after the Ethernet header and any VLAN tag).
    pub l3: usize,
    /// Where the transport header starts.
    pub l4: usize,
    /// Where the IP packet ends by its own length (Ethernet padding excluded); for a
    /// [`IpLayout::of_gso_frame`], the frame's end.
    pub end: usize,
    /// The IPv4 protocol or the IPv6 next header (extension headers are not walked).
    pub protocol: u8,
    /// An IPv4 fragment (not the whole datagram).
    pub fragment: bool,
    /// IPv4 options present.
    pub options: bool,
}

impl IpLayout {
    /// Locates the IP packet of `frame` (tagged or not), checking every length against
    /// the frame.
    pub fn of_frame(frame: &[u8]) -> Result<IpLayout, IpError> {
        Self::locate(frame, false)
    }

    /// [`IpLayout::of_frame`] for a GSO frame: only the headers are checked, since its
    /// lengths are rewritten for every segment; `end` is the frame's end.
    pub fn of_gso_frame(frame: &[u8]) -> Result<IpLayout, IpError> {
        Self::locate(frame, true)
    }

    fn locate(frame: &[u8], gso: bool) -> Result<IpLayout, IpError> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| IpError::NotIp)?;
        let l3 = eth.header_len();
        let ip = &frame[l3..];
        match eth.ethertype() {
            EtherType::IPV4 => {
                let p = if gso {
                    Ipv4Packet::header_checked(ip)?
                } else {
                    Ipv4Packet::new_checked(ip)?
                };
                let hdr = p.header_len();
                Ok(IpLayout {
                    v4: true,
                    l3,
                    l4: l3 + hdr,
                    end: if gso { frame.len() } else { l3 + p.total_len() },
                    protocol: p.protocol(),
                    fragment: p.is_fragment(),
                    options: hdr > crate::ipv4::IPV4_HEADER_LEN,
                })
            }
            EtherType::IPV6 => {
                let p = if gso {
                    Ipv6Packet::header_checked(ip)?
                } else {
                    Ipv6Packet::new_checked(ip)?
                };
                Ok(IpLayout {
                    v4: false,
                    l3,
                    l4: l3 + IPV6_HEADER_LEN,
                    end: if gso {
                        frame.len()
                    } else {
                        l3 + IPV6_HEADER_LEN + p.payload_len()
                    },
                    protocol: p.next_header(),
                    fragment: false,
                    options: false,
                })
            }
            _ => Err(IpError::NotIp),
        }
    }

    /// A plain packet of `protocol` right after an untagged Ethernet header: no IPv4
    /// options, not a fragment, and (IPv6) no extension header. What GRO and UDP joining
    /// take; everything else passes as it came.
    pub fn plain(frame: &[u8], protocol: u8) -> Option<IpLayout> {
        let ip = Self::of_frame(frame).ok()?;
        let plain = ip.l3 == crate::ETHERNET_HEADER_LEN
            && ip.protocol == protocol
            && !ip.options
            && !ip.fragment;
        plain.then_some(ip)
    }

    /// The transport segment's length.
    pub fn l4_len(&self) -> usize {
        self.end - self.l4
    }

    /// The source and destination addresses in `frame`.
    pub fn addrs<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        if self.v4 {
            &frame[self.l3 + 12..self.l3 + 20]
        } else {
            &frame[self.l3 + 8..self.l3 + 40]
        }
    }

    /// The pseudo-header sum of `frame`'s transport segment, were it `l4_len` bytes.
    pub fn pseudo_sum(&self, frame: &[u8], l4_len: usize) -> u32 {
        pseudo_header(self.addrs(frame), self.protocol, l4_len)
    }

    /// Whether the TCP or UDP checksum of `frame` verifies.
    pub fn l4_checksum_ok(&self, frame: &[u8]) -> bool {
        let seg = &frame[self.l4..self.end];
        fold(sum16(self.pseudo_sum(frame, seg.len()), seg)) == 0xffff
    }

    /// Whether everything in the IP header of `next` but the lengths, the checksum and
    /// the IPv4 id (and the Ethernet header before it) is the same as in `first`, both
    /// laid out as `self`.
    pub fn headers_match(&self, next: &[u8], first: &[u8]) -> bool {
        let same =
            |a: usize, b: usize| next.get(a..b).is_some() && next.get(a..b) == first.get(a..b);
        let l3 = self.l3;
        if self.v4 {
            // Ethernet; TOS; flags and fragment offset, TTL, protocol; addresses.
            same(0, l3 + 1)
                && same(l3 + 1, l3 + 2)
                && same(l3 + 6, l3 + 10)
                && same(l3 + 12, l3 + 20)
        } else {
            // Ethernet; version, class and flow label; next header, hop limit, addresses.
            same(0, l3 + 4) && same(l3 + 6, l3 + 40)
        }
    }

    /// Sets the IP length of a packet grown to the end of `acc` (and the IPv4 header
    /// checksum), and returns the transport checksum's partial value: the pseudo-header
    /// sum, which a partial checksum holds.
    pub fn set_length_to_end(&self, acc: &mut [u8]) -> u16 {
        let l4_len = acc.len() - self.l4;
        let ip = &mut acc[self.l3..];
        if self.v4 {
            let mut p = Ipv4Packet::new_unchecked(ip);
            p.set_total_len((self.l4 - self.l3 + l4_len) as u16);
            p.fill_checksum();
        } else {
            Ipv6Packet::new_unchecked(ip).set_payload_len(l4_len as u16);
        }
        fold(self.pseudo_sum(acc, l4_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp4(total: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(&[
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ]);
        f.extend_from_slice(&[0x30, 0x39, 0x12, 0xb5, 0, 12, 0, 0, 1, 2, 3, 4]);
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f
    }

    #[test]
    fn locates_the_packet_once() {
        let ip = IpLayout::of_frame(&udp4(32)).unwrap();
        assert_eq!(
            (ip.v4, ip.l3, ip.l4, ip.end, ip.protocol),
            (true, 14, 34, 46, 17)
        );
        assert_eq!(IpLayout::plain(&udp4(32), PROTO_UDP), Some(ip));
        assert_eq!(IpLayout::plain(&udp4(32), PROTO_TCP), None);
        // Ethernet padding is not part of the packet.
        let mut padded = udp4(32);
        padded.extend_from_slice(&[0; 14]);
        assert_eq!(IpLayout::of_frame(&padded).unwrap().end, 46);
    }

    /// An IPv4 total length under 20 once made GRO's `end - l4` underflow.
    #[test]
    fn a_total_length_under_the_header_is_refused() {
        for total in [0, 10, 19] {
            assert_eq!(IpLayout::of_frame(&udp4(total)), Err(IpError::BadLength));
            assert_eq!(IpLayout::plain(&udp4(total), PROTO_UDP), None);
        }
        assert_eq!(IpLayout::of_frame(&udp4(33)), Err(IpError::Truncated));
        // A GSO frame's lengths are not looked at.
        assert_eq!(IpLayout::of_gso_frame(&udp4(0)).unwrap().end, 46);
    }
}
