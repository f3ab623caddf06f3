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

/// Cuts a TCP (`tcp`) or UDP GSO frame into segments of `size` payload bytes.
pub fn segment_gso(
    frame: &[u8],
    tcp: bool,
    size: usize,
    scratch: &mut Vec<u8>,
    each: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    if tcp {
        segment_tcp(frame, size, scratch, each)
    } else {
        segment_udp(frame, size, scratch, each)
    }
}

/// Splits a UDP GSO frame (`UDP_SEGMENT`, GSO type UDP_L4) into datagrams of at most
/// `size` payload bytes, each with its own UDP length and checksum.
pub fn segment_udp(
    frame: &[u8],
    size: usize,
    scratch: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    let ip = gso_layout(frame, PROTO_UDP)?;
    UdpPacket::header_checked(&frame[ip.l4..]).map_err(|_| OffloadError::Malformed)?;
    let hdrs = ip.l4 + UDP_HEADER_LEN;
    if size == 0 {
        return Err(OffloadError::Malformed);
    }
    let payload = &frame[hdrs..];
    let id0 = first_ident(frame, &ip);
    let chunks = payload.len().div_ceil(size).max(1);
    for i in 0..chunks {
        let body = &payload[(i * size).min(payload.len())..((i + 1) * size).min(payload.len())];
        scratch.clear();
        scratch.extend_from_slice(&frame[..hdrs]);
        scratch.extend_from_slice(body);
        let seg = &mut scratch[..];
        let l4_len = UDP_HEADER_LEN + body.len();
        fix_ip(seg, &ip, l4_len, id0.wrapping_add(i as u16));
        let mut udp =
            UdpPacket::header_checked(&mut seg[ip.l4..]).map_err(|_| OffloadError::Malformed)?;
        udp.set_len(l4_len as u16);
        udp.set_checksum(0);
        let mut c = !fold(sum16(ip.pseudo_sum(seg, l4_len), &seg[ip.l4..]));
        if c == 0 {
            c = 0xffff;
        }
        UdpPacket::header_checked(&mut seg[ip.l4..])
            .map_err(|_| OffloadError::Malformed)?
            .set_checksum(c);
        emit(seg);
    }
    Ok(chunks)
}

/// Splits a TCP GSO frame (IPv4 or IPv6, optionally VLAN-tagged) into segments of at most
/// `mss` payload bytes with complete IP and TCP checksums, handing each to `emit`.
/// `scratch` is reused between calls so segmentation does not allocate per frame.
pub fn segment_tcp(
    frame: &[u8],
    mss: usize,
    scratch: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    let ip = gso_layout(frame, PROTO_TCP)?;
    let tcp = TcpPacket::new_checked(&frame[ip.l4..]).map_err(|_| OffloadError::Malformed)?;
    let doff = tcp.header_len();
    let hdrs = ip.l4 + doff;
    if mss == 0 {
        return Err(OffloadError::Malformed);
    }
    let (seq0, flags0) = (tcp.seq(), tcp.flags());
    let payload = &frame[hdrs..];
    let id0 = first_ident(frame, &ip);
    let chunks = payload.len().div_ceil(mss).max(1);
    for i in 0..chunks {
        let body = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        scratch.clear();
        scratch.extend_from_slice(&frame[..hdrs]);
        scratch.extend_from_slice(body);
        let seg = &mut scratch[..];
        let last = i + 1 == chunks;
        let l4_len = doff + body.len();
        fix_ip(seg, &ip, l4_len, id0.wrapping_add(i as u16));
        // FIN and PSH only on the last segment, CWR only on the first.
        let mut flags = flags0;
        if !last {
            flags &= !(FIN | PSH);
        }
        if i > 0 {
            flags &= !CWR;
        }
        let mut t =
            TcpPacket::new_checked(&mut seg[ip.l4..]).map_err(|_| OffloadError::Malformed)?;
        t.set_seq(seq0.wrapping_add((i * mss) as u32));
        t.set_flags(flags);
        t.set_checksum(0);
        let c = !fold(sum16(ip.pseudo_sum(seg, l4_len), &seg[ip.l4..]));
        TcpPacket::new_checked(&mut seg[ip.l4..])
            .map_err(|_| OffloadError::Malformed)?
            .set_checksum(c);
        emit(seg);
    }
    Ok(chunks)
}
