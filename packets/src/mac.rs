//! The 48-bit IEEE MAC address.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`, never a valid source.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Reads a MAC address from the first six bytes of `bytes`, if there are six.
    pub fn from_bytes(bytes: &[u8]) -> Option<MacAddr> {
        let six: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(MacAddr(six))
    }

    /// The I/G bit: set for group (multicast and broadcast) addresses.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// The IEEE 802.1D reserved link-local block `01:80:c2:00:00:00` to `..:0f`
    /// (STP, pause frames, LACP, 802.1X). A bridge consumes these and never forwards them.
    pub fn is_link_local(&self) -> bool {
        self.0[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && self.0[5] & 0xf0 == 0
    }

    /// A unicast address suitable as a frame source: not group, not all zeros.
    pub fn is_valid_source(&self) -> bool {
        !self.is_multicast() && !self.is_zero()
    }

    /// The address as the low 48 bits of a `u64` (handy as a compact key).
    pub fn to_u64(&self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// The address whose low 48 bits are those of `v`.
    pub fn from_u64(v: u64) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not six colon- or dash-separated hex octets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a MAC address (expected six hex octets such as 02:00:00:00:00:01)")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]).is_multicast());
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(!MacAddr([0x02, 0, 0, 0, 0, 1]).is_multicast());
        assert!(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]).is_link_local());
        assert!(!MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x10]).is_link_local());
        assert!(!MacAddr::ZERO.is_valid_source());
        assert!(!MacAddr::BROADCAST.is_valid_source());
        assert!(MacAddr([0x02, 0, 0, 0, 0, 1]).is_valid_source());
    }

    #[test]
    fn parses_and_prints() {
        let m: MacAddr = "02:AB:cd:00:00:0f".parse().unwrap();
        assert_eq!(m, MacAddr([0x02, 0xab, 0xcd, 0, 0, 0x0f]));
        assert_eq!(m.to_string(), "02:ab:cd:00:00:0f");
        assert_eq!("02-ab-cd-00-00-0f".parse::<MacAddr>().unwrap(), m);
        for bad in [
            "",
            "02:ab",
            "02:ab:cd:00:00:0f:11",
            "02:ab:cd:00:00:zz",
            "002:ab:cd:0:0:1",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn u64_round_trip() {
        let m = MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(m.to_u64(), 0x0211_2233_4455);
        assert_eq!(MacAddr::from_u64(m.to_u64()), m);
    }
}
