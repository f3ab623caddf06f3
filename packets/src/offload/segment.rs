//! Segmentation of TCP and UDP GSO frames in software (and the header that makes a whole
//! GSO packet one again).

use super::{OffloadError, VirtioNetHdr, F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6};
use crate::checksum::{fold, sum16};
use crate::ip::{IpLayout, PROTO_TCP, PROTO_UDP};
use crate::ipv4::Ipv4Packet;
use crate::ipv6::Ipv6Packet;
use crate::tcp::{TcpPacket, CWR, FIN, PSH, TCP_CHECKSUM_OFFSET};
use crate::udp::{UdpPacket, UDP_HEADER_LEN};

/// The virtio-net header for `frame` when it is one TCP packet larger than a segment of
/// `mss` bytes, as a kernel's GSO packet arrives whole where a segmented one was meant
/// (a VXLAN datagram carrying a GSO packet through a veth). Its checksum is left partial,
/// as the sender's kernel left it.
pub fn tcp_gso_header(frame: &[u8], mss: usize) -> Option<VirtioNetHdr> {
    let ip = IpLayout::of_frame(frame).ok()?;
    if ip.protocol != PROTO_TCP || ip.end != frame.len() || mss == 0 {
        return None;
    }
    let tcp = TcpPacket::new_checked(&frame[ip.l4..ip.end]).ok()?;
    let hdrs = ip.l4 + tcp.header_len();
    if frame.len() <= hdrs + mss {
        return None;
    }
    Some(VirtioNetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if ip.v4 { GSO_TCPV4 } else { GSO_TCPV6 },
        hdr_len: hdrs as u16,
        gso_size: u16::try_from(mss).ok()?,
        csum_start: ip.l4 as u16,
        csum_offset: TCP_CHECKSUM_OFFSET as u16,
    })
}

/// The IP headers of a GSO frame carrying `protocol`.
fn gso_layout(frame: &[u8], protocol: u8) -> Result<IpLayout, OffloadError> {
    match IpLayout::of_gso_frame(frame) {
        Ok(ip) if ip.protocol == protocol => Ok(ip),
        _ => Err(OffloadError::Malformed),
    }
}

/// Sets the IP length fields (and, for IPv4, the id and header checksum) of a segment
/// whose transport part is `l4_len` bytes.
fn fix_ip(seg: &mut [u8], ip: &IpLayout, l4_len: usize, id: u16) {
    let hdr_len = ip.l4 - ip.l3;
    if ip.v4 {
        let mut p = Ipv4Packet::new_unchecked(&mut seg[ip.l3..]);
        p.set_total_len((hdr_len + l4_len) as u16);
        p.set_ident(id);
        p.fill_checksum();
    } else {
        Ipv6Packet::new_unchecked(&mut seg[ip.l3..]).set_payload_len(l4_len as u16);
    }
}

fn first_ident(frame: &[u8], ip: &IpLayout) -> u16 {
    if ip.v4 {
        Ipv4Packet::new_unchecked(&frame[ip.l3..]).ident()
    } else {
        0
    }
}

/// How a GSO frame falls into segments: every segment is the frame's headers (rewritten
/// for it) and the next `size` bytes of the payload, the last one shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    /// How many segments.
    pub count: usize,
    /// The bytes of headers each segment starts with (Ethernet to TCP or UDP).
    pub header_len: usize,
    /// Payload bytes per segment (the last may have fewer).
    pub size: usize,
}

impl Segments {
    /// Segment `i`'s payload: a slice of the GSO `frame` itself.
    pub fn payload<'f>(&self, frame: &'f [u8], i: usize) -> &'f [u8] {
        let from = (self.header_len + i * self.size).min(frame.len());
        let to = (from + self.size).min(frame.len());
        &frame[from..to]
    }
}

/// Writes the headers of every segment of a TCP (`tcp`) or UDP GSO frame into `headers`
/// without copying any payload: for each segment, `room` zero bytes (for the caller's own
/// header: VXLAN's, say), then the frame's headers with the segment's lengths, IPv4 id,
/// TCP sequence number and flags, and complete IP and TCP or UDP checksums (summed over
/// the payload where it lies). Segment `i`'s block starts at `i * (room + header_len)`.
pub fn segment_headers(
    frame: &[u8],
    tcp: bool,
    size: usize,
    room: usize,
    headers: &mut Vec<u8>,
) -> Result<Segments, OffloadError> {
    let ip = gso_layout(frame, if tcp { PROTO_TCP } else { PROTO_UDP })?;
    // The transport header's length, and for TCP the first segment's seq and flags.
    let (l4_header_len, seq0, flags0) = if tcp {
        let t = TcpPacket::new_checked(&frame[ip.l4..]).map_err(|_| OffloadError::Malformed)?;
        (t.header_len(), t.seq(), t.flags())
    } else {
        UdpPacket::header_checked(&frame[ip.l4..]).map_err(|_| OffloadError::Malformed)?;
        (UDP_HEADER_LEN, 0, 0)
    };
    if size == 0 {
        return Err(OffloadError::Malformed);
    }
    let header_len = ip.l4 + l4_header_len;
    let payload_len = frame.len() - header_len;
    let segs = Segments {
        count: payload_len.div_ceil(size).max(1),
        header_len,
        size,
    };
    let id0 = first_ident(frame, &ip);
    let stride = room + header_len;
    // The checks above cover every header written below; this is for the compiler.
    let bad = OffloadError::Malformed;
    headers.clear();
    headers.resize(segs.count * stride, 0);
    for (i, block) in headers.chunks_exact_mut(stride).enumerate() {
        let seg = &mut block[room..];
        seg.copy_from_slice(&frame[..header_len]);
        let payload = segs.payload(frame, i);
        let l4_len = l4_header_len + payload.len();
        fix_ip(seg, &ip, l4_len, id0.wrapping_add(i as u16));
        if tcp {
            // FIN and PSH only on the last segment, CWR only on the first.
            let mut flags = flags0;
            if i + 1 < segs.count {
                flags &= !(FIN | PSH);
            }
            if i > 0 {
                flags &= !CWR;
            }
            let mut t = TcpPacket::new_checked(&mut seg[ip.l4..]).map_err(|_| bad)?;
            t.set_seq(seq0.wrapping_add((i * size) as u32));
            t.set_flags(flags);
            t.set_checksum(0);
        } else {
            let mut u = UdpPacket::header_checked(&mut seg[ip.l4..]).map_err(|_| bad)?;
            u.set_len(l4_len as u16);
            u.set_checksum(0);
        }
        // The transport header is a whole number of 16-bit words, so the payload's
        // words line up with the segment's and the two sums add.
        let sum = sum16(sum16(ip.pseudo_sum(seg, l4_len), &seg[ip.l4..]), payload);
        let mut c = !fold(sum);
        if tcp {
            TcpPacket::new_checked(&mut seg[ip.l4..])
                .map_err(|_| bad)?
                .set_checksum(c);
        } else {
            // Zero means "no checksum" in UDP; a computed zero is sent as all ones.
            if c == 0 {
                c = 0xffff;
            }
            UdpPacket::header_checked(&mut seg[ip.l4..])
                .map_err(|_| bad)?
                .set_checksum(c);
        }
    }
    Ok(segs)
}

/// Cuts a TCP (`tcp`) or UDP GSO frame into segments of `size` payload bytes, each
/// handed to `emit` whole (headers then payload, copied together into `scratch`).
/// Returns how many segments there were.
pub fn segment_gso(
    frame: &[u8],
    tcp: bool,
    size: usize,
    scratch: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    // `scratch` holds every segment's headers, then room to put one segment together.
    let segs = segment_headers(frame, tcp, size, 0, scratch)?;
    let all_headers = segs.count * segs.header_len;
    scratch.resize(all_headers + segs.header_len + segs.size, 0);
    let (headers, room) = scratch.split_at_mut(all_headers);
    for (i, h) in headers.chunks_exact(segs.header_len).enumerate() {
        let payload = segs.payload(frame, i);
        let seg = &mut room[..h.len() + payload.len()];
        seg[..h.len()].copy_from_slice(h);
        seg[h.len()..].copy_from_slice(payload);
        emit(seg);
    }
    Ok(segs.count)
}

/// Splits a UDP GSO frame (`UDP_SEGMENT`, GSO type UDP_L4) into datagrams of at most
/// `size` payload bytes, each with its own UDP length and checksum.
pub fn segment_udp(
    frame: &[u8],
    size: usize,
    scratch: &mut Vec<u8>,
    emit: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    segment_gso(frame, false, size, scratch, emit)
}

/// Splits a TCP GSO frame (IPv4 or IPv6, optionally VLAN-tagged) into segments of at most
/// `mss` payload bytes with complete IP and TCP checksums, handing each to `emit`.
pub fn segment_tcp(
    frame: &[u8],
    mss: usize,
    scratch: &mut Vec<u8>,
    emit: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    segment_gso(frame, true, mss, scratch, emit)
}
