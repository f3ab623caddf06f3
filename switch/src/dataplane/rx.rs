//! The receive side's reusable state: the run of TCP segments from a VXLAN remote being
//! coalesced (see `overlay_rx`).

use forwarder::PortId;
use packets::gro::TcpGro;

/// TCP segments from a VXLAN remote being joined into one GSO frame.
pub(crate) struct Rx {
    /// The run, behind a virtio-net header.
    pub(crate) buf: Vec<u8>,
    pub(crate) run: Option<(TcpGro, PortId)>,
}

impl Rx {
    pub(crate) fn new(frame_buf: usize) -> Rx {
        Rx {
            buf: Vec::with_capacity(frame_buf),
            run: None,
        }
    }
}
