//! What sits behind a port: a TAP, an uplink interface through AF_PACKET, or a VXLAN
//! remote.

use std::io;
use std::os::fd::RawFd;

use forwarder::{EgressCaps, PortKind};

use super::io::af_packet::PacketSocket;
use super::io::tap::Tap;
use super::io::udp_tunnel::Peer;

/// A port's device.
#[derive(Debug)]
pub enum Device {
    Tap(Tap),
    Uplink(PacketSocket),
    /// A remote VTEP of one network: frames written are encapsulated and sent to it;
    /// frames from it arrive through its endpoint's socket, not through the port.
    Vxlan(Peer),
}

impl Device {
    pub fn name(&self) -> &str {
        match self {
            Device::Tap(t) => t.name(),
            Device::Uplink(u) => u.name(),
            Device::Vxlan(p) => p.name(),
        }
    }

    pub fn kind(&self) -> PortKind {
        match self {
            Device::Tap(_) => PortKind::Tap,
            Device::Uplink(_) => PortKind::Uplink,
            Device::Vxlan(_) => PortKind::Remote,
        }
    }

    /// Whether frames cross this device behind a virtio-net header (and so may be GSO
    /// frames or carry partial checksums, both ways).
    pub fn vnet_hdr(&self) -> bool {
        match self {
            Device::Tap(t) => t.vnet_hdr(),
            Device::Uplink(_) => true,
            // GSO frames are cut and checksums finished before encapsulation.
            Device::Vxlan(_) => false,
        }
    }

    /// What the device takes on egress, for the forwarder's plans. A UDP GSO frame (GSO
    /// type UDP_L4) may go to a TAP whose kernel took the USO offloads (Linux 6.2 on, the
    /// same kernels that accept such frames from userspace), or to a VXLAN remote
    /// (segmented for UDP GSO sends); never to an uplink.
    pub fn caps(&self) -> EgressCaps {
        EgressCaps {
            kind: self.kind(),
            vnet_hdr: self.vnet_hdr(),
            udp_gso: match self {
                Device::Tap(t) => t.offloads().uso(),
                Device::Uplink(_) => false,
                Device::Vxlan(_) => true,
            },
        }
    }

    /// The offloads in force, by name.
    pub fn offloads(&self) -> Vec<&'static str> {
        match self {
            Device::Tap(t) => t.offloads().names(),
            Device::Uplink(_) => vec!["vnet_hdr"],
            Device::Vxlan(_) => Vec::new(),
        }
    }

    /// Whether uswitch created the interface (and so it disappears when uswitch lets go).
    pub fn created(&self) -> bool {
        match self {
            Device::Tap(t) => t.created(),
            Device::Uplink(_) | Device::Vxlan(_) => false,
        }
    }

    /// Reads one frame (behind its virtio-net header when [`Device::vnet_hdr`]).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Device::Tap(t) => t.read(buf),
            Device::Uplink(u) => u.read(buf),
            Device::Vxlan(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Writes one frame (behind its virtio-net header when [`Device::vnet_hdr`]).
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        match self {
            Device::Tap(t) => t.write(frame),
            Device::Uplink(u) => u.write(frame),
            Device::Vxlan(p) => p.write(frame),
        }
    }

    /// The descriptor the event loop polls for frames (none for a VXLAN peer).
    pub fn raw_fd(&self) -> Option<RawFd> {
        match self {
            Device::Tap(t) => Some(t.as_raw_fd_for_poll()),
            Device::Uplink(u) => Some(u.as_raw_fd_for_poll()),
            Device::Vxlan(_) => None,
        }
    }
}
