//! The Internet checksum (RFC 1071) and the pseudo-header sums of TCP and UDP.

/// Adds `data` to a running ones'-complement sum (big-endian words; an odd last byte is
/// the high half of a word).
pub fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
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
}
