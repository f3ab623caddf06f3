//! Counters: per port, per drop reason, per network.

use std::fmt;

/// Why a frame was not delivered. Every drop is counted under exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than an Ethernet header (14 bytes).
    Runt,
    /// A VLAN TPID without a complete tag after it.
    BadVlanTag,
    /// Larger than the ingress port's MTU plus the Ethernet header.
    Oversized,
    /// A group (multicast or broadcast) address as the source.
    SourceMulticast,
    /// `00:00:00:00:00:00` as the source.
    SourceZero,
    /// Destined to the 802.1D reserved block `01:80:c2:00:00:0x` (STP, pause, LACP),
    /// which a bridge must not forward.
    LinkLocal,
    /// The destination was learned on the ingress port itself: it already heard the frame.
    LocalDestination,
    /// The frame is larger than the egress port's MTU.
    EgressTooBig,
    /// The egress queue was full (`EAGAIN`); the loop never blocks on a slow port.
    EgressFull,
    /// The egress interface is down (`EIO`).
    EgressDown,
    /// Any other write error on the egress port.
    EgressError,
    /// An offload the switch cannot finish in software (a GSO type it does not segment,
    /// a malformed virtio-net header).
    BadOffload,
    /// A flooded frame (broadcast, multicast, unknown unicast) over the port's rate.
    StormControl,
    /// The port is blocked for a while after it looked like part of a loop.
    LoopProtect,
    /// A frame from the overlay bound for the overlay again (split horizon): a VXLAN
    /// peer's frames never go to another peer.
    SplitHorizon,
    /// A datagram too short for a VXLAN header.
    VxlanTruncated,
    /// A VXLAN header without the I flag.
    VxlanNoIBit,
    /// A VXLAN header with reserved flags or fields set (the kernel drops those too).
    VxlanReservedBits,
    /// A VNI that no network of this endpoint uses.
    VxlanUnknownVni,
    /// A sender that is not a configured remote of the VNI: nobody outside the overlay
    /// injects frames into a network.
    VxlanUnknownRemote,
}

impl DropReason {
    /// How many reasons there are (the length of a counter array).
    pub const COUNT: usize = 20;

    /// Every reason, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Runt,
        DropReason::BadVlanTag,
        DropReason::Oversized,
        DropReason::SourceMulticast,
        DropReason::SourceZero,
        DropReason::LinkLocal,
        DropReason::LocalDestination,
        DropReason::EgressTooBig,
        DropReason::EgressFull,
        DropReason::EgressDown,
        DropReason::EgressError,
        DropReason::BadOffload,
        DropReason::StormControl,
        DropReason::LoopProtect,
        DropReason::SplitHorizon,
        DropReason::VxlanTruncated,
        DropReason::VxlanNoIBit,
        DropReason::VxlanReservedBits,
        DropReason::VxlanUnknownVni,
        DropReason::VxlanUnknownRemote,
    ];

    /// The reason's stable snake-case name, used in logs and statistics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Runt => "runt",
            DropReason::BadVlanTag => "bad_vlan_tag",
            DropReason::Oversized => "oversized",
            DropReason::SourceMulticast => "source_multicast",
            DropReason::SourceZero => "source_zero",
            DropReason::LinkLocal => "link_local",
            DropReason::LocalDestination => "local_destination",
            DropReason::EgressTooBig => "egress_too_big",
            DropReason::EgressFull => "egress_full",
            DropReason::EgressDown => "egress_down",
            DropReason::EgressError => "egress_error",
            DropReason::BadOffload => "bad_offload",
            DropReason::StormControl => "storm_control",
            DropReason::LoopProtect => "loop_protect",
            DropReason::SplitHorizon => "split_horizon",
            DropReason::VxlanTruncated => "vxlan_truncated",
            DropReason::VxlanNoIBit => "vxlan_no_i_bit",
            DropReason::VxlanReservedBits => "vxlan_reserved_bits",
            DropReason::VxlanUnknownVni => "vxlan_unknown_vni",
            DropReason::VxlanUnknownRemote => "vxlan_unknown_remote",
        }
    }

    /// Whether the reason is counted on the port a frame was going out of (the others
    /// are counted on the port it came in on). Every frame received is forwarded,
    /// flooded, answered or dropped for one of the others: `rx_frames = forwarded +
    /// floods + answered + rx_drops()`.
    pub fn is_egress(self) -> bool {
        matches!(
            self,
            DropReason::EgressTooBig
                | DropReason::EgressFull
                | DropReason::EgressDown
                | DropReason::EgressError
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one port has seen and done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames received on this port that went to one known port.
    pub forwarded: u64,
    /// Frames received on this port that were flooded (broadcast, multicast, unknown unicast).
    pub floods: u64,
    /// ARP requests and neighbour solicitations received on this port that the switch
    /// answered in the owner's name instead of flooding them (ARP suppression).
    pub answered: u64,
    /// Source MACs that moved to this port from another one.
    pub mac_moves: u64,
    /// Moves to this port refused because the MAC was seen on its old port within the hold-down.
    pub mac_moves_held: u64,
    /// Times this port was taken for part of a loop (a held move: a MAC flapping between
    /// ports faster than any host moves).
    pub loop_suspicions: u64,
    drops: [u64; DropReason::COUNT],
}

impl PortCounters {
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Drops of frames this port received (see [`DropReason::is_egress`]).
    pub fn rx_drops(&self) -> u64 {
        DropReason::ALL
            .iter()
            .filter(|r| !r.is_egress())
            .map(|&r| self.drops(r))
            .sum()
    }

    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }

    /// Every reason with a non-zero count.
    pub fn nonzero_drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.drops(r)))
            .filter(|&(_, n)| n > 0)
    }
}

impl fmt::Display for PortCounters {
    /// `key=value` pairs, stable for scripts and tests to parse.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rx_frames={} rx_bytes={} tx_frames={} tx_bytes={} forwarded={} floods={} answered={} mac_moves={} mac_moves_held={} loop_suspicions={}",
            self.rx_frames,
            self.rx_bytes,
            self.tx_frames,
            self.tx_bytes,
            self.forwarded,
            self.floods,
            self.answered,
            self.mac_moves,
            self.mac_moves_held,
            self.loop_suspicions
        )?;
        for reason in DropReason::ALL {
            write!(f, " drop_{}={}", reason.name(), self.drops(reason))?;
        }
        Ok(())
    }
}

/// What happened to one network's forwarding database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Entries pushed out by the size limit.
    pub evictions: u64,
    /// Entries removed by aging.
    pub expired: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_in_counter_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn counters_print_every_reason() {
        let mut c = PortCounters::default();
        c.count_drop(DropReason::Runt);
        c.count_drop(DropReason::Runt);
        let s = c.to_string();
        assert!(s.contains("drop_runt=2"));
        assert!(s.contains("drop_egress_error=0"));
        assert_eq!(c.total_drops(), 2);
        assert_eq!(
            c.nonzero_drops().collect::<Vec<_>>(),
            vec![(DropReason::Runt, 2)]
        );
    }
}
