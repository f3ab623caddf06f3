//! What sits behind a port: a TAP, or an uplink interface through AF_PACKET.

use std::io;
use std::os::fd::RawFd;

use crate::packet::PacketSocket;
use crate::tap::Tap;

/// A port's device.
#[derive(Debug)]
pub enum Device {
    Tap(Tap),
    Uplink(PacketSocket),
}

impl Device {
    pub fn name(&self) -> &str {
        match self {
            Device::Tap(t) => t.name(),
            Device::Uplink(u) => u.name(),
        }
    }

    /// "tap" or "uplink".
    pub fn kind(&self) -> &'static str {
        match self {
            Device::Tap(_) => "tap",
            Device::Uplink(_) => "uplink",
        }
    }

    /// Whether frames cross this device behind a virtio-net header (and so may be GSO
    /// frames or carry partial checksums, both ways).
    pub fn vnet_hdr(&self) -> bool {
        match self {
            Device::Tap(t) => t.vnet_hdr(),
            Device::Uplink(_) => true,
        }
    }

    /// The offloads in force, by name.
    pub fn offloads(&self) -> Vec<&'static str> {
        match self {
            Device::Tap(t) => t.offloads().to_vec(),
            Device::Uplink(_) => vec!["vnet_hdr"],
        }
    }

    /// Whether uswitch created the interface (and so it disappears when uswitch lets go).
    pub fn created(&self) -> bool {
        match self {
            Device::Tap(t) => t.created(),
            Device::Uplink(_) => false,
        }
    }

    /// Reads one frame (behind its virtio-net header when [`Device::vnet_hdr`]).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Device::Tap(t) => t.read(buf),
            Device::Uplink(u) => u.read(buf),
        }
    }

    /// Writes one frame (behind its virtio-net header when [`Device::vnet_hdr`]).
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        match self {
            Device::Tap(t) => t.write(frame),
            Device::Uplink(u) => u.write(frame),
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        match self {
            Device::Tap(t) => t.as_raw_fd_for_poll(),
            Device::Uplink(u) => u.as_raw_fd_for_poll(),
        }
    }
}
