//! Finishing L4 checksums a sender left partial.

use super::OffloadError;
use crate::checksum::{fold, sum16};
use crate::ip::{IpLayout, PROTO_TCP, PROTO_UDP};
use crate::tcp::TCP_CHECKSUM_OFFSET;
use crate::udp::UDP_CHECKSUM_OFFSET;

/// Finishes a partial checksum: the field at `start + offset` holds the pseudo-header sum;
/// the checksum covers everything from `start` to the end of the frame.
pub fn complete_checksum(
    frame: &mut [u8],
    start: usize,
    offset: usize,
) -> Result<(), OffloadError> {
    let at = start.saturating_add(offset);
    if start >= frame.len() || at.saturating_add(2) > frame.len() {
        return Err(OffloadError::BadChecksumOffsets {
            start,
            offset,
            len: frame.len(),
        });
    }
    let mut csum = !fold(sum16(0, &frame[start..]));
    if csum == 0 && offset == UDP_CHECKSUM_OFFSET {
        // UDP: a computed zero is sent as all ones (zero means "no checksum").
        csum = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

/// What [`finish_partial`] found in a frame's TCP or UDP checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Checksum {
    /// Not TCP or UDP over IPv4/IPv6 (or a fragment, or cut short): not looked at.
    NotApplicable,
    /// Correct (or a UDP checksum left out over IPv4).
    Valid,
    /// It held only the pseudo-header sum, as a sender that offloads the checksum
    /// leaves it; uswitch finished it.
    Finished,
    /// Wrong: left as it was, for the receiver to drop.
    Invalid,
}

/// Checks the TCP or UDP checksum of a complete frame and finishes it when it was left
/// partial. A Linux sender hands a packet on with `CHECKSUM_PARTIAL` (the checksum field
/// holding the pseudo-header sum, the rest for the NIC to add) and a veth keeps that
/// state, so a kernel VXLAN tunnel whose underlay is a veth sends inner checksums
/// unfinished; another kernel knows from the packet's metadata, a UDP socket's reader
/// sees only the bytes. A field equal to the pseudo-header sum in a packet whose checksum
/// does not verify is such a packet.
pub fn finish_partial(frame: &mut [u8]) -> L4Checksum {
    let Ok(ip) = IpLayout::of_frame(frame) else {
        return L4Checksum::NotApplicable;
    };
    let field = match ip.protocol {
        PROTO_TCP => TCP_CHECKSUM_OFFSET,
        PROTO_UDP => UDP_CHECKSUM_OFFSET,
        _ => return L4Checksum::NotApplicable,
    };
    if ip.fragment || ip.l4 + field + 2 > ip.end {
        return L4Checksum::NotApplicable;
    }
    let at = ip.l4 + field;
    let stored = u16::from_be_bytes([frame[at], frame[at + 1]]);
    if ip.protocol == PROTO_UDP && ip.v4 && stored == 0 {
        return L4Checksum::Valid;
    }
    if ip.l4_checksum_ok(frame) {
        return L4Checksum::Valid;
    }
    if stored != fold(ip.pseudo_sum(frame, ip.l4_len())) {
        return L4Checksum::Invalid;
    }
    // The field holds the pseudo-header sum: add the segment and store the complement.
    let mut sum = !fold(sum16(0, &frame[ip.l4..ip.end]));
    if sum == 0 && ip.protocol == PROTO_UDP {
        sum = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    L4Checksum::Finished
}
