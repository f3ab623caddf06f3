//! Joining the UDP datagrams of one flow into one UDP GSO frame on transmit (see the
//! module above).

use super::tcp::header_checksum_ok;
use crate::ip::{IpLayout, PROTO_UDP};
use crate::ipv4::Ipv4Packet;
use crate::offload::{VirtioNetHdr, F_NEEDS_CSUM, GSO_UDP_L4};
use crate::udp::{UdpPacket, UDP_CHECKSUM_OFFSET, UDP_HEADER_LEN};

/// The most datagrams one UDP run joins.
pub const UDP_MAX_RUN: usize = 64;
const MAX_IP_PACKET: usize = 65_535;

/// A run of UDP datagrams of one flow being joined in a caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpJoin {
    ip: IpLayout,
    size: usize,
    count: usize,
    next_id: u16,
    closed: bool,
}

/// A datagram that may join: a plain packet (see [`IpLayout::plain`]) with a verified
/// IPv4 header, a payload, and a UDP length that spans the IP packet.
fn datagram(frame: &[u8]) -> Option<IpLayout> {
    let ip = IpLayout::plain(frame, PROTO_UDP)?;
    let udp = UdpPacket::new_checked(&frame[ip.l4..ip.end]).ok()?;
    if udp.len() != ip.l4_len() || udp.is_empty() || !header_checksum_ok(frame, &ip) {
        return None;
    }
    Some(ip)
}

/// Whether a datagram's checksum lets it join: left partial by its sender (`partial`:
/// the virtio-net header's checksum start and offset, which must point at the UDP
/// checksum), or present and right. A zero checksum (none sent) never joins: cutting the
/// run would give the receiver one the sender never sent.
fn checksum_ok(frame: &[u8], ip: &IpLayout, partial: Option<(usize, usize)>) -> bool {
    match partial {
        Some(at) => at == (ip.l4, UDP_CHECKSUM_OFFSET),
        None => {
            UdpPacket::new_checked(&frame[ip.l4..ip.end]).is_ok_and(|u| u.checksum() != 0)
                && ip.l4_checksum_ok(frame)
        }
    }
}

fn ipv4_id(frame: &[u8], ip: &IpLayout) -> u16 {
    Ipv4Packet::new_unchecked(&frame[ip.l3..ip.l4]).ident()
}

impl UdpJoin {
    /// Starts a run with `frame` when later datagrams may join it: the datagram (its
    /// Ethernet padding left out) is copied into `buf` from `at` on, replacing what was
    /// there. `partial` is where the virtio-net header says the checksum is to be
    /// finished, if it says so. None, with `buf` untouched, for a frame that cannot.
    pub fn start(
        buf: &mut Vec<u8>,
        at: usize,
        frame: &[u8],
        partial: Option<(usize, usize)>,
    ) -> Option<UdpJoin> {
        let ip = datagram(frame)?;
        if buf.len() < at || !checksum_ok(frame, &ip, partial) {
            return None;
        }
        buf.truncate(at);
        buf.extend_from_slice(&frame[..ip.end]);
        Some(UdpJoin {
            ip,
            size: ip.l4_len() - UDP_HEADER_LEN,
            count: 1,
            next_id: if ip.v4 {
                ipv4_id(frame, &ip).wrapping_add(1)
            } else {
                0
            },
            closed: false,
        })
    }

    /// Datagrams in the run so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The length of the headers each datagram carries (Ethernet, IP, UDP).
    pub fn header_len(&self) -> usize {
        self.ip.l4 + UDP_HEADER_LEN
    }

    /// Appends `next`'s payload to the run held in `buf` from `at` on when `next`
    /// continues it; false otherwise, leaving `buf` as it was.
    pub fn append(
        &mut self,
        buf: &mut Vec<u8>,
        at: usize,
        next: &[u8],
        partial: Option<(usize, usize)>,
    ) -> bool {
        if self.closed || self.count >= UDP_MAX_RUN || buf.len() < at + self.header_len() {
            return false;
        }
        let Some(ip) = datagram(next) else {
            return false;
        };
        let acc = &buf[at..];
        let payload = ip.l4_len() - UDP_HEADER_LEN;
        if ip.v4 != self.ip.v4 || ip.l4 != self.ip.l4 || payload > self.size {
            return false;
        }
        // The IP header, the ports, and the IPv4 id one above the previous datagram's.
        let l4 = ip.l4;
        let headers_match = self.ip.headers_match(next, acc)
            && next[l4..l4 + 4] == acc[l4..l4 + 4]
            && (!ip.v4 || ipv4_id(next, &ip) == self.next_id);
        if !headers_match
            || acc.len() - ip.l3 + payload > MAX_IP_PACKET
            || !checksum_ok(next, &ip, partial)
        {
            return false;
        }
        buf.extend_from_slice(&next[l4 + UDP_HEADER_LEN..ip.end]);
        self.count += 1;
        self.next_id = self.next_id.wrapping_add(1);
        if payload < self.size {
            self.closed = true;
        }
        true
    }

    /// Finishes the run in `acc`: the IP and UDP lengths (and IPv4 header checksum), and
    /// the UDP checksum field set to the pseudo-header sum, as a partial checksum wants
    /// it. Returns the virtio-net header that makes `acc` a UDP GSO frame, or `None` for a
    /// run of one datagram, which is left untouched.
    pub fn finish(&self, acc: &mut [u8]) -> Option<VirtioNetHdr> {
        let l4 = self.ip.l4;
        if self.count < 2 || acc.len() < self.header_len() {
            return None;
        }
        let l4_len = (acc.len() - l4) as u16;
        let mut udp = UdpPacket::header_checked(&mut acc[l4..]).ok()?;
        udp.set_len(l4_len);
        let partial = self.ip.set_length_to_end(acc);
        UdpPacket::header_checked(&mut acc[l4..])
            .ok()?
            .set_checksum(partial);
        Some(VirtioNetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_UDP_L4,
            hdr_len: self.header_len() as u16,
            gso_size: self.size as u16,
            csum_start: l4 as u16,
            csum_offset: UDP_CHECKSUM_OFFSET as u16,
        })
    }
}
