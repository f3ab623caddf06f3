//! What sits behind a port: a TAP, an uplink interface through AF_PACKET, or a VXLAN
//! remote.

use std::io;
use std::os::fd::RawFd;

use crate::packet::PacketSocket;
use crate::tap::Tap;
use crate::vxlan::Peer;

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

    /// "tap", "uplink" or "vxlan".
    pub fn kind(&self) -> &'static str {
        match self {
            Device::Tap(_) => "tap",
            Device::Uplink(_) => "uplink",
            Device::Vxlan(_) => "vxlan",
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

    /// Whether a UDP GSO frame (GSO type UDP_L4) may be written to this device: a TAP
    /// whose kernel took the USO offloads (Linux 6.2 on, the same kernels that accept
    /// such frames from userspace), or a VXLAN remote (segmented for UDP GSO sends).
    pub fn takes_udp_gso(&self) -> bool {
        match self {
            Device::Tap(t) => t.offloads().contains(&"uso4"),
            Device::Uplink(_) => false,
            Device::Vxlan(_) => true,
        }
    }

    /// The offloads in force, by name.
    pub fn offloads(&self) -> Vec<&'static str> {
        match self {
            Device::Tap(t) => t.offloads().to_vec(),
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
