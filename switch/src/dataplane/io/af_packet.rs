//! An uplink: an existing interface (a NIC or a veth end) attached through an AF_PACKET
//! socket in promiscuous mode, so that the containers of its network appear on the
//! interface's LAN with their own MACs (what Docker's macvlan driver gives a container).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::setsockopt_int;
use super::tap::{validate_ifname, TapError};
// PACKET_IGNORE_OUTGOING (Linux 4.20): do not hand our own transmissions back to us.
// PACKET_VNET_HDR: every frame carries a virtio-net header, so partial checksums and GSO
// frames (veth peers and GRO hand us both) arrive described rather than broken.
use libc::{PACKET_IGNORE_OUTGOING, PACKET_VNET_HDR};

/// A raw packet socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    name: String,
}

fn os_err(name: &str, step: &'static str) -> TapError {
    step_err(name, step, io::Error::last_os_error())
}

fn step_err(name: &str, step: &'static str, source: io::Error) -> TapError {
    match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => TapError::PermissionDenied(name.to_string()),
        _ => TapError::Io {
            name: name.to_string(),
            step,
            source,
        },
    }
}

/// Turns on the integer `SOL_PACKET` option `option`.
fn set_packet_option(fd: RawFd, option: libc::c_int) -> io::Result<()> {
    setsockopt_int(fd, libc::SOL_PACKET, option, 1)
}

/// Binds the AF_PACKET socket `fd` to every protocol on the interface `ifindex`.
pub fn bind_to_interface(fd: RawFd, ifindex: i32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: binding with a sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd,
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl PacketSocket {
    /// The uplink socket behind `fd`, handed over by the uswitch this one takes over
    /// from (bound, promiscuous and set up as [`PacketSocket::open`] left it).
    pub fn adopt(fd: OwnedFd, name: &str) -> PacketSocket {
        PacketSocket {
            fd,
            name: name.to_string(),
        }
    }

    /// The socket's descriptor, for a handover to a new uswitch.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// Opens `name` (which must exist) for sending and receiving every frame, and puts it
    /// in promiscuous mode for as long as the socket lives.
    pub fn open(name: &str) -> Result<PacketSocket, TapError> {
        validate_ifname(name).map_err(|why| TapError::InvalidName {
            name: name.to_string(),
            why,
        })?;
        let cname = CString::new(name).map_err(|_| TapError::InvalidName {
            name: name.to_string(),
            why: "it contains a NUL byte".into(),
        })?;
        // SAFETY: if_nametoindex on a NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(TapError::Io {
                name: name.to_string(),
                step: "finding the uplink interface",
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "no such interface in this namespace",
                ),
            });
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2); the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                proto as libc::c_int,
            )
        };
        if fd < 0 {
            return Err(os_err(name, "opening an AF_PACKET socket"));
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        set_packet_option(fd.as_raw_fd(), PACKET_IGNORE_OUTGOING)
            .map_err(|e| step_err(name, "PACKET_IGNORE_OUTGOING (needs Linux 4.20)", e))?;
        set_packet_option(fd.as_raw_fd(), PACKET_VNET_HDR)
            .map_err(|e| step_err(name, "PACKET_VNET_HDR", e))?;
        bind_to_interface(fd.as_raw_fd(), ifindex)
            .map_err(|e| step_err(name, "binding to the uplink", e))?;
        // SAFETY: packet_mreq is plain data.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = ifindex;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        // SAFETY: setsockopt with a packet_mreq of the right size; the membership (and
        // promiscuous mode) ends when the socket closes.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq as *const libc::packet_mreq as *const libc::c_void,
                std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(os_err(name, "entering promiscuous mode"));
        }
        Ok(PacketSocket {
            fd,
            name: name.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame, preceded by its virtio-net header.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of its length; the fd is ours and open.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            // With MSG_TRUNC a frame larger than the buffer reports its real length; clamp
            // so the caller sees an oversized (and counted) frame, never an overrun.
            Ok((n as usize).min(buf.len()))
        }
    }

    /// Sends one frame behind its virtio-net header (the kernel segments a GSO frame and
    /// finishes a partial checksum if the interface cannot).
    pub fn write(&self, hdr_and_frame: &[u8]) -> io::Result<usize> {
        // SAFETY: the buffer is valid for reads of its length; the fd is ours and open.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                hdr_and_frame.as_ptr().cast(),
                hdr_and_frame.len(),
                0,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    pub fn as_raw_fd_for_poll(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
