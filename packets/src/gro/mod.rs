//! Receive coalescing (GRO) for TCP and UDP.
//!
//! [`TcpGro`]: consecutive segments of one TCP stream, as they arrive one datagram at a time
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
//! [`UdpJoin`] (on transmit): consecutive datagrams of one UDP flow bound for the same port are joined
//! into one UDP GSO frame (GSO type UDP_L4), which the receiving kernel cuts back into
//! the same datagrams before any socket sees them (a socket with `UDP_GRO` gets them
//! joined, as from a NIC). One write then carries up to [`UDP_MAX_RUN`] small datagrams.
//! The inverse of [`crate::offload::segment_udp`]: a datagram joins when its headers
//! match the first one's but for the lengths, the checksums and an IPv4 id one above the
//! previous datagram's (segmentation numbers them so), its payload is no longer than the
//! first's (a shorter one ends the run), and its checksum is right or left partial by a
//! sender that offloads it.

pub mod tcp;
pub mod udp_join;

pub use tcp::TcpGro;
pub use udp_join::{UdpJoin, UDP_MAX_RUN};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::fold;
    use crate::ip::IpLayout;
    use crate::offload::{
        complete_checksum, segment_tcp, segment_udp, VirtioNetHdr, F_NEEDS_CSUM, GSO_TCPV4,
        GSO_TCPV6, GSO_UDP_L4,
    };
    use crate::tcp::{ACK, PSH};

    const ETH: usize = crate::ETHERNET_HEADER_LEN;

    fn pseudo_sum(frame: &[u8], _l3: usize, _v4: bool, _proto: u8, l4_len: usize) -> u32 {
        IpLayout::of_gso_frame(frame)
            .unwrap()
            .pseudo_sum(frame, l4_len)
    }

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
        let mut run: Option<(TcpGro, Vec<u8>)> = None;
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
            match TcpGro::start(s) {
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
                let ip = IpLayout::of_frame(&done).unwrap();
                assert!(ip.l4_checksum_ok(&done));
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
            assert_eq!(TcpGro::start(&f), None);
        }
        // A short segment ends the run.
        let short = segments(&gso_frame(true, 1500, ACK), 1000);
        let mut run = short.clone();
        run.extend(segments(&gso_frame(true, 1000, ACK), 1000));
        assert!(coalesce(&run).len() >= 2);
        // Not TCP: left alone.
        assert_eq!(TcpGro::start(&[0u8; 60]), None);
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
        let mut run: Option<(UdpJoin, Vec<u8>)> = None;
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
            match UdpJoin::start(&mut acc, 0, f, *partial) {
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
        assert!(UdpJoin::start(&mut Vec::new(), 0, &none, None).is_none());
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
        assert!(UdpJoin::start(&mut Vec::new(), 0, &frag, None).is_none());
        let tcp = gso_frame(true, 100, ACK);
        assert!(UdpJoin::start(&mut Vec::new(), 0, &tcp, None).is_none());
        assert!(UdpJoin::start(&mut Vec::new(), 0, &[0u8; 60], None).is_none());
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
        /// Whatever the sizes and wherever one byte of one datagram is damaged, joining
        /// and cutting again gives back every datagram as it was, in order: a damaged
        /// one stands alone, the others join around it.
        #[test]
        fn udp_joining_keeps_every_datagram(
            v4 in proptest::bool::ANY,
            len in 1usize..3000,
            size in 1usize..700,
            damage in proptest::option::of((0usize..64, 0usize..2000)),
        ) {
            let mut dgrams = datagrams(&udp_gso_frame(v4, len), size);
            if let Some((which, at)) = damage {
                let d = which % dgrams.len();
                let at = at % dgrams[d].len();
                dgrams[d][at] ^= 0x40;
            }
            let mut back = Vec::new();
            for (frame, hdr) in join_udp(&complete(dgrams.clone())) {
                match hdr {
                    Some(h) => back.extend(datagrams(&frame, h.gso_size as usize)),
                    None => back.push(frame),
                }
            }
            proptest::prop_assert_eq!(back, dgrams);
        }

        /// The same for TCP: a stream cut into segments, one damaged, coalesced and cut
        /// again, is the same segments.
        #[test]
        fn tcp_coalescing_keeps_every_segment(
            v4 in proptest::bool::ANY,
            len in 1usize..20_000,
            mss in 1usize..1500,
            damage in proptest::option::of((0usize..64, 0usize..2000)),
        ) {
            let mut segs = segments(&gso_frame(v4, len, ACK), mss);
            if let Some((which, at)) = damage {
                let s = which % segs.len();
                let at = at % segs[s].len();
                segs[s][at] ^= 0x40;
            }
            let mut back = Vec::new();
            for (frame, hdr) in coalesce(&segs) {
                match hdr {
                    Some(h) => {
                        let mut done = frame.clone();
                        complete_checksum(&mut done, h.csum_start as usize, 16).unwrap();
                        back.extend(segments(&done, h.gso_size as usize));
                    }
                    None => back.push(frame),
                }
            }
            proptest::prop_assert_eq!(back, segs);
        }
    }
}
