//! IPv6 packets (RFC 8200): a checked view of the fixed header.
//!
//! Extension headers are not walked: uswitch only looks inside packets whose next header
//! is the transport (what the kernel's GSO frames and its vxlan driver carry); anything
//! else passes untouched.

use std::net::Ipv6Addr;

use crate::error::IpError;

/// The fixed header.
pub const IPV6_HEADER_LEN: usize = 40;

/// The byte ranges of the header's fields.
pub mod field {
    use std::ops::Range;

    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// A view of an IPv6 packet whose lengths have been checked.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without checking (see [`crate::ipv4::Ipv4Packet::new_unchecked`]).
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after checking the fixed header and that the payload length fits.
    pub fn new_checked(buffer: T) -> Result<Self, IpError> {
        let p = Self::header_checked(buffer)?;
        if IPV6_HEADER_LEN + p.payload_len() > p.buffer.as_ref().len() {
            return Err(IpError::Truncated);
        }
        Ok(p)
    }

    /// Wraps `buffer` after checking the fixed header alone (for GSO frames, see
    /// [`crate::ipv4::Ipv4Packet::header_checked`]).
    pub fn header_checked(buffer: T) -> Result<Self, IpError> {
        let b = buffer.as_ref();
        if b.len() < IPV6_HEADER_LEN {
            return Err(IpError::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(IpError::BadVersion);
        }
        Ok(Ipv6Packet { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The payload length the header declares.
    pub fn payload_len(&self) -> usize {
        let b = &self.b()[field::PAYLOAD_LEN];
        u16::from_be_bytes([b[0], b[1]]) as usize
    }

    pub fn next_header(&self) -> u8 {
        self.b()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.b()[field::HOP_LIMIT]
    }

    pub fn src(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.b()[field::SRC]);
        Ipv6Addr::from(a)
    }

    pub fn dst(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.b()[field::DST]);
        Ipv6Addr::from(a)
    }

    /// The source and destination addresses as bytes, as the pseudo-header sums them.
    pub fn addr_bytes(&self) -> &[u8] {
        &self.b()[field::SRC.start..field::DST.end]
    }

    /// What follows the fixed header, up to the payload length (the buffer's end for a
    /// header-only view).
    pub fn payload(&self) -> &[u8] {
        let end = (IPV6_HEADER_LEN + self.payload_len()).min(self.b().len());
        &self.b()[IPV6_HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    pub fn set_payload_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP datagram of 4 payload bytes from 2001:2::1 to 2001:2::2.
    fn packet() -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 12, 17, 64];
        p.extend_from_slice(&[0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[0x30, 0x39, 0x00, 0x09, 0, 12, 0, 0, 1, 2, 3, 4]);
        p
    }

    #[test]
    fn deconstructs_a_packet() {
        let b = packet();
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.payload_len(), p.next_header(), p.hop_limit()),
            (12, 17, 64)
        );
        assert_eq!(p.src(), "2001:2::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst(), "2001:2::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &b[40..]);
    }

    #[test]
    fn refuses_what_does_not_hold_together() {
        let b = packet();
        assert_eq!(
            Ipv6Packet::new_checked(&b[..39]).unwrap_err(),
            IpError::Truncated
        );
        assert_eq!(
            Ipv6Packet::new_checked(&b[..51]).unwrap_err(),
            IpError::Truncated
        );
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&v4[..]).unwrap_err(),
            IpError::BadVersion
        );
        assert!(Ipv6Packet::header_checked(&b[..40]).is_ok());
    }
}
