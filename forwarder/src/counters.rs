//! Counters: per port, per drop reason, per network.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// A port's counters as one worker keeps them: the same fields as [`PortCounters`], each
/// an atomic that only its worker's thread adds to (a relaxed load and store, no locked
/// instruction on the fast path) and that anyone may read. Padded to whole cache lines so
/// that two workers counting on the same port never write the same line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Tally {
    rx_frames: AtomicU64,
    rx_bytes: AtomicU64,
    tx_frames: AtomicU64,
    tx_bytes: AtomicU64,
    forwarded: AtomicU64,
    floods: AtomicU64,
    answered: AtomicU64,
    mac_moves: AtomicU64,
    mac_moves_held: AtomicU64,
    loop_suspicions: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
}

/// One writer per tally (its worker), so a load and a store add without a locked
/// read-modify-write; readers see each counter whole.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl Tally {
    pub fn forwarded(&self) {
        bump(&self.forwarded, 1);
    }

    pub fn flooded(&self) {
        bump(&self.floods, 1);
    }

    pub fn answered(&self) {
        bump(&self.answered, 1);
    }

    pub fn mac_moved(&self) {
        bump(&self.mac_moves, 1);
    }

    pub fn move_held(&self) {
        bump(&self.mac_moves_held, 1);
    }

    pub fn loop_suspected(&self) {
        bump(&self.loop_suspicions, 1);
    }

    /// A frame received: its count and bytes.
    pub fn received(&self, len: usize) {
        bump(&self.rx_frames, 1);
        bump(&self.rx_bytes, len as u64);
    }

    /// `frames` frames sent, `bytes` in all.
    pub fn sent(&self, frames: usize, bytes: usize) {
        bump(&self.tx_frames, frames as u64);
        bump(&self.tx_bytes, bytes as u64);
    }

    pub fn count_drop(&self, reason: DropReason) {
        bump(&self.drops[reason.index()], 1);
    }

    /// Adds this tally into `into`.
    pub fn add_into(&self, into: &mut PortCounters) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        into.rx_frames += get(&self.rx_frames);
        into.rx_bytes += get(&self.rx_bytes);
        into.tx_frames += get(&self.tx_frames);
        into.tx_bytes += get(&self.tx_bytes);
        into.forwarded += get(&self.forwarded);
        into.floods += get(&self.floods);
        into.answered += get(&self.answered);
        into.mac_moves += get(&self.mac_moves);
        into.mac_moves_held += get(&self.mac_moves_held);
        into.loop_suspicions += get(&self.loop_suspicions);
        for (sum, c) in into.drops.iter_mut().zip(&self.drops) {
            *sum += get(c);
        }
    }
}

/// A port's (or an endpoint's) counters: one [`Tally`] per worker, summed on read.
#[derive(Debug)]
pub struct Tallies(Box<[Tally]>);

impl Tallies {
    pub fn new(workers: usize) -> Tallies {
        Tallies((0..workers.max(1)).map(|_| Tally::default()).collect())
    }

    /// Worker `w`'s tally (the last one for a worker beyond those counted for, which
    /// only a misconfigured caller can be).
    pub fn of(&self, w: usize) -> &Tally {
        &self.0[w.min(self.0.len() - 1)]
    }

    /// Every worker's counts added up.
    pub fn sum(&self) -> PortCounters {
        let mut c = PortCounters::default();
        for t in self.0.iter() {
            t.add_into(&mut c);
        }
        c
    }

    /// The counts of worker `w` alone.
    pub fn of_worker(&self, w: usize) -> PortCounters {
        let mut c = PortCounters::default();
        if let Some(t) = self.0.get(w) {
            t.add_into(&mut c);
        }
        c
    }

    /// For `workers` workers, keeping every count so far.
    pub fn resize(&mut self, workers: usize) {
        let mut sum = Tally::default();
        for t in self.0.iter() {
            let mut c = PortCounters::default();
            t.add_into(&mut c);
            sum.absorb(&c);
        }
        let mut all: Vec<Tally> = (0..workers.max(1)).map(|_| Tally::default()).collect();
        all[0] = sum;
        self.0 = all.into_boxed_slice();
    }
}

impl Tally {
    fn absorb(&mut self, c: &PortCounters) {
        let put = |a: &mut AtomicU64, v: u64| *a.get_mut() += v;
        put(&mut self.rx_frames, c.rx_frames);
        put(&mut self.rx_bytes, c.rx_bytes);
        put(&mut self.tx_frames, c.tx_frames);
        put(&mut self.tx_bytes, c.tx_bytes);
        put(&mut self.forwarded, c.forwarded);
        put(&mut self.floods, c.floods);
        put(&mut self.answered, c.answered);
        put(&mut self.mac_moves, c.mac_moves);
        put(&mut self.mac_moves_held, c.mac_moves_held);
        put(&mut self.loop_suspicions, c.loop_suspicions);
        for (a, &v) in self.drops.iter_mut().zip(&c.drops) {
            put(a, v);
        }
    }
}

/// A network's table statistics, counted by whichever worker saw the event.
#[derive(Debug, Default)]
pub struct NetworkTally {
    pub(crate) evictions: AtomicU64,
    pub(crate) expired: AtomicU64,
}

impl NetworkTally {
    pub fn read(&self) -> NetworkStats {
        NetworkStats {
            evictions: self.evictions.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
        }
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
