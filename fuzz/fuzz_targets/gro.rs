//! TCP GRO and UDP joining. Two halves: any frames, malformed lengths included, run
//! through start/append/finish without panicking; and a real GSO frame cut into
//! segments, one of them damaged anywhere, joined and cut again, gives back every
//! segment as it was, in order (joining is the exact inverse of segmentation, and a
//! damaged segment never joins and comes out repaired).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use packets::gro::{TcpGro, UdpJoin};
use packets::offload::{complete_checksum, segment_gso, VirtioNetHdr};

#[derive(Arbitrary, Debug)]
enum Input {
    Garbage(Vec<Vec<u8>>, Option<(u8, u8)>),
    Stream {
        v4: bool,
        tcp: bool,
        payload: u16,
        size: u16,
        damage: Option<(u8, u16, u8)>,
    },
}

/// An Ethernet + IP + TCP/UDP GSO frame with `payload` bytes and a correct checksum.
fn gso_frame(v4: bool, tcp: bool, payload: usize) -> Vec<u8> {
    let l4_len = if tcp { 20 } else { 8 } + payload;
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    let proto = if tcp { 6 } else { 17 };
    if v4 {
        f.extend_from_slice(&[
            0x08, 0x00, 0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0,
        ]);
        f.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
        let total = (20 + l4_len) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
    } else {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
        f.extend_from_slice(&[0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    }
    let l4 = f.len();
    if tcp {
        f.extend_from_slice(&[
            0x13, 0x88, 0xc0, 0, 0, 0, 0x10, 0, 0, 0, 0, 1, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0,
        ]);
    } else {
        f.extend_from_slice(&[0x30, 0x39, 0x12, 0xb5]);
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.extend((0..payload).map(|i| (i * 7 + 3) as u8));
    let field = if tcp { 16 } else { 6 };
    let _ = complete_checksum(&mut f, l4, field);
    f
}

fn segments(frame: &[u8], tcp: bool, size: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let _ = segment_gso(frame, tcp, size, &mut Vec::new(), |s| out.push(s.to_vec()));
    out
}

/// Joins `segs` as the switch does; each output is a frame and its GSO header, if joined.
fn join(segs: &[Vec<u8>], tcp: bool) -> Vec<(Vec<u8>, Option<VirtioNetHdr>)> {
    let mut out = Vec::new();
    if tcp {
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
    } else {
        let mut run: Option<(UdpJoin, Vec<u8>)> = None;
        for s in segs {
            if let Some((g, acc)) = run.as_mut() {
                if g.append(acc, 0, s, None) {
                    continue;
                }
            }
            if let Some((g, mut acc)) = run.take() {
                let h = g.finish(&mut acc);
                out.push((acc, h));
            }
            let mut acc = Vec::new();
            match UdpJoin::start(&mut acc, 0, s, None) {
                Some(g) => run = Some((g, acc)),
                None => out.push((s.clone(), None)),
            }
        }
        if let Some((g, mut acc)) = run.take() {
            let h = g.finish(&mut acc);
            out.push((acc, h));
        }
    }
    out
}

fuzz_target!(|input: Input| match input {
    Input::Garbage(frames, partial) => {
        let partial = partial.map(|(s, o)| (s as usize, o as usize));
        let mut acc = Vec::new();
        if let Some(first) = frames.first() {
            if let Some(mut g) = TcpGro::start(first) {
                let mut acc = first.clone();
                for f in &frames[1..] {
                    g.append(&mut acc, 0, f);
                }
                let _ = g.finish(&mut acc);
            }
            if let Some(mut u) = UdpJoin::start(&mut acc, 0, first, partial) {
                for f in &frames[1..] {
                    u.append(&mut acc, 0, f, partial);
                }
                let _ = u.finish(&mut acc);
            }
        }
    }
    Input::Stream {
        v4,
        tcp,
        payload,
        size,
        damage,
    } => {
        let (payload, size) = (payload as usize % 30_000, size as usize % 1500 + 1);
        let mut segs = segments(&gso_frame(v4, tcp, payload), tcp, size);
        if segs.is_empty() {
            return;
        }
        if let Some((which, at, bits)) = damage {
            let s = which as usize % segs.len();
            let at = at as usize % segs[s].len();
            segs[s][at] ^= bits | 1;
        }
        let mut back = Vec::new();
        for (frame, hdr) in join(&segs, tcp) {
            match hdr {
                Some(h) => {
                    let mut done = frame.clone();
                    complete_checksum(&mut done, h.csum_start as usize, h.csum_offset as usize)
                        .expect("a joined frame's checksum offsets hold");
                    back.extend(segments(&done, tcp, h.gso_size as usize));
                }
                None => back.push(frame),
            }
        }
        assert_eq!(back, segs, "joining and cutting again changed the segments");
    }
});
