//! TCP segments (RFC 9293): a checked view.

use crate::error::IpError;

/// The header without options.
pub const TCP_HEADER_LEN: usize = 20;
/// Where the checksum sits in the header (a partial checksum's offset).
pub const TCP_CHECKSUM_OFFSET: usize = 16;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// The byte ranges of the header's fields.
pub mod field {
    use std::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// A view of a TCP segment whose header (options included) has been checked.
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` (the IP payload) after checking that the data offset is at least 5
    /// words and the header with its options fits in the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, IpError> {
        let b = buffer.as_ref();
        if b.len() < TCP_HEADER_LEN {
            return Err(IpError::Truncated);
        }
        let hdr = (b[field::DATA_OFFSET] >> 4) as usize * 4;
        if hdr < TCP_HEADER_LEN {
            return Err(IpError::BadLength);
        }
        if hdr > b.len() {
            return Err(IpError::Truncated);
        }
        Ok(TcpPacket { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.b()[0], self.b()[1]])
    }

    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }

    pub fn seq(&self) -> u32 {
        let s = &self.b()[field::SEQ];
        u32::from_be_bytes([s[0], s[1], s[2], s[3]])
    }

    /// The header's length in bytes, options included.
    pub fn header_len(&self) -> usize {
        (self.b()[field::DATA_OFFSET] >> 4) as usize * 4
    }

    pub fn flags(&self) -> u8 {
        self.b()[field::FLAGS]
    }

    pub fn checksum(&self) -> u16 {
        let c = &self.b()[field::CHECKSUM];
        u16::from_be_bytes([c[0], c[1]])
    }

    /// What follows the header, to the end of the buffer.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_seq(&mut self, seq: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    }

    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    pub fn set_checksum(&mut self, c: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN from port 50566 to 80 with 20 bytes of options, as Linux sends it.
    const SYN_SEGMENT: [u8; 40] = [
        0xc5, 0x86, 0, 80, 0x4e, 0xb4, 0x5d, 0x6a, 0, 0, 0, 0, 0xa0, 0x02, 0xfd, 0x5c, 0x8c, 0x56,
        0, 0, 2, 4, 5, 0x82, 4, 2, 8, 10, 0xf2, 0xcb, 0x4b, 0x42, 0, 0, 0, 0, 1, 3, 3, 10,
    ];

    #[test]
    fn deconstructs_a_segment() {
        let t = TcpPacket::new_checked(&SYN_SEGMENT[..]).unwrap();
        assert_eq!(
            (t.src_port(), t.dst_port(), t.seq()),
            (50566, 80, 0x4eb4_5d6a)
        );
        assert_eq!((t.header_len(), t.flags(), t.checksum()), (40, SYN, 0x8c56));
        assert!(t.payload().is_empty());
    }

    #[test]
    fn refuses_offsets_that_do_not_fit() {
        assert_eq!(
            TcpPacket::new_checked(&SYN_SEGMENT[..39]).unwrap_err(),
            IpError::Truncated
        );
        let mut low = SYN_SEGMENT;
        low[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&low[..]).unwrap_err(),
            IpError::BadLength
        );
        assert_eq!(
            TcpPacket::new_checked(&SYN_SEGMENT[..19]).unwrap_err(),
            IpError::Truncated
        );
    }
}
