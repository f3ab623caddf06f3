//! Receive coalescing (GRO) for TCP and UDP.
//!
//! [`Gro`]: consecutive segments of one TCP stream, as they arrive one datagram at a time
//! from a VXLAN remote, are joined back into one GSO frame, so a TAP with offloads takes
//! 64 KiB in one write and the receiving kernel handles one packet instead of dozens. The
//! inverse of [`crate::offload::segment_tcp`].
//!
//! A segment joins the run when everything but the sequence number, the lengths, the
//! checksums, the IPv4 id and a final PSH matches the run's first segment, it starts where
//! the run ends, it is no longer than the first, and its TCP checksum is right (the
//! result is handed on with a partial checksum, which the receiver trusts). A shorter
//! segment or one with PSH ends the run. Only untagged IPv4 without options and IPv6
//! without extension headers are coalesced; everything else passes as it came.
//!
//! [`UdpGro`]: consecutive datagrams of one UDP flow bound for the same port are joined
//! into one UDP GSO frame (GSO type UDP_L4), which the receiving kernel cuts back into
//! the same datagrams before any socket sees them (a socket with `UDP_GRO` gets them
//! joined, as from a NIC). One write then carries up to [`UDP_MAX_RUN`] small datagrams.
//! The inverse of [`crate::offload::segment_udp`]: a datagram joins when its headers
//! match the first one's but for the lengths, the checksums and an IPv4 id one above the
//! previous datagram's (segmentation numbers them so), its payload is no longer than the
//! first's (a shorter one ends the run), and its checksum is right or left partial by a
//! sender that offloads it.

use crate::offload::{
    fold, internet_checksum, pseudo_sum, sum16, VirtioNetHdr, F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6,
    GSO_UDP_L4,
};

const ETH: usize = 14;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const ECE: u8 = 0x40;
const CWR: u8 = 0x80;

/// A run of coalesced segments being built in a caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gro {
    v4: bool,
    l4: usize,
    hdrs: usize,
    mss: usize,
    count: usize,
    next_seq: u32,
    closed: bool,
}

/// The IP packet in an untagged frame carrying L4 protocol `proto`: IPv4 or not, where
/// the L4 header starts, where the IP packet ends (Ethernet padding excluded). None for
/// anything else: IPv4 options or fragments, IPv6 extension headers.
fn ip_packet(frame: &[u8], proto: u8) -> Option<(bool, usize, usize)> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    match ethertype {
        0x0800 => {
            let ip = frame.get(ETH..ETH + 20)?;
            let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
            if ip[0] != 0x45 || ip[9] != proto || fragment != 0 {
                return None;
            }
            let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            Some((true, ETH + 20, ETH + total))
        }
        0x86dd => {
            let ip = frame.get(ETH..ETH + 40)?;
            if ip[0] >> 4 != 6 || ip[6] != proto {
                return None;
            }
            let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
            Some((false, ETH + 40, ETH + 40 + plen))
        }
        _ => None,
    }
}

/// Whether everything in the IP header but the lengths, checksum and IPv4 id (and the
/// Ethernet header before it) is the same in `next` as in `first`.
fn ip_headers_match(next: &[u8], first: &[u8], v4: bool) -> bool {
    let same = |a: usize, b: usize| next[a..b] == first[a..b];
    if v4 {
        // TOS; flags and fragment offset, TTL, protocol; addresses.
        same(0, ETH)
            && same(ETH + 1, ETH + 2)
            && same(ETH + 6, ETH + 10)
            && same(ETH + 12, ETH + 20)
    } else {
        // Version, class and flow label; next header, hop limit and addresses.
        same(0, ETH + 4) && same(ETH + 6, ETH + 40)
    }
}

/// Whether the L4 checksum (protocol `proto`) from `l4` to `end` verifies.
fn checksum_ok(frame: &[u8], v4: bool, proto: u8, l4: usize, end: usize) -> bool {
    fold(sum16(
        pseudo_sum(frame, ETH, v4, proto, end - l4),
        &frame[l4..end],
    )) == 0xffff
}

/// Sets the IP length of the joined packet in `acc` (and the IPv4 header checksum), and
/// returns the L4 checksum field's partial value: the pseudo-header sum.
fn finish_ip(acc: &mut [u8], v4: bool, proto: u8, l4: usize) -> u16 {
    let l4_len = acc.len() - l4;
    if v4 {
        let total = (acc.len() - ETH) as u16;
        acc[ETH + 2..ETH + 4].copy_from_slice(&total.to_be_bytes());
        acc[ETH + 10..ETH + 12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&acc[ETH..ETH + 20]);
        acc[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
    } else {
        acc[ETH + 4..ETH + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    }
    fold(pseudo_sum(acc, ETH, v4, proto, l4_len))
}

/// Where the parts of a TCP segment are: IPv4 or not, the TCP header, the payload, the
/// end of the IP packet (Ethernet padding excluded).
fn tcp_segment(frame: &[u8]) -> Option<(bool, usize, usize, usize)> {
    let (v4, l4, end) = ip_packet(frame, 6)?;
    let doff = (*frame.get(l4 + 12)? >> 4) as usize * 4;
    let hdrs = l4 + doff;
    if doff < 20 || hdrs > end || end > frame.len() {
        return None;
    }
    Some((v4, l4, hdrs, end))
}

fn seq_of(frame: &[u8], l4: usize) -> u32 {
    u32::from_be_bytes([frame[l4 + 4], frame[l4 + 5], frame[l4 + 6], frame[l4 + 7]])
}

impl Gro {
    /// Starts a run with `frame` (copy it into the buffer the run grows in) when later
    /// segments may join it: a TCP segment with data and a correct checksum, ACK set and
    /// no flag but ECE and CWR besides.
    pub fn start(frame: &[u8]) -> Option<Gro> {
        let (v4, l4, hdrs, end) = tcp_segment(frame)?;
        let flags = frame[l4 + 13];
        if flags & ACK == 0 || flags & !(ACK | ECE | CWR) != 0 || end == hdrs {
            return None;
        }
        if !checksum_ok(frame, v4, 6, l4, end) {
            return None;
        }
        let mss = end - hdrs;
        Some(Gro {
            v4,
            l4,
            hdrs,
            mss,
            count: 1,
            next_seq: seq_of(frame, l4).wrapping_add(mss as u32),
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
        if self.closed || buf.len() < at {
            return false;
        }
        let acc = &buf[at..];
        let Some((v4, l4, hdrs, end)) = tcp_segment(next) else {
            return false;
        };
        if v4 != self.v4 || l4 != self.l4 || hdrs != self.hdrs || acc.len() < hdrs {
            return false;
        }
        let same = |a: usize, b: usize| next[a..b] == acc[a..b];
        let ip_same = ip_headers_match(next, acc, v4);
        // Ports; acknowledgement; data offset; window and urgent pointer; options.
        let tcp_same = same(l4, l4 + 4)
            && same(l4 + 8, l4 + 13)
            && same(l4 + 14, l4 + 16)
            && same(l4 + 18, hdrs);
        let flags = next[l4 + 13];
        let first = acc[l4 + 13];
        let payload = end - hdrs;
        if !ip_same
            || !tcp_same
            || flags & !PSH != first & !CWR
            || seq_of(next, l4) != self.next_seq
            || payload == 0
            || payload > self.mss
            || acc.len() - ETH + payload > 65_535
            || !checksum_ok(next, v4, 6, l4, end)
        {
            return false;
        }
        buf.extend_from_slice(&next[hdrs..end]);
        self.count += 1;
        self.next_seq = self.next_seq.wrapping_add(payload as u32);
        if flags & PSH != 0 {
            buf[at + l4 + 13] |= PSH;
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
        if self.count < 2 {
            return None;
        }
        let partial = finish_ip(acc, self.v4, 6, self.l4);
        acc[self.l4 + 16..self.l4 + 18].copy_from_slice(&partial.to_be_bytes());
        Some(VirtioNetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if self.v4 { GSO_TCPV4 } else { GSO_TCPV6 },
            hdr_len: self.hdrs as u16,
            gso_size: self.mss as u16,
            csum_start: self.l4 as u16,
            csum_offset: 16,
        })
    }
}

/// The most datagrams one UDP run joins.
pub const UDP_MAX_RUN: usize = 64;

/// A run of UDP datagrams of one flow being joined in a caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpGro {
    v4: bool,
    l4: usize,
    size: usize,
    count: usize,
    next_id: u16,
    closed: bool,
}

/// Where the parts of an untagged UDP datagram are: IPv4 or not, the UDP header, the end
/// of the IP packet (Ethernet padding excluded). None for anything else, fragments and
/// IPv4 options included, and for a datagram with no payload.
fn udp_datagram(frame: &[u8]) -> Option<(bool, usize, usize)> {
    let (v4, l4, end) = ip_packet(frame, 17)?;
    let udp = frame.get(l4..l4 + 8)?;
    let udp_len = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    if end > frame.len() || udp_len != end - l4 || udp_len <= 8 {
        return None;
    }
    Some((v4, l4, end))
}

/// Whether a datagram's checksum lets it join: left partial by its sender (`partial`:
/// the virtio-net header's checksum start and offset, which must point at the UDP
/// checksum), or present and right.
fn udp_checksum_ok(
    frame: &[u8],
    v4: bool,
    l4: usize,
    end: usize,
    partial: Option<(usize, usize)>,
) -> bool {
    match partial {
        Some(at) => at == (l4, 6),
        None => frame[l4 + 6..l4 + 8] != [0, 0] && checksum_ok(frame, v4, 17, l4, end),
    }
}

fn ipv4_id(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[ETH + 4], frame[ETH + 5]])
}

impl UdpGro {
    /// Starts a run with `frame` when later datagrams may join it: the datagram (its
    /// Ethernet padding left out) is copied into `buf` from `at` on, replacing what was
    /// there. `partial` is where the virtio-net header says the checksum is to be
    /// finished, if it says so. None, with `buf` untouched, for a frame that cannot.
    pub fn start(
        buf: &mut Vec<u8>,
        at: usize,
        frame: &[u8],
        partial: Option<(usize, usize)>,
    ) -> Option<UdpGro> {
        let (v4, l4, end) = udp_datagram(frame)?;
        if buf.len() < at || !udp_checksum_ok(frame, v4, l4, end, partial) {
            return None;
        }
        buf.truncate(at);
        buf.extend_from_slice(&frame[..end]);
        Some(UdpGro {
            v4,
            l4,
            size: end - l4 - 8,
            count: 1,
            next_id: if v4 {
                ipv4_id(frame).wrapping_add(1)
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
        self.l4 + 8
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
        if self.closed || self.count >= UDP_MAX_RUN || buf.len() < at + self.l4 + 8 {
            return false;
        }
        let Some((v4, l4, end)) = udp_datagram(next) else {
            return false;
        };
        let acc = &buf[at..];
        let payload = end - l4 - 8;
        if v4 != self.v4 || l4 != self.l4 || payload > self.size {
            return false;
        }
        // The IP header, the ports, and the IPv4 id one above the previous datagram's.
        let headers_match = ip_headers_match(next, acc, v4)
            && next[l4..l4 + 4] == acc[l4..l4 + 4]
            && (!v4 || ipv4_id(next) == self.next_id);
        if !headers_match
            || acc.len() - ETH + payload > 65_535
            || !udp_checksum_ok(next, v4, l4, end, partial)
        {
            return false;
        }
        buf.extend_from_slice(&next[l4 + 8..end]);
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
        if self.count < 2 || acc.len() < self.l4 + 8 {
            return None;
        }
        let l4_len = (acc.len() - self.l4) as u16;
        acc[self.l4 + 4..self.l4 + 6].copy_from_slice(&l4_len.to_be_bytes());
        let partial = finish_ip(acc, self.v4, 17, self.l4);
        acc[self.l4 + 6..self.l4 + 8].copy_from_slice(&partial.to_be_bytes());
        Some(VirtioNetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_UDP_L4,
            hdr_len: (self.l4 + 8) as u16,
            gso_size: self.size as u16,
            csum_start: self.l4 as u16,
            csum_offset: 6,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::{complete_checksum, segment_tcp, segment_udp};

    /// A TCP GSO frame with `len` payload bytes (IPv4 or IPv6, with 12 bytes of options),
    /// its checksum complete.
    fn gso_frame(v4: bool, len: usize, flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; ETH];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        let tcp_len = 32 + len;
        if v4 {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
            ip.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
            ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
            f.extend_from_slice(&ip);
        } else {
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            let mut ip = vec![0x60, 0, 0, 0, 0, 0, 6, 64];
            ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
            ip.extend_from_slice(&[0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            ip.extend_from_slice(&[0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            f.extend_from_slice(&ip);
        }
        let mut tcp = vec![0x13, 0x89, 0xc3, 0x50, 0, 0, 0x10, 0, 0, 0, 0x20, 0];
        tcp.extend_from_slice(&[0x80, flags, 0x01, 0xf6, 0, 0, 0, 0]);
        tcp.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        f.extend_from_slice(&tcp);
        f.extend((0..len).map(|i| (i * 13 + 7) as u8));
        let l4 = if v4 { ETH + 20 } else { ETH + 40 };
        complete_checksum(&mut f, l4, 16).unwrap();
        f
    }

    fn segments(frame: &[u8], mss: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        segment_tcp(frame, mss, &mut scratch, |s| out.push(s.to_vec())).unwrap();
        out
    }

    fn coalesce(segs: &[Vec<u8>]) -> Vec<(Vec<u8>, Option<VirtioNetHdr>)> {
        let mut out = Vec::new();
        let mut run: Option<(Gro, Vec<u8>)> = None;
        for s in segs {
            if let Some((g, acc)) = run.as_mut() {
                if g.append(acc, 0, s) {
                    continue;
                }
            }
            if let Some((g, mut acc)) = run.take() {
                let h = g.finish(&mut acc);
                out.push((acc, h));
            }
            match Gro::start(s) {
                Some(g) => run = Some((g, s.clone())),
                None => out.push((s.clone(), None)),
            }
        }
        if let Some((g, mut acc)) = run.take() {
            let h = g.finish(&mut acc);
            out.push((acc, h));
        }
        out
    }

    /// Segmenting a GSO frame and coalescing the segments gives back one GSO frame whose
    /// segmentation is the same segments again, byte for byte.
    #[test]
    fn coalescing_undoes_segmentation() {
        for v4 in [true, false] {
            for (len, mss) in [(4000, 1398), (64_000, 1398), (2796, 1398), (100, 1398)] {
                let segs = segments(&gso_frame(v4, len, ACK | PSH), mss);
                let merged = coalesce(&segs);
                assert_eq!(merged.len(), 1, "v4 {v4} len {len}");
                let (frame, hdr) = &merged[0];
                if segs.len() == 1 {
                    assert_eq!(hdr, &None);
                    assert_eq!(frame, &segs[0]);
                    continue;
                }
                let hdr = hdr.expect("a GSO header");
                assert_eq!(hdr.gso_size as usize, mss);
                assert_eq!(hdr.gso_type, if v4 { GSO_TCPV4 } else { GSO_TCPV6 });
                assert_eq!(frame[hdr.csum_start as usize + 13] & PSH, PSH);
                // The partial checksum completes to the whole frame's right checksum.
                let mut done = frame.clone();
                complete_checksum(&mut done, hdr.csum_start as usize, 16).unwrap();
                let (v4_, l4, _, end) = tcp_segment(&done).unwrap();
                assert!(checksum_ok(&done, v4_, 6, l4, end));
                assert_eq!(segments(frame, mss), segs, "v4 {v4} len {len}");
            }
        }
    }

    #[test]
    fn what_does_not_continue_the_run_stays_apart() {
        let segs = segments(&gso_frame(true, 5000, ACK), 1000);
        // A gap in the sequence.
        let gapped = vec![segs[0].clone(), segs[2].clone()];
        assert_eq!(coalesce(&gapped).len(), 2);
        // A corrupted payload byte: the checksum no longer holds.
        let mut bad = segs.clone();
        bad[1][80] ^= 0xff;
        let out = coalesce(&bad);
        assert_eq!(out.len(), 3, "bad segment cut the run and stood alone");
        assert_eq!(out[1], (bad[1].clone(), None));
        // Another flow (port) in between.
        let mut other = segs[1].clone();
        other[ETH + 20 + 1] ^= 1;
        assert_eq!(coalesce(&[segs[0].clone(), other]).len(), 2);
        // SYN, FIN or RST never start a run.
        for flag in [0x02, 0x01, 0x04] {
            let f = gso_frame(true, 100, ACK | flag);
            assert_eq!(Gro::start(&f), None);
        }
        // A short segment ends the run.
        let short = segments(&gso_frame(true, 1500, ACK), 1000);
        let mut run = short.clone();
        run.extend(segments(&gso_frame(true, 1000, ACK), 1000));
        assert!(coalesce(&run).len() >= 2);
        // Not TCP: left alone.
        assert_eq!(Gro::start(&[0u8; 60]), None);
    }

    /// A UDP GSO frame carrying `len` payload bytes, its checksum complete, IPv4 id 0xfffe
    /// (so segmentation wraps the id).
    fn udp_gso_frame(v4: bool, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; ETH];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        let udp_len = 8 + len;
        if v4 {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let mut ip = vec![0x45, 0, 0, 0, 0xff, 0xfe, 0x40, 0, 64, 17, 0, 0];
            ip.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
            ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
            f.extend_from_slice(&ip);
        } else {
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            let mut ip = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
            ip[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            ip.extend_from_slice(&[0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            ip.extend_from_slice(&[0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            f.extend_from_slice(&ip);
        }
        f.extend_from_slice(&[0x13, 0x89, 0x14, 0x51]);
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend((0..len).map(|i| (i * 7 + 3) as u8));
        let l4 = if v4 { ETH + 20 } else { ETH + 40 };
        complete_checksum(&mut f, l4, 6).unwrap();
        f
    }

    fn datagrams(frame: &[u8], size: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        segment_udp(frame, size, &mut scratch, |s| out.push(s.to_vec())).unwrap();
        out
    }

    /// A frame and where its partial checksum is, if left partial.
    type Datagram = (Vec<u8>, Option<(usize, usize)>);

    /// Joins `frames` (each with its partial-checksum position, if left partial) the way
    /// the switch does: runs, and what cannot join passed on alone.
    fn join_udp(frames: &[Datagram]) -> Vec<(Vec<u8>, Option<VirtioNetHdr>)> {
        let mut out = Vec::new();
        let mut run: Option<(UdpGro, Vec<u8>)> = None;
        for (f, partial) in frames {
            if let Some((g, acc)) = run.as_mut() {
                if g.append(acc, 0, f, *partial) {
                    continue;
                }
            }
            if let Some((g, mut acc)) = run.take() {
                let h = g.finish(&mut acc);
                out.push((acc, h));
            }
            let mut acc = Vec::new();
            match UdpGro::start(&mut acc, 0, f, *partial) {
                Some(g) => run = Some((g, acc)),
                None => out.push((f.clone(), None)),
            }
        }
        if let Some((g, mut acc)) = run.take() {
            let h = g.finish(&mut acc);
            out.push((acc, h));
        }
        out
    }

    fn complete(frames: Vec<Vec<u8>>) -> Vec<Datagram> {
        frames.into_iter().map(|f| (f, None)).collect()
    }

    /// Cutting a UDP GSO frame into datagrams and joining them gives one GSO frame whose
    /// segmentation is the same datagrams again, byte for byte (IPv4 ids wrapping).
    #[test]
    fn udp_joining_undoes_segmentation() {
        for v4 in [true, false] {
            for (len, size) in [(64 * 5, 64), (64 * 64, 64), (1000, 300), (3 * 1400, 1400)] {
                let dgrams = datagrams(&udp_gso_frame(v4, len), size);
                let joined = join_udp(&complete(dgrams.clone()));
                assert_eq!(joined.len(), 1, "v4 {v4} len {len} size {size}");
                let (frame, hdr) = &joined[0];
                let hdr = hdr.expect("a GSO header");
                assert_eq!(hdr.gso_type, GSO_UDP_L4);
                assert_eq!(hdr.gso_size as usize, size);
                assert_eq!(hdr.flags, F_NEEDS_CSUM);
                assert_eq!(hdr.csum_offset, 6);
                assert_eq!(hdr.hdr_len, hdr.csum_start + 8);
                assert_eq!(
                    datagrams(frame, size),
                    dgrams,
                    "v4 {v4} len {len} size {size}"
                );
            }
        }
    }

    /// Datagrams a sender left partial (the checksum field holding the pseudo-header sum)
    /// join too, and come out with their checksums finished.
    #[test]
    fn udp_partial_datagrams_join() {
        for v4 in [true, false] {
            let l4 = if v4 { ETH + 20 } else { ETH + 40 };
            let done = datagrams(&udp_gso_frame(v4, 64 * 8), 64);
            let partial: Vec<_> = done
                .iter()
                .map(|d| {
                    let mut p = d.clone();
                    let sum = fold(pseudo_sum(&p, ETH, v4, 17, p.len() - l4));
                    p[l4 + 6..l4 + 8].copy_from_slice(&sum.to_be_bytes());
                    (p, Some((l4, 6)))
                })
                .collect();
            let joined = join_udp(&partial);
            assert_eq!(joined.len(), 1);
            let (frame, hdr) = &joined[0];
            assert!(hdr.is_some());
            assert_eq!(datagrams(frame, 64), done);
            // A partial checksum said to be somewhere else does not join.
            let elsewhere: Vec<_> = partial
                .iter()
                .map(|(p, _)| (p.clone(), Some((l4, 16))))
                .collect();
            assert_eq!(join_udp(&elsewhere).len(), partial.len());
        }
    }

    #[test]
    fn udp_what_does_not_continue_the_run_stays_apart() {
        let d = datagrams(&udp_gso_frame(true, 64 * 6), 64);
        // A gap in the IPv4 ids (a datagram lost or sent elsewhere).
        assert_eq!(
            join_udp(&complete(vec![d[0].clone(), d[2].clone()])).len(),
            2
        );
        // A corrupted payload byte: the checksum no longer holds; it stands alone, as it came.
        let mut bad = d.clone();
        bad[1][50] ^= 0xff;
        let out = join_udp(&complete(bad.clone()));
        assert_eq!(out.len(), 3);
        assert_eq!(out[1], (bad[1].clone(), None));
        // Another flow (a port) or another TTL in between.
        for at in [ETH + 20 + 1, ETH + 8] {
            let mut other = d[1].clone();
            other[at] ^= 1;
            assert_eq!(join_udp(&complete(vec![d[0].clone(), other])).len(), 2);
        }
        // A zero checksum (none sent) never joins: the receiver would see one appear.
        let mut none = d[0].clone();
        none[ETH + 26..ETH + 28].copy_from_slice(&[0, 0]);
        assert!(UdpGro::start(&mut Vec::new(), 0, &none, None).is_none());
        // A shorter datagram ends the run; a longer one cannot join it.
        let short = datagrams(&udp_gso_frame(true, 64 + 10), 64);
        assert_eq!(short.len(), 2);
        let mut after = short.clone();
        let mut next = d[1].clone();
        next[ETH + 4..ETH + 6].copy_from_slice(&0u16.to_be_bytes());
        after.push(next);
        let out = join_udp(&complete(after));
        assert_eq!(out.len(), 2, "the short datagram closed the run");
        // Fragments, IPv4 options, TCP, runts: left alone.
        let mut frag = d[0].clone();
        frag[ETH + 6] |= 0x20;
        assert!(UdpGro::start(&mut Vec::new(), 0, &frag, None).is_none());
        let tcp = gso_frame(true, 100, ACK);
        assert!(UdpGro::start(&mut Vec::new(), 0, &tcp, None).is_none());
        assert!(UdpGro::start(&mut Vec::new(), 0, &[0u8; 60], None).is_none());
        // At most UDP_MAX_RUN datagrams in one run.
        let many = datagrams(&udp_gso_frame(true, 10 * (UDP_MAX_RUN + 1)), 10);
        assert_eq!(join_udp(&complete(many)).len(), 2);
    }

    /// Ethernet padding after a short datagram is not taken for payload.
    #[test]
    fn udp_padding_is_left_out() {
        let d = datagrams(&udp_gso_frame(true, 3 * 6), 6);
        let padded: Vec<Vec<u8>> = d
            .iter()
            .map(|f| {
                let mut p = f.clone();
                p.resize(60, 0xee);
                p
            })
            .collect();
        let joined = join_udp(&complete(padded));
        assert_eq!(joined.len(), 1);
        assert_eq!(datagrams(&joined[0].0, 6), d);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_garbage(a in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                                   b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Some(mut g) = Gro::start(&a) {
                let mut acc = a.clone();
                g.append(&mut acc, 0, &b);
                g.finish(&mut acc);
            }
            for partial in [None, Some((34, 6)), Some((54, 6))] {
                let mut acc = Vec::new();
                if let Some(mut g) = UdpGro::start(&mut acc, 0, &a, partial) {
                    g.append(&mut acc, 0, &b, partial);
                    g.finish(&mut acc);
                }
            }
        }
    }
}
