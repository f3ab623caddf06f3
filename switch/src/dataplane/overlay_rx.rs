//! Reading a VXLAN endpoint: a burst of reads, each one datagram or (UDP GRO) several of
//! one size; the forwarder admits each (`Forwarder::admit_vxlan`) and the inner frame
//! takes the common path, entering at its remote's port. A stream's TCP segments that
//! arrive back to back are joined into one GSO frame first (`packets::gro::TcpGro`).

use std::io;

use forwarder::{DropReason, Millis};
use log::{debug, warn};
use packets::gro::TcpGro;
use packets::offload::{finish_partial, tcp_gso_header, VIRTIO_NET_HDR_LEN};
use packets::vxlan::VXLAN_HEADER_LEN;

use super::fabric::Shared;
use super::forward::plane;
use super::io::udp_tunnel::Received;
use super::worker::{Worker, BURST};

/// Where a VXLAN datagram is read into the frame buffer: its 8-byte header then ends
/// where the virtio-net header does, and the inner frame lands where every frame sits.
const VXLAN_AT: usize = VIRTIO_NET_HDR_LEN - VXLAN_HEADER_LEN;
/// A datagram longer than this cannot be one inner frame of a standard MTU: it may be a
/// kernel's whole GSO packet.
const LARGEST_PLAIN_DATAGRAM: usize = VXLAN_HEADER_LEN + 1518;

impl Worker {
    /// Reads up to a burst of datagrams from VXLAN endpoint `idx`, hands each to the
    /// forwarder and forwards the inner frames it admits; true if the socket may still
    /// have datagrams.
    pub(crate) fn service_vxlan(&mut self, sh: &Shared, idx: usize, now: Millis) -> bool {
        let w = self.index;
        for _ in 0..BURST {
            let Some(ep) = sh
                .endpoints
                .get(idx)
                .filter(|e| e.owner == w)
                .map(|e| &e.ep)
            else {
                return false;
            };
            let id = ep.id;
            let got = match ep.recv(&mut self.buf[VXLAN_AT..]) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("VXLAN socket {}:{}: {e}", ep.local, ep.port);
                    return false;
                }
            };
            self.frames_in += 1;
            if got.truncated {
                sh.fwd.refuse_vxlan(w, id, got.len, DropReason::Oversized);
                continue;
            }
            // A kernel's GSO packet that crossed a veth whole arrives as one datagram: one
            // VXLAN header and an inner TCP packet of many segments. It goes on as the GSO
            // frame it is.
            if got.len > LARGEST_PLAIN_DATAGRAM && self.forward_tunnel_gso(sh, idx, &got, now) {
                continue;
            }
            // One datagram, or (UDP GRO) several of `segment` bytes back to back. Each is
            // handled where it lies: the 10 bytes that end with its VXLAN header become
            // its all-zero virtio-net header (the inner frame is complete), which
            // overwrites only the tail of the datagram before it, already forwarded.
            let mut off = 0;
            while off < got.len {
                let len = got.segment.min(got.len - off);
                let at = VXLAN_AT + off;
                off += len;
                let ingress = match sh.fwd.admit_vxlan(w, id, &self.buf[at..at + len], got.from) {
                    Ok(port) => port,
                    Err(reason) => {
                        debug!(
                            "dropped a {len}-byte VXLAN datagram from {}: {reason}",
                            got.from
                        );
                        continue;
                    }
                };
                let inner = at + VXLAN_HEADER_LEN;
                // A read of several datagrams is where one TCP stream's segments arrive
                // back to back: join them into one GSO frame.
                if let Some((run, port)) = self.rx.run.as_mut() {
                    if *port == ingress
                        && run.append(
                            &mut self.rx.buf,
                            VIRTIO_NET_HDR_LEN,
                            &self.buf[inner..at + len],
                        )
                    {
                        continue;
                    }
                }
                self.flush_gro(sh, now);
                if got.segment < got.len {
                    if let Some(run) = TcpGro::start(&self.buf[inner..at + len]) {
                        self.rx.buf.clear();
                        self.rx.buf.extend_from_slice(&[0; VIRTIO_NET_HDR_LEN]);
                        self.rx.buf.extend_from_slice(&self.buf[inner..at + len]);
                        self.rx.run = Some((run, ingress));
                        continue;
                    }
                }
                // A kernel VTEP behind a veth leaves inner checksums partial; finish them
                // (see packets::offload::finish_partial). Segments that joined a run above
                // had theirs verified there, so each frame is summed once.
                finish_partial(&mut self.buf[inner..at + len]);
                let hdr = inner - VIRTIO_NET_HDR_LEN;
                self.buf[hdr..inner].fill(0);
                let mut plane = plane!(self, sh, ingress, now);
                plane.forward(&mut self.buf[hdr..at + len]);
            }
            self.flush_gro(sh, now);
        }
        true
    }

    /// Forwards a read that is one VXLAN header and one inner TCP GSO packet (see
    /// [`packets::offload::tcp_gso_header`]); false if the read is not that.
    fn forward_tunnel_gso(&mut self, sh: &Shared, idx: usize, got: &Received, now: Millis) -> bool {
        let inner = VXLAN_AT + VXLAN_HEADER_LEN;
        let end = VXLAN_AT + got.len;
        // One TCP packet spanning the whole read, larger than one segment?
        let Some(mut hdr) = tcp_gso_header(&self.buf[inner..end], 1) else {
            return false;
        };
        let Some(id) = sh.endpoints.get(idx).map(|e| e.ep.id) else {
            return false;
        };
        let ingress = match sh
            .fwd
            .admit_vxlan(self.index, id, &self.buf[VXLAN_AT..end], got.from)
        {
            Ok(port) => port,
            Err(reason) => {
                debug!(
                    "dropped a {}-byte VXLAN datagram from {}: {reason}",
                    got.len, got.from
                );
                return true;
            }
        };
        let headers = hdr.hdr_len as usize - packets::ETHERNET_HEADER_LEN;
        let gro_segment = (got.segment < got.len).then_some(got.segment);
        hdr.gso_size = sh.fwd.tunnel_segment_size(ingress, headers, gro_segment);
        self.flush_gro(sh, now);
        self.buf[..VIRTIO_NET_HDR_LEN].copy_from_slice(&hdr.emit());
        let mut plane = plane!(self, sh, ingress, now);
        plane.forward(&mut self.buf[..end]);
        true
    }

    /// Forwards the TCP segments joined so far, as one GSO frame (or the single segment
    /// as it came).
    fn flush_gro(&mut self, sh: &Shared, now: Millis) {
        let Some((run, ingress)) = self.rx.run.take() else {
            return;
        };
        let hdr = run
            .finish(&mut self.rx.buf[VIRTIO_NET_HDR_LEN..])
            .unwrap_or_default();
        self.rx.buf[..VIRTIO_NET_HDR_LEN].copy_from_slice(&hdr.emit());
        let mut buf = std::mem::take(&mut self.rx.buf);
        let mut plane = plane!(self, sh, ingress, now);
        plane.forward(&mut buf);
        self.rx.buf = buf;
    }
}
