//! Checksum completion and segmentation over any frame and any sizes: nothing panics,
//! each segment is no longer than asked, the gathered segments (headers built apart, the
//! payload left in the frame, as a VXLAN remote sends them) are the copied ones byte for
//! byte, and a finished checksum stays finished.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use packets::ip::IpLayout;
use packets::offload::{
    complete_checksum, finish_partial, segment_gso, segment_headers, tcp_gso_header, L4Checksum,
};

#[derive(Arbitrary, Debug)]
struct Input {
    frame: Vec<u8>,
    tcp: bool,
    size: u16,
    start: u16,
    offset: u8,
}

fuzz_target!(|input: Input| {
    let Input {
        mut frame,
        tcp,
        size,
        start,
        offset,
    } = input;
    let size = size as usize;
    let mut scratch = Vec::new();
    let headers = IpLayout::of_gso_frame(&frame).map(|ip| ip.l4);
    let mut count = 0;
    let mut copied = Vec::new();
    let done = segment_gso(&frame, tcp, size, &mut scratch, |seg| {
        count += 1;
        copied.push(seg.to_vec());
        if let Ok(l4) = headers {
            // Headers (transport header at most 60 bytes) and at most `size` of payload.
            assert!(
                seg.len() <= l4 + 60 + size,
                "{} > {l4} + 60 + {size}",
                seg.len()
            );
        }
    });
    if let Ok(n) = done {
        assert_eq!(n, count);
    }
    let mut heads = Vec::new();
    match segment_headers(&frame, tcp, size, 8, &mut heads) {
        Ok(segs) => {
            assert_eq!(Ok(segs.count), done);
            let stride = 8 + segs.header_len;
            for (i, (head, seg)) in heads.chunks_exact(stride).zip(&copied).enumerate() {
                let mut whole = head[8..].to_vec();
                whole.extend_from_slice(segs.payload(&frame, i));
                assert_eq!(&whole, seg, "segment {i}");
            }
        }
        Err(e) => assert_eq!(Err(e), done),
    }
    let _ = tcp_gso_header(&frame, size);
    let mut copy = frame.clone();
    if complete_checksum(&mut copy, start as usize, offset as usize).is_ok() {
        assert_eq!(copy.len(), frame.len());
    }
    let first = finish_partial(&mut frame);
    let second = finish_partial(&mut frame);
    if first == L4Checksum::Finished || first == L4Checksum::Valid {
        assert_eq!(second, L4Checksum::Valid, "finished once is finished");
    }
});
