//! IPv4 packets (RFC 791): a checked view.
//!
//! `new_checked` validates once that the header is whole (version 4, IHL at least 5, the
//! options inside the buffer) and that the total length covers the header and fits in the
//! buffer; after that no accessor can panic. Bytes past the total length (Ethernet
//! padding) are not part of [`Ipv4Packet::payload`].

use std::net::Ipv4Addr;

use crate::checksum;
use crate::error::IpError;

/// The header without options.
pub const IPV4_HEADER_LEN: usize = 20;

/// The byte ranges of the header's fields.
pub mod field {
    use std::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// A view of an IPv4 packet whose lengths have been checked.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking: for a buffer the caller has just checked or built.
    /// Accessors may panic on a buffer that is not a whole header.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after checking the header and the total length.
    pub fn new_checked(buffer: T) -> Result<Self, IpError> {
        let p = Self::header_checked(buffer)?;
        let (total, hdr) = (p.total_len(), p.header_len());
        if total < hdr {
            return Err(IpError::BadLength);
        }
        if total > p.buffer.as_ref().len() {
            return Err(IpError::Truncated);
        }
        Ok(p)
    }

    /// Wraps `buffer` after checking the header alone, not the total length: for a GSO
    /// frame, whose lengths are rewritten segment by segment (and which a sender of more
    /// than 64 KiB declares as zero).
    pub fn header_checked(buffer: T) -> Result<Self, IpError> {
        let b = buffer.as_ref();
        if b.len() < IPV4_HEADER_LEN {
            return Err(IpError::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(IpError::BadVersion);
        }
        let hdr = (b[field::VER_IHL] & 0x0f) as usize * 4;
        if hdr < IPV4_HEADER_LEN {
            return Err(IpError::BadLength);
        }
        if hdr > b.len() {
            return Err(IpError::Truncated);
        }
        Ok(Ipv4Packet { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u16_at(&self, r: std::ops::Range<usize>) -> u16 {
        let b = &self.b()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The header's length in bytes, options included.
    pub fn header_len(&self) -> usize {
        (self.b()[field::VER_IHL] & 0x0f) as usize * 4
    }

    pub fn tos(&self) -> u8 {
        self.b()[field::TOS]
    }

    /// The total length the header declares.
    pub fn total_len(&self) -> usize {
        self.u16_at(field::LENGTH) as usize
    }

    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    /// Whether this is a fragment (more fragments follow, or it is not the first).
    pub fn is_fragment(&self) -> bool {
        self.u16_at(field::FLAGS_FRAG) & 0x3fff != 0
    }

    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.b()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    pub fn src(&self) -> Ipv4Addr {
        let b = &self.b()[field::SRC];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    pub fn dst(&self) -> Ipv4Addr {
        let b = &self.b()[field::DST];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The source and destination addresses as bytes, as the pseudo-header sums them.
    pub fn addr_bytes(&self) -> &[u8] {
        &self.b()[field::SRC.start..field::DST.end]
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::internet(&self.b()[..self.header_len()]) == 0
    }

    /// What follows the header, up to the total length (a [`Ipv4Packet::new_checked`]
    /// view; for a header-only view, up to the buffer's end).
    pub fn payload(&self) -> &[u8] {
        let end = self.total_len().clamp(self.header_len(), self.b().len());
        &self.b()[self.header_len()..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn set_u16(&mut self, r: std::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_total_len(&mut self, len: u16) {
        self.set_u16(field::LENGTH, len);
    }

    pub fn set_ident(&mut self, id: u16) {
        self.set_u16(field::IDENT, id);
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_u16(field::CHECKSUM, 0);
        let hdr = self.header_len();
        let c = checksum::internet(&self.buffer.as_ref()[..hdr]);
        self.set_u16(field::CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IPv4 header of a ping from 198.18.0.1 to 198.18.0.2, as Linux sends it.
    const PING: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0xab, 0xcd, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 198, 18, 0, 1, 198,
        18, 0, 2, // header
        0x08, 0x00, 0xf7, 0xff, 0x00, 0x00, 0x00, 0x00, // ICMP echo
    ];

    #[test]
    fn deconstructs_a_packet() {
        let mut bytes = PING;
        Ipv4Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.header_len(), p.total_len(), p.ident()), (20, 28, 0xabcd));
        assert_eq!((p.protocol(), p.ttl(), p.is_fragment()), (1, 64, false));
        assert_eq!(p.src(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(p.dst(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(p.payload(), &PING[20..]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn padding_is_not_payload() {
        let mut padded = PING.to_vec();
        padded.extend_from_slice(&[0; 18]);
        assert_eq!(
            Ipv4Packet::new_checked(&padded[..])
                .unwrap()
                .payload()
                .len(),
            8
        );
    }

    #[test]
    fn refuses_what_does_not_hold_together() {
        let with = |i: usize, v: u8| {
            let mut b = PING;
            b[i] = v;
            b
        };
        let err = |b: &[u8]| Ipv4Packet::new_checked(b).unwrap_err();
        assert_eq!(err(&PING[..19]), IpError::Truncated);
        assert_eq!(err(&with(0, 0x65)), IpError::BadVersion);
        assert_eq!(err(&with(0, 0x44)), IpError::BadLength);
        assert_eq!(err(&with(0, 0x48)), IpError::Truncated);
        // A total length under the header's: the length bug this view exists to stop.
        assert_eq!(err(&with(3, 10)), IpError::BadLength);
        assert_eq!(err(&with(3, 29)), IpError::Truncated);
        assert!(Ipv4Packet::header_checked(&with(3, 0)[..]).is_ok());
    }
}
