//! Coalescing the TCP segments of one stream back into a GSO frame (see the module above).

use crate::ip::{IpLayout, PROTO_TCP};
use crate::ipv4::Ipv4Packet;
use crate::offload::{VirtioNetHdr, F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6};
use crate::tcp::{field, TcpPacket, ACK, CWR, ECE, PSH, TCP_CHECKSUM_OFFSET};

/// A GSO frame's payload is one IP packet: at most this many bytes after Ethernet.
const MAX_IP_PACKET: usize = 65_535;

/// A run of coalesced segments being built in a caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpGro {
    ip: IpLayout,
    hdrs: usize,
    mss: usize,
    count: usize,
    next_seq: u32,
    closed: bool,
}

/// A TCP segment GRO may take: a plain packet (see [`IpLayout::plain`]) whose IPv4
/// header checksum verifies, and where its payload starts.
pub(super) fn segment(frame: &[u8]) -> Option<(IpLayout, TcpPacket<&[u8]>)> {
    let ip = IpLayout::plain(frame, PROTO_TCP)?;
    if !header_checksum_ok(frame, &ip) {
        return None;
    }
    let tcp = TcpPacket::new_checked(&frame[ip.l4..ip.end]).ok()?;
    Some((ip, tcp))
}

/// Whether the IPv4 header checksum verifies (IPv6 has none): joining rewrites it, so a
/// damaged header must not join and come out repaired.
pub(super) fn header_checksum_ok(frame: &[u8], ip: &IpLayout) -> bool {
    !ip.v4 || Ipv4Packet::new_unchecked(&frame[ip.l3..ip.l4]).verify_checksum()
}

impl TcpGro {
    /// Starts a run with `frame` (copy it into the buffer the run grows in) when later
    /// segments may join it: a TCP segment with data and a correct checksum, ACK set and
    /// no flag but ECE and CWR besides.
    pub fn start(frame: &[u8]) -> Option<TcpGro> {
        let (ip, tcp) = segment(frame)?;
        let flags = tcp.flags();
        let mss = tcp.payload().len();
        if flags & ACK == 0 || flags & !(ACK | ECE | CWR) != 0 || mss == 0 {
            return None;
        }
        if !ip.l4_checksum_ok(frame) {
            return None;
        }
        Some(TcpGro {
            ip,
            hdrs: ip.l4 + tcp.header_len(),
            mss,
            count: 1,
            next_seq: tcp.seq().wrapping_add(mss as u32),
            closed: false,
        })
    }

    /// Segments in the run so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Appends `next`'s payload to the run held in `buf` from `at` on (the first
    /// segment's headers and every payload, nothing after) when `next` continues the run;
    /// false otherwise, leaving `buf` as it was. (`at` leaves room in front, for the
    /// caller's virtio-net header.)
    pub fn append(&mut self, buf: &mut Vec<u8>, at: usize, next: &[u8]) -> bool {
        if self.closed || buf.len() < at + self.hdrs {
            return false;
        }
        let acc = &buf[at..];
        let Some((ip, tcp)) = segment(next) else {
            return false;
        };
        let l4 = ip.l4;
        if ip.v4 != self.ip.v4 || l4 != self.ip.l4 || l4 + tcp.header_len() != self.hdrs {
            return false;
        }
        let same = |a: usize, b: usize| next[a..b] == acc[a..b];
        // Ports; acknowledgement and data offset; window; urgent pointer and options.
        let tcp_same = same(l4, l4 + field::SEQ.start)
            && same(l4 + field::ACK.start, l4 + field::FLAGS)
            && same(l4 + field::WINDOW.start, l4 + field::WINDOW.end)
            && same(l4 + field::URGENT.start, self.hdrs);
        let flags = tcp.flags();
        let first = acc[l4 + field::FLAGS];
        let payload = tcp.payload().len();
        if !self.ip.headers_match(next, acc)
            || !tcp_same
            || flags & !PSH != first & !CWR
            || tcp.seq() != self.next_seq
            || payload == 0
            || payload > self.mss
            || acc.len() - ip.l3 + payload > MAX_IP_PACKET
            || !ip.l4_checksum_ok(next)
        {
            return false;
        }
        buf.extend_from_slice(tcp.payload());
        self.count += 1;
        self.next_seq = self.next_seq.wrapping_add(payload as u32);
        if flags & PSH != 0 {
            buf[at + l4 + field::FLAGS] |= PSH;
            self.closed = true;
        }
        if payload < self.mss {
            self.closed = true;
        }
        true
    }

    /// Finishes the run in `acc`: the IP length (and IPv4 header checksum), and the TCP
    /// checksum field set to the pseudo-header sum, as a partial checksum wants it.
    /// Returns the virtio-net header that makes `acc` a GSO frame, or `None` for a run of
    /// one segment, which is left untouched.
    pub fn finish(&self, acc: &mut [u8]) -> Option<VirtioNetHdr> {
        if self.count < 2 || acc.len() < self.hdrs {
            return None;
        }
        let partial = self.ip.set_length_to_end(acc);
        let at = self.ip.l4 + TCP_CHECKSUM_OFFSET;
        acc[at..at + 2].copy_from_slice(&partial.to_be_bytes());
        Some(VirtioNetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if self.ip.v4 { GSO_TCPV4 } else { GSO_TCPV6 },
            hdr_len: self.hdrs as u16,
            gso_size: self.mss as u16,
            csum_start: self.ip.l4 as u16,
            csum_offset: TCP_CHECKSUM_OFFSET as u16,
        })
    }
}
