//! The Internet checksum (RFC 1071) and the pseudo-header sums of TCP and UDP.

/// Adds `data` to a running ones'-complement sum (big-endian words; an odd last byte is
/// the high half of a word).
///
/// Every byte forwarded through a VXLAN remote or joined by GRO is summed here, so it
/// goes eight bytes at a time: the ones'-complement sum does not depend on byte order
/// (RFC 1071, section 2), so native-order 32-bit halves are added into wide accumulators
/// and the folded result is swapped to big-endian once at the end.
pub fn sum16(acc: u32, data: &[u8]) -> u32 {
    let mut lanes = [0u64; 4];
    let mut blocks = data.chunks_exact(32);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            let x = u64::from_ne_bytes(w);
            // Each add is under 2^33, so a lane cannot overflow before 2^31 blocks.
            *lane += (x & 0xffff_ffff) + (x >> 32);
        }
    }
    let mut wide = lanes.iter().map(|&l| fold64(l)).sum::<u64>();
    let mut words = blocks.remainder().chunks_exact(2);
    for w in &mut words {
        wide += u16::from_ne_bytes([w[0], w[1]]) as u64;
    }
    // Read in native order, the sum is big-endian's with its bytes swapped on a
    // little-endian machine: `from_be` swaps them back there and is nothing elsewhere.
    let mut acc = acc + u16::from_be(fold64(wide) as u16) as u32;
    if let [last] = words.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

/// Folds a 64-bit ones'-complement sum into 16 bits (as a `u64`).
fn fold64(mut x: u64) -> u64 {
    while x > 0xffff {
        x = (x & 0xffff) + (x >> 16);
    }
    x
}

/// Folds a running sum into 16 bits.
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum of `data`: zero when `data` holds a checksum that verifies.
pub fn internet(data: &[u8]) -> u16 {
    !fold(sum16(0, data))
}

/// The pseudo-header sum of a TCP or UDP segment of `l4_len` bytes between the addresses
/// `addrs` (source then destination, 8 bytes for IPv4 or 32 for IPv6).
pub fn pseudo_header(addrs: &[u8], protocol: u8, l4_len: usize) -> u32 {
    sum16(0, addrs) + protocol as u32 + (l4_len as u32 & 0xffff) + (l4_len as u32 >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071's example: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn sums_as_rfc_1071_says() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum16(0, &data)), 0xddf2);
        assert_eq!(internet(&data), !0xddf2);
        assert_eq!(fold(sum16(0, &[0xab])), 0xab00);
    }

    /// The word-at-a-time sum, as RFC 1071 states it.
    fn sum16_by_words(mut acc: u32, data: &[u8]) -> u32 {
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            acc += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        if let [last] = chunks.remainder() {
            acc += (*last as u32) << 8;
        }
        acc
    }

    /// The wide sum folds to what the word-at-a-time sum folds to, for every length
    /// around the block sizes and for data of all ones (the largest carries).
    #[test]
    fn wide_sum_folds_as_word_sum() {
        let mut seed = 0x9e37_79b9u32;
        let mut random = vec![0u8; 4200];
        for b in &mut random {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *b = (seed >> 24) as u8;
        }
        let ones = vec![0xffu8; 4200];
        let zeros = [0u8; 100];
        for data in [&random[..], &ones[..], &zeros[..]] {
            for len in (0..80).chain([1499, 1500, 1501, 4095, 4096, 4200]) {
                let d = &data[..len.min(data.len())];
                for acc in [0, 1, 0xfffe, 0x1_2345] {
                    assert_eq!(
                        fold(sum16(acc, d)),
                        fold(sum16_by_words(acc, d)),
                        "len {len}, acc {acc:#x}"
                    );
                }
            }
        }
    }
}
