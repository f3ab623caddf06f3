//! Receive coalescing (GRO) for TCP: consecutive segments of one TCP stream, as they
//! arrive one datagram at a time from a VXLAN remote, are joined back into one GSO frame,
//! so a TAP with offloads takes 64 KiB in one write and the receiving kernel handles one
//! packet instead of dozens. The inverse of [`crate::offload::segment_tcp`].
//!
//! A segment joins the run when everything but the sequence number, the lengths, the
//! checksums, the IPv4 id and a final PSH matches the run's first segment, it starts where
//! the run ends, it is no longer than the first, and its TCP checksum is right (the
//! result is handed on with a partial checksum, which the receiver trusts). A shorter
//! segment or one with PSH ends the run. Only untagged IPv4 without options and IPv6
//! without extension headers are coalesced; everything else passes as it came.

use crate::offload::{
    fold, internet_checksum, pseudo_sum, sum16, VirtioNetHdr, F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6,
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

/// Where the parts of a TCP segment are: IPv4 or not, the TCP header, the payload, the
/// end of the IP packet (Ethernet padding excluded).
fn tcp_segment(frame: &[u8]) -> Option<(bool, usize, usize, usize)> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let (v4, l4, end) = match ethertype {
        0x0800 => {
            let ip = frame.get(ETH..ETH + 20)?;
            let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
            if ip[0] != 0x45 || ip[9] != 6 || fragment != 0 {
                return None;
            }
            let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            (true, ETH + 20, ETH + total)
        }
        0x86dd => {
            let ip = frame.get(ETH..ETH + 40)?;
            if ip[0] >> 4 != 6 || ip[6] != 6 {
                return None;
            }
            let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
            (false, ETH + 40, ETH + 40 + plen)
        }
        _ => return None,
    };
    let doff = (*frame.get(l4 + 12)? >> 4) as usize * 4;
    let hdrs = l4 + doff;
    if doff < 20 || hdrs > end || end > frame.len() {
        return None;
    }
    Some((v4, l4, hdrs, end))
}

fn checksum_ok(frame: &[u8], v4: bool, l4: usize, end: usize) -> bool {
    fold(sum16(
        pseudo_sum(frame, ETH, v4, 6, end - l4),
        &frame[l4..end],
    )) == 0xffff
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
        if !checksum_ok(frame, v4, l4, end) {
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
        let ip_same = if v4 {
            // TOS; flags and fragment offset, TTL, protocol; addresses.
            same(0, ETH)
                && same(ETH + 1, ETH + 2)
                && same(ETH + 6, ETH + 10)
                && same(ETH + 12, ETH + 20)
        } else {
            // Version, class and flow label; next header, hop limit and addresses.
            same(0, ETH + 4) && same(ETH + 6, ETH + 40)
        };
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
            || !checksum_ok(next, v4, l4, end)
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
        let l4_len = acc.len() - self.l4;
        if self.v4 {
            let total = (acc.len() - ETH) as u16;
            acc[ETH + 2..ETH + 4].copy_from_slice(&total.to_be_bytes());
            acc[ETH + 10..ETH + 12].copy_from_slice(&[0, 0]);
            let c = internet_checksum(&acc[ETH..ETH + 20]);
            acc[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
        } else {
            acc[ETH + 4..ETH + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        let partial = fold(pseudo_sum(acc, ETH, self.v4, 6, l4_len));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::{complete_checksum, segment_tcp};

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
                assert!(checksum_ok(&done, v4_, l4, end));
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

    proptest::proptest! {
        #[test]
        fn never_panics_on_garbage(a in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                                   b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Some(mut g) = Gro::start(&a) {
                let mut acc = a.clone();
                g.append(&mut acc, 0, &b);
                g.finish(&mut acc);
            }
        }
    }
}
