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

    /// Whether uswitch created the interface (and so it disappears when uswitch lets go).
    pub fn created(&self) -> bool {
        match self {
            Device::Tap(t) => t.created(),
            Device::Uplink(_) => false,
        }
    }

    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Device::Tap(t) => t.read(buf),
            Device::Uplink(u) => u.read(buf),
        }
    }

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
