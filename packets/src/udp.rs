//! UDP datagrams (RFC 768): a checked view.

use crate::error::IpError;

pub const UDP_HEADER_LEN: usize = 8;
/// Where the checksum sits in the header (a partial checksum's offset).
pub const UDP_CHECKSUM_OFFSET: usize = 6;

/// The byte ranges of the header's fields.
pub mod field {
    use std::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// A view of a UDP datagram whose header has been checked.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` (the IP payload) after checking that it holds the header and that
    /// the length field covers the header and fits in the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, IpError> {
        let p = Self::header_checked(buffer)?;
        let len = p.len();
        if len < UDP_HEADER_LEN {
            return Err(IpError::BadLength);
        }
        if len > p.buffer.as_ref().len() {
            return Err(IpError::Truncated);
        }
        Ok(p)
    }

    /// Wraps `buffer` after checking that it holds the header alone (for a GSO frame,
    /// whose length field is rewritten per datagram).
    pub fn header_checked(buffer: T) -> Result<Self, IpError> {
        if buffer.as_ref().len() < UDP_HEADER_LEN {
            return Err(IpError::Truncated);
        }
        Ok(UdpPacket { buffer })
    }

    fn u16_at(&self, r: std::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// The length field: header and payload.
    pub fn len(&self) -> usize {
        self.u16_at(field::LENGTH) as usize
    }

    /// Whether the datagram carries no payload.
    pub fn is_empty(&self) -> bool {
        self.len() <= UDP_HEADER_LEN
    }

    /// The checksum field (zero: none sent, allowed over IPv4 only).
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The payload, up to the length field (the buffer's end for a header-only view).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[UDP_HEADER_LEN..self.len().clamp(UDP_HEADER_LEN, b.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }

    pub fn set_checksum(&mut self, c: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATAGRAM: [u8; 12] = [0x30, 0x39, 0x12, 0xb5, 0, 12, 0xab, 0xcd, 1, 2, 3, 4];

    #[test]
    fn deconstructs_a_datagram() {
        let u = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (12345, 4789, 12));
        assert_eq!((u.checksum(), u.payload()), (0xabcd, &[1u8, 2, 3, 4][..]));
    }

    #[test]
    fn refuses_lengths_that_do_not_fit() {
        let mut short = DATAGRAM;
        short[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&short[..]).unwrap_err(),
            IpError::BadLength
        );
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..11]).unwrap_err(),
            IpError::Truncated
        );
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..7]).unwrap_err(),
            IpError::Truncated
        );
    }
}
