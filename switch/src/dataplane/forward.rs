//! Carrying out the forwarder's plan for one frame: captures, the checksum finished once,
//! each egress written the way the plan says, UDP runs held and joined. Nothing here
//! decides where or how a frame goes; it only moves the bytes and counts what the
//! devices say.

use std::io;

use forwarder::{Delivery, DropReason, Forwarder, Millis, Plan, PortId};
use log::debug;
use packets::gro::UdpJoin;
use packets::offload::{
    complete_checksum, segment_gso, segment_headers, Offload, VirtioNetHdr, F_NEEDS_CSUM,
    VIRTIO_NET_HDR_LEN,
};
use packets::vxlan::{write_header, VXLAN_HEADER_LEN};

use super::capture::Direction;
use super::device::Device;
use super::io::tap::is_vanished;
use super::io::udp_tunnel::{send_replicas, Gathered, REPLICAS_PER_CALL};
use super::port::PortDev;

/// What transmitting reuses from frame to frame, so it allocates nothing per frame.
pub(crate) struct Tx {
    pub(crate) plan: Plan,
    segment_scratch: Vec<u8>,
    /// The heads (VXLAN and segment headers) of the datagrams of one GSO frame bound
    /// for a VXLAN remote.
    heads: Vec<u8>,
    /// UDP datagrams held to be written to one port as one GSO frame.
    pub(crate) held: HeldUdp,
}

impl Tx {
    /// For worker `w`: its plans count in its tallies and learn through its caches.
    pub(crate) fn new(frame_buf: usize, w: usize) -> Tx {
        Tx {
            plan: Plan::for_worker(w),
            segment_scratch: Vec::with_capacity(frame_buf),
            heads: Vec::new(),
            held: HeldUdp {
                buf: Vec::with_capacity(frame_buf),
                run: None,
            },
        }
    }
}

/// UDP datagrams of one flow, bound for one port whose plan says
/// [`Delivery::JoinUdp`], being joined into one UDP GSO frame ([`UdpJoin`]) so that a
/// burst of small datagrams costs one write (or one `sendmsg` with UDP GSO) instead of
/// one each. Held only for the rest of the burst it arrived in; anything else bound
/// anywhere first flushes it, so no frame overtakes another.
pub(crate) struct HeldUdp {
    /// The first datagram's virtio-net header, then the run.
    buf: Vec<u8>,
    pub(crate) run: Option<(UdpJoin, PortId)>,
}

/// The parts of the switch one received frame touches, borrowed for its journey: the
/// shared forwarder and devices (under the read lock), the worker's own buffers.
pub(crate) struct Plane<'a> {
    pub(crate) fwd: &'a Forwarder,
    pub(crate) ports: &'a [Option<PortDev>],
    pub(crate) vanished: &'a mut Vec<(PortId, String)>,
    pub(crate) tx: &'a mut Tx,
    /// The worker carrying the frame (whose tallies count it).
    pub(crate) worker: usize,
    pub(crate) ingress: PortId,
    pub(crate) now: Millis,
}

/// The [`Plane`] for a frame entering at `$ingress`, carried by worker `$w` with the
/// shared state `$sh`: borrowed field by field, so that the frame buffers stay free for
/// the caller.
macro_rules! plane {
    ($w:expr, $sh:expr, $ingress:expr, $now:expr) => {
        $crate::dataplane::forward::Plane {
            fwd: &$sh.fwd,
            ports: &$sh.ports,
            vanished: &mut $w.vanished,
            tx: &mut $w.tx,
            worker: $w.index,
            ingress: $ingress,
            now: $now,
        }
    };
}
pub(crate) use plane;

fn port_dev(ports: &[Option<PortDev>], id: PortId) -> Option<&PortDev> {
    ports.get(id.0 as usize)?.as_ref()
}

impl Plane<'_> {
    /// Captures, plans and transmits one frame from the ingress port. `buf` holds the
    /// virtio-net header, then the frame.
    pub(crate) fn forward(&mut self, buf: &mut [u8]) {
        let Some(offload) = VirtioNetHdr::parse(buf).and_then(|h| h.offload()) else {
            let len = buf.len().saturating_sub(VIRTIO_NET_HDR_LEN);
            self.fwd
                .record_rx_drop(self.worker, self.ingress, len, DropReason::BadOffload);
            return;
        };
        if let Some(port) = port_dev(self.ports, self.ingress) {
            if port.capture(&buf[VIRTIO_NET_HDR_LEN..], Direction::In) {
                self.fwd.set_captured(self.ingress, false);
            }
        }
        let mut plan = std::mem::take(&mut self.tx.plan);
        self.fwd.plan(
            self.ingress,
            &buf[VIRTIO_NET_HDR_LEN..],
            offload,
            self.now,
            &mut plan,
        );
        self.carry_out(&plan, buf, offload);
        self.tx.plan = plan;
    }

    fn carry_out(&mut self, plan: &Plan, buf: &mut [u8], mut offload: Offload) {
        if plan.egresses.is_empty() {
            debug!(
                "dropped a {}-byte frame from port {}",
                buf.len(),
                self.ingress.0
            );
            return;
        }
        if let Some((start, offset)) = plan.finish_checksum {
            // The forwarder checked the offsets; a refusal here would be a bug, counted.
            if complete_checksum(&mut buf[VIRTIO_NET_HDR_LEN..], start, offset).is_err() {
                self.fwd
                    .count_drop(self.worker, self.ingress, DropReason::BadOffload);
                return;
            }
            buf[0] &= !F_NEEDS_CSUM;
            offload = Offload::None;
        }
        if let [(egress, Delivery::Reply { with_header })] = plan.egresses[..] {
            // The forwarder answered in an address owner's name: its answer, not the
            // question, goes back to the asker.
            self.flush_held();
            let bytes = plan.reply_bytes(with_header);
            let frame = plan.reply_bytes(false);
            self.write(egress, bytes, frame);
            return;
        }
        if let [(egress, Delivery::JoinUdp { with_header })] = plan.egresses[..] {
            if self.hold_udp(egress, buf, offload) {
                return;
            }
            self.flush_held();
            let alone = if with_header {
                Delivery::WithHeader
            } else {
                Delivery::Frame
            };
            self.deliver(egress, buf, alone);
            return;
        }
        self.flush_held();
        let mut rest = &plan.egresses[..];
        while let Some(&(egress, delivery)) = rest.first() {
            let replicated = self.replicate(rest, &buf[VIRTIO_NET_HDR_LEN..]);
            if replicated > 0 {
                rest = &rest[replicated..];
                continue;
            }
            self.deliver(egress, buf, delivery);
            rest = &rest[1..];
        }
    }

    /// Head-end replication: when `egresses` starts with two or more VXLAN remotes that
    /// take the plain frame through one endpoint (a flood across the overlay), sends the
    /// frame to all of them in one call; returns how many egresses that took (0: none
    /// was sent here).
    fn replicate(&mut self, egresses: &[(PortId, Delivery)], frame: &[u8]) -> usize {
        // A frame to one egress (every unicast) is not a flood: straight on.
        if egresses.len() < 2 {
            return 0;
        }
        let ports = self.ports;
        let remote =
            |&(egress, delivery): &(PortId, Delivery)| match (delivery, port_dev(ports, egress)) {
                (
                    Delivery::Frame,
                    Some(PortDev {
                        dev: Device::Vxlan(peer),
                        ..
                    }),
                ) => Some(peer),
                _ => None,
            };
        let Some(first) = egresses.first().and_then(remote) else {
            return 0;
        };
        let mut peers = [first; REPLICAS_PER_CALL];
        let mut n = 1;
        for peer in egresses[1..].iter().map_while(remote) {
            if n == REPLICAS_PER_CALL || !peer.shares_senders(first) {
                break;
            }
            peers[n] = peer;
            n += 1;
        }
        if n < 2 {
            return 0;
        }
        let (to, fwd, vanished) = (self.tally(), self.fwd, &mut *self.vanished);
        send_replicas(&peers[..n], frame, |i, result| {
            let egress = egresses[i].0;
            let Some(port) = port_dev(ports, egress) else {
                return;
            };
            match result {
                Ok(()) => {
                    to.sent(egress, frame.len());
                    port.set_down(false);
                    if port.capture(frame, Direction::Out) {
                        fwd.set_captured(egress, false);
                    }
                }
                Err(e) => count_tx_error(to, port, vanished, egress, &e),
            }
        });
        n
    }

    /// Holds a UDP datagram bound for `egress` alone, to be written together with the
    /// datagrams of its flow that follow it in the burst (see [`HeldUdp`]); true if it
    /// was held.
    fn hold_udp(&mut self, egress: PortId, buf: &[u8], offload: Offload) -> bool {
        let partial = match offload {
            Offload::None => None,
            Offload::Checksum { start, offset } => Some((start, offset)),
            Offload::Segment { .. } => return false,
        };
        let frame = &buf[VIRTIO_NET_HDR_LEN..];
        let held = &mut self.tx.held;
        if let Some((run, to)) = held.run.as_mut() {
            if *to == egress && run.append(&mut held.buf, VIRTIO_NET_HDR_LEN, frame, partial) {
                return true;
            }
        }
        self.flush_held();
        let held = &mut self.tx.held;
        held.buf.clear();
        held.buf.extend_from_slice(&buf[..VIRTIO_NET_HDR_LEN]);
        let Some(run) = UdpJoin::start(&mut held.buf, VIRTIO_NET_HDR_LEN, frame, partial) else {
            return false;
        };
        held.run = Some((run, egress));
        true
    }

    /// Writes the datagrams held for joining, if any, counting each: one write of the
    /// joined frame to a port with the header, one `sendmsg` to a VXLAN remote.
    pub(crate) fn flush_held(&mut self) {
        let Some((run, egress)) = self.tx.held.run.take() else {
            return;
        };
        let mut buf = std::mem::take(&mut self.tx.held.buf);
        let hdr = run.finish(&mut buf[VIRTIO_NET_HDR_LEN..]);
        if let Some(h) = hdr {
            buf[..VIRTIO_NET_HDR_LEN].copy_from_slice(&h.emit());
        }
        let remote = matches!(
            port_dev(self.ports, egress),
            Some(PortDev {
                dev: Device::Vxlan(_),
                ..
            })
        );
        let frame = &buf[VIRTIO_NET_HDR_LEN..];
        match hdr {
            Some(h) if remote => self.send_to_remote(egress, frame, false, h.gso_size.into()),
            _ => {
                if let Some(port) = port_dev(self.ports, egress) {
                    let bytes = if remote { frame } else { &buf[..] };
                    match port.dev.write(bytes) {
                        Ok(_) => {
                            // Every datagram repeats the headers the run holds once.
                            let all = frame.len() + (run.count() - 1) * run.header_len();
                            self.fwd
                                .record_tx_frames(self.worker, egress, run.count(), all);
                            port.set_down(false);
                        }
                        Err(e) => {
                            for _ in 0..run.count() {
                                count_tx_error(self.tally(), port, self.vanished, egress, &e);
                            }
                        }
                    }
                }
            }
        }
        self.tx.held.buf = buf;
    }

    /// Writes to `egress` as `delivery` says.
    fn deliver(&mut self, egress: PortId, buf: &[u8], delivery: Delivery) {
        let frame = &buf[VIRTIO_NET_HDR_LEN..];
        match delivery {
            Delivery::WithHeader | Delivery::JoinUdp { with_header: true } => {
                self.write(egress, buf, frame)
            }
            Delivery::Frame | Delivery::JoinUdp { with_header: false } => {
                self.write(egress, frame, frame)
            }
            // Carried out by carry_out, which holds the plan's reply; never planned
            // beside other egresses.
            Delivery::Reply { .. } => {}
            Delivery::Segments { tcp, size } => {
                let remote = matches!(
                    port_dev(self.ports, egress),
                    Some(PortDev {
                        dev: Device::Vxlan(_),
                        ..
                    })
                );
                if remote {
                    self.send_to_remote(egress, frame, tcp, size);
                    return;
                }
                let Some(port) = port_dev(self.ports, egress) else {
                    return;
                };
                let (to, vanished) = (self.tally(), &mut *self.vanished);
                let mut closed = false;
                let mut each = |seg: &[u8]| {
                    closed |= write_counted(to, port, vanished, egress, seg, seg);
                };
                let done = segment_gso(frame, tcp, size, &mut self.tx.segment_scratch, &mut each);
                if done.is_err() {
                    self.fwd
                        .record_tx_drop(self.worker, egress, DropReason::EgressError);
                }
                if closed {
                    self.fwd.set_captured(egress, false);
                }
            }
        }
    }

    fn write(&mut self, egress: PortId, bytes: &[u8], frame: &[u8]) {
        if let Some(port) = port_dev(self.ports, egress) {
            if write_counted(self.tally(), port, self.vanished, egress, bytes, frame) {
                self.fwd.set_captured(egress, false);
            }
        }
    }

    /// Segments the GSO `frame` for the VXLAN remote `egress` and sends the datagrams
    /// together (UDP GSO): one `sendmsg` for the whole frame where the kernel allows.
    /// Only the headers of each segment are built; the payload goes from `frame`.
    fn send_to_remote(&mut self, egress: PortId, frame: &[u8], tcp: bool, size: usize) {
        let Some(port) = port_dev(self.ports, egress) else {
            return;
        };
        let Device::Vxlan(peer) = &port.dev else {
            return;
        };
        let to = self.tally();
        let heads = &mut self.tx.heads;
        let Ok(segs) = segment_headers(frame, tcp, size, VXLAN_HEADER_LEN, heads) else {
            self.fwd
                .record_tx_drop(self.worker, egress, DropReason::EgressError);
            return;
        };
        let head_len = VXLAN_HEADER_LEN + segs.header_len;
        for head in heads.chunks_exact_mut(head_len) {
            if let Some(vxlan) = head.first_chunk_mut() {
                write_header(vxlan, peer.vni());
            }
        }
        let batch = Gathered { heads, frame, segs };
        let (sent, err) = peer.send_gathered(&batch);
        let mut closed = false;
        for i in 0..segs.count {
            let [head, payload] = batch.parts(i);
            if i < sent {
                self.fwd.record_tx(
                    self.worker,
                    egress,
                    head.len() - VXLAN_HEADER_LEN + payload.len(),
                );
                if port.is_captured() {
                    // A capture wants the inner frame whole: put it together for it.
                    let seg = &mut self.tx.segment_scratch;
                    seg.clear();
                    seg.extend_from_slice(&head[VXLAN_HEADER_LEN..]);
                    seg.extend_from_slice(payload);
                    closed |= port.capture(seg, Direction::Out);
                }
            } else if let Some(e) = &err {
                count_tx_error(to, port, self.vanished, egress, e);
            }
        }
        if closed {
            self.fwd.set_captured(egress, false);
        }
    }
}

/// Where a worker counts a port's transmissions: the forwarder and the worker's index.
#[derive(Clone, Copy)]
struct Tallied<'a> {
    fwd: &'a Forwarder,
    worker: usize,
}

impl Tallied<'_> {
    fn sent(self, egress: PortId, len: usize) {
        self.fwd.record_tx(self.worker, egress, len);
    }

    fn dropped(self, egress: PortId, reason: DropReason) {
        self.fwd.record_tx_drop(self.worker, egress, reason);
    }
}

impl<'a> Plane<'a> {
    fn tally(&self) -> Tallied<'a> {
        Tallied {
            fwd: self.fwd,
            worker: self.worker,
        }
    }
}

/// Writes `bytes` (which end with `frame`) to `port`, counting what happened; true if
/// that ended the port's capture. Never blocks.
fn write_counted(
    to: Tallied<'_>,
    port: &PortDev,
    vanished: &mut Vec<(PortId, String)>,
    egress: PortId,
    bytes: &[u8],
    frame: &[u8],
) -> bool {
    match port.dev.write(bytes) {
        Ok(_) => {
            to.sent(egress, frame.len());
            port.set_down(false);
            port.capture(frame, Direction::Out)
        }
        Err(e) => {
            count_tx_error(to, port, vanished, egress, &e);
            false
        }
    }
}

/// Counts a failed write to `egress` under the reason its error gives.
fn count_tx_error(
    to: Tallied<'_>,
    port: &PortDev,
    vanished: &mut Vec<(PortId, String)>,
    egress: PortId,
    e: &io::Error,
) {
    match e {
        // No room: in the device's queue, or (ENOBUFS) in the qdisc in front of the
        // VXLAN underlay.
        e if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS) => {
            to.dropped(egress, DropReason::EgressFull)
        }
        // Over the underlay's path MTU (VXLAN never fragments the outer packet).
        e if e.raw_os_error() == Some(libc::EMSGSIZE) => {
            to.dropped(egress, DropReason::EgressTooBig)
        }
        e if matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::ENETDOWN)) => {
            to.dropped(egress, DropReason::EgressDown);
            port.set_down(true);
        }
        e => {
            to.dropped(egress, DropReason::EgressError);
            if is_vanished(e) && !vanished.iter().any(|(p, _)| *p == egress) {
                vanished.push((egress, "its interface is gone".into()));
            }
        }
    }
}
