//! A TAP interface whose file descriptor the switch holds.
//!
//! Thin ioctls over `/dev/net/tun` rather than a crate: tun-tap 0.1 has no vnet header,
//! offload or multi-queue support, and what uswitch needs is four ioctls. The netdev
//! belongs to whoever uses it (it may be moved into a container's namespace); frames keep
//! flowing through the fd, which the switch holds until it exits.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use libc::{
    IFF_MULTI_QUEUE, IFF_NO_PI, IFF_TAP, IFF_VNET_HDR, TUNSETIFF, TUNSETOFFLOAD, TUNSETVNETHDRSZ,
    TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_USO4, TUN_F_USO6,
};

pub use crate::config::specs::validate_ifname;
use crate::config::specs::MAX_IFNAME_LEN;

/// Bits of `/sys/class/net/NAME/tun_flags` that mark a TUN (layer 3) device.
const SYSFS_IFF_TUN: u32 = libc::IFF_TUN as u32;

/// The offloads a TAP's kernel side took (`TUNSETOFFLOAD`'s mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offloads(u32);

impl Offloads {
    /// Whether every bit of `flag` (a `TUN_F_*`) is set.
    pub fn has(self, flag: u32) -> bool {
        self.0 & flag == flag
    }

    /// Whether UDP GSO frames may be written (USO over IPv4 and IPv6).
    pub fn uso(self) -> bool {
        self.has(TUN_F_USO4 | TUN_F_USO6)
    }

    /// The offloads by name, as `show ports` prints them.
    pub fn names(self) -> Vec<&'static str> {
        [
            (TUN_F_CSUM, "csum"),
            (TUN_F_TSO4, "tso4"),
            (TUN_F_TSO6, "tso6"),
            (TUN_F_TSO_ECN, "tso_ecn"),
            (TUN_F_USO4, "uso4"),
            (TUN_F_USO6, "uso6"),
        ]
        .into_iter()
        .filter(|&(f, _)| self.has(f))
        .map(|(_, n)| n)
        .collect()
    }
}

/// Why a TAP could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The interface name breaks the kernel's rules.
    #[error("invalid interface name '{name}': {why}")]
    InvalidName { name: String, why: String },
    /// The name belongs to an interface of another kind.
    #[error("interface {name} exists but is {kind}; uswitch attaches only TAP devices: pick another --port name")]
    NotTap { name: String, kind: &'static str },
    /// The name belongs to a NIC, a veth end or the like: an uplink's job.
    #[error("interface {0} exists but is not a TUN/TAP device (a NIC or a veth end?): attach it with --uplink {0}@NETWORK, or pick another --port name")]
    UseUplink(String),
    /// Another process holds the TAP's (single) queue.
    #[error("TAP {0} is in use by another process; stop it or pick another name")]
    Busy(String),
    /// The caller lacks CAP_NET_ADMIN.
    #[error("no permission to attach TAP {0}: run uswitch as root or give it CAP_NET_ADMIN")]
    PermissionDenied(String),
    /// The tun driver is missing.
    #[error("/dev/net/tun is missing: load the tun module (modprobe tun)")]
    NoTunDevice,
    /// The process has as many files open as its limit allows.
    #[error("cannot attach TAP {0}: uswitch has as many files open as its limit allows (ulimit -n); raise the limit (ulimit -n, or LimitNOFILE= for a service) or attach fewer ports")]
    TooManyFiles(String),
    /// Any other failure, named by the step that failed.
    #[error("TAP {name}: {step} failed: {source}")]
    Io {
        name: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
}

impl TapError {
    /// A failure because the process ran out of descriptors, whichever step met it, said
    /// as that (with how to raise the limit) rather than as the step's errno.
    pub fn said_plainly(self) -> TapError {
        match self {
            TapError::Io { name, source, .. }
                if matches!(
                    source.raw_os_error(),
                    Some(libc::EMFILE) | Some(libc::ENFILE)
                ) =>
            {
                TapError::TooManyFiles(name)
            }
            e => e,
        }
    }
}

/// A TAP device, attached with `IFF_TAP | IFF_NO_PI` (and `IFF_VNET_HDR` when it carries
/// offloads), non-blocking.
#[derive(Debug)]
pub struct Tap {
    fd: File,
    name: String,
    created: bool,
    offloads: Offloads,
    /// Made persistent: the netdev outlives uswitch (a container's interface).
    persistent: bool,
}

/// Opens one more queue of the multi-queue TAP `name` (the first call creates it), with
/// the virtio-net header and the offloads uswitch sets on its own TAPs, non-blocking.
/// uswitch itself attaches single-queue TAPs; the `tap-mq` bench uses this to measure
/// what more queues would give.
pub fn open_queue(name: &str) -> io::Result<OwnedFd> {
    validate_ifname(name).map_err(io::Error::other)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let fd = OwnedFd::from(file);
    let mut req = IfReq::new(name);
    req.set_flags(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE);
    ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req)?;
    set_offloads(fd.as_raw_fd(), true)?;
    Ok(fd)
}

/// The `struct ifreq` of `<linux/if.h>`: a name and a 24-byte union, of which uswitch
/// uses the leading `short` (flags) or `int` (MTU).
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    data: [u8; 24],
}

impl IfReq {
    fn new(name: &str) -> IfReq {
        let mut req = IfReq {
            name: [0; 16],
            data: [0; 24],
        };
        // validate_ifname guarantees at most 15 bytes, leaving the NUL.
        let n = name.len().min(MAX_IFNAME_LEN);
        req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        req
    }

    fn flags(&self) -> i16 {
        i16::from_ne_bytes([self.data[0], self.data[1]])
    }

    fn set_flags(&mut self, flags: libc::c_int) {
        let flags = flags as i16;
        self.data[..2].copy_from_slice(&flags.to_ne_bytes());
    }

    fn int(&self) -> i32 {
        i32::from_ne_bytes([self.data[0], self.data[1], self.data[2], self.data[3]])
    }
}

fn ioctl(fd: RawFd, request: libc::Ioctl, req: &mut IfReq) -> io::Result<()> {
    // SAFETY: `req` is a live, writable `struct ifreq`-sized buffer for the whole call,
    // which is all these ioctls read or write.
    let rc = unsafe { libc::ioctl(fd, request, req as *mut IfReq) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A datagram socket, the handle netdevice ioctls (flags, MTU) go through.
fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether an interface with this name exists in our namespace.
pub fn interface_exists(name: &str) -> bool {
    let Ok(c) = CString::new(name) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

impl Tap {
    /// Attaches to the TAP `name`, creating it if no interface has that name. A TAP that
    /// uswitch creates is not persistent: it disappears when uswitch closes it.
    ///
    /// With `offload`, frames cross the fd behind a 10-byte virtio-net header and the
    /// kernel may hand over (and take) 64 KiB GSO frames with partial checksums: one read
    /// and one write instead of forty. The offload mask is device-wide state that outlives
    /// its setter, so it is set explicitly either way (a stale mask breaks TCP while ping
    /// still works).
    pub fn open(name: &str, offload: bool) -> Result<Tap, TapError> {
        Self::open_checked(name, offload, true).map_err(TapError::said_plainly)
    }

    /// [`Tap::open`]; with `check`, an existing interface is first looked up in sysfs,
    /// which shows the namespace sysfs was mounted in (so not when reopening a TAP that
    /// lives in a container's namespace: TUNSETIFF refuses what is not a TAP anyway).
    fn open_checked(name: &str, offload: bool, check: bool) -> Result<Tap, TapError> {
        validate_ifname(name).map_err(|why| TapError::InvalidName {
            name: name.to_string(),
            why,
        })?;
        let existed = interface_exists(name);
        if existed && check {
            check_is_tap(name)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => TapError::NoTunDevice,
                io::ErrorKind::PermissionDenied => TapError::PermissionDenied(name.to_string()),
                _ => TapError::Io {
                    name: name.to_string(),
                    step: "opening /dev/net/tun",
                    source: e,
                },
            })?;
        let fd = file;
        let mut req = IfReq::new(name);
        req.set_flags(IFF_TAP | IFF_NO_PI | if offload { IFF_VNET_HDR } else { 0 });
        ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => TapError::PermissionDenied(name.to_string()),
            Some(libc::EBUSY) => TapError::Busy(name.to_string()),
            Some(libc::EINVAL) if existed => TapError::NotTap {
                name: name.to_string(),
                kind: "a TUN/TAP device with incompatible flags (multi-queue?)",
            },
            _ => TapError::Io {
                name: name.to_string(),
                step: "TUNSETIFF",
                source: e,
            },
        })?;
        let offloads = set_offloads(fd.as_raw_fd(), offload).map_err(|source| TapError::Io {
            name: name.to_string(),
            step: "setting offloads (TUNSETVNETHDRSZ/TUNSETOFFLOAD)",
            source,
        })?;
        Ok(Tap {
            fd,
            name: name.to_string(),
            created: !existed,
            offloads,
            persistent: false,
        })
    }

    /// The TAP behind `fd`, an attached queue handed over by the uswitch this one takes
    /// over from (`--take-over`): no new netdev, no namespace entered, the offloads as
    /// they were (its own `IFF_VNET_HDR` says whether frames carry the header).
    pub fn adopt(
        fd: OwnedFd,
        label: &str,
        persistent: bool,
        created: bool,
    ) -> Result<Tap, TapError> {
        let err = |step: &'static str, source: io::Error| TapError::Io {
            name: label.to_string(),
            step,
            source,
        };
        let mut req = IfReq::new("");
        ioctl(fd.as_raw_fd(), libc::TUNGETIFF, &mut req)
            .map_err(|e| err("asking a handed-over descriptor what it is (TUNGETIFF)", e))?;
        let flags = req.flags() as libc::c_int;
        if flags & IFF_TAP == 0 {
            return Err(err(
                "adopting a handed-over descriptor",
                io::Error::other("it is not a TAP queue"),
            ));
        }
        let offload = flags & IFF_VNET_HDR != 0;
        let offloads = set_offloads(fd.as_raw_fd(), offload)
            .map_err(|e| err("setting offloads (TUNSETVNETHDRSZ/TUNSETOFFLOAD)", e))?;
        Ok(Tap {
            fd: File::from(fd),
            name: label.to_string(),
            created,
            offloads,
            persistent,
        })
    }

    /// The attached queue's descriptor, for a handover to a new uswitch.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// Makes the netdev outlive uswitch's fd (`TUNSETPERSIST`), or not.
    pub fn set_persist(&mut self, on: bool) -> Result<(), TapError> {
        // SAFETY: TUNSETPERSIST takes its int argument by value; the fd is ours and open.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::TUNSETPERSIST,
                on as libc::c_ulong,
            )
        };
        if rc < 0 {
            return Err(TapError::Io {
                name: self.name.clone(),
                step: "TUNSETPERSIST",
                source: io::Error::last_os_error(),
            });
        }
        self.persistent = on;
        Ok(())
    }

    pub fn persistent(&self) -> bool {
        self.persistent
    }

    /// Reopens the persistent TAP whose MAC is `mac`, which lives in the network
    /// namespace `netns` now (a container's, named there as the container's runtime
    /// named it), with the offloads it had. Returns it, labelled `label` (its port name
    /// in uswitch), and its MTU. The work runs on a thread of its own, which enters the
    /// namespace; the fd then serves from any namespace.
    pub fn reopen_in(
        netns: &Path,
        mac: &str,
        label: &str,
        offload: bool,
    ) -> Result<(Tap, usize), TapError> {
        let err = |step: &'static str, source: io::Error| TapError::Io {
            name: label.to_string(),
            step,
            source,
        };
        let ns = File::open(netns).map_err(|e| err("opening the container's namespace", e))?;
        let mac = mac.to_ascii_lowercase();
        let found = std::thread::scope(|scope| {
            scope
                .spawn(move || -> Result<(Tap, usize), TapError> {
                    // SAFETY: setns on this thread alone, with a namespace fd we own.
                    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(err(
                            "entering the container's namespace",
                            io::Error::last_os_error(),
                        ));
                    }
                    let out = std::process::Command::new("ip")
                        .args(["-o", "link", "show"])
                        .output()
                        .map_err(|e| err("listing the container's interfaces", e))?;
                    let listing = String::from_utf8_lossy(&out.stdout);
                    let name = listing
                        .lines()
                        .find(|l| l.contains(&format!("link/ether {mac} ")))
                        .and_then(|l| l.split(':').nth(1))
                        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
                        .ok_or_else(|| {
                            err(
                                "finding its interface in the container",
                                io::Error::new(
                                    io::ErrorKind::NotFound,
                                    format!("no interface with MAC {mac}"),
                                ),
                            )
                        })?;
                    let mut tap = Tap::open_checked(&name, offload, false)?;
                    let mtu = tap.mtu()?;
                    tap.persistent = true;
                    Ok((tap, mtu))
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(err(
                        "reopening",
                        io::Error::other("the helper thread panicked"),
                    ))
                })
        });
        let (mut tap, mtu) = found.map_err(TapError::said_plainly)?;
        tap.name = label.to_string();
        Ok((tap, mtu))
    }

    /// Whether frames on this TAP carry a virtio-net header.
    pub fn vnet_hdr(&self) -> bool {
        self.offloads != Offloads::default()
    }

    /// The offloads in force.
    pub fn offloads(&self) -> Offloads {
        self.offloads
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether uswitch created the TAP (and so removes it on exit).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Sets `IFF_UP` on the netdev (while it is still in uswitch's namespace).
    pub fn bring_up(&self) -> Result<(), TapError> {
        let io_err = |step, source| TapError::Io {
            name: self.name.clone(),
            step,
            source,
        };
        let sock = control_socket().map_err(|e| io_err("opening a control socket", e))?;
        let mut req = IfReq::new(&self.name);
        ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as libc::Ioctl,
            &mut req,
        )
        .map_err(|e| io_err("SIOCGIFFLAGS", e))?;
        req.set_flags(req.flags() as libc::c_int | libc::IFF_UP);
        ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFFLAGS as libc::Ioctl,
            &mut req,
        )
        .map_err(|e| io_err("bringing it up (SIOCSIFFLAGS)", e))
    }

    /// Sets the netdev's MTU (while it is still in uswitch's namespace).
    pub fn set_mtu(&self, mtu: u32) -> Result<(), TapError> {
        let io_err = |source| TapError::Io {
            name: self.name.clone(),
            step: "setting the MTU (SIOCSIFMTU)",
            source,
        };
        let sock = control_socket().map_err(io_err)?;
        let mut req = IfReq::new(&self.name);
        req.data[..4].copy_from_slice(&(mtu as i32).to_ne_bytes());
        ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU as libc::Ioctl, &mut req).map_err(io_err)
    }

    /// The netdev's MTU.
    pub fn mtu(&self) -> Result<usize, TapError> {
        interface_mtu(&self.name)
    }

    /// Reads one frame. `WouldBlock` when the queue is empty.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.fd).read(buf)
    }

    /// Writes one frame. `WouldBlock` when the kernel cannot take it now.
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        (&self.fd).write(frame)
    }
}

impl Tap {
    /// The fd, for registering with the event loop.
    pub fn as_raw_fd_for_poll(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The MTU of the interface `name` in uswitch's namespace.
pub fn interface_mtu(name: &str) -> Result<usize, TapError> {
    let io_err = |source| TapError::Io {
        name: name.to_string(),
        step: "SIOCGIFMTU",
        source,
    };
    let sock = control_socket().map_err(io_err)?;
    let mut req = IfReq::new(name);
    ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU as libc::Ioctl, &mut req).map_err(io_err)?;
    usize::try_from(req.int())
        .map_err(|_| io_err(io::Error::new(io::ErrorKind::InvalidData, "negative MTU")))
}

/// Whether an I/O error means the TAP's netdev is gone for good (deleted, or its
/// namespace destroyed), as opposed to a passing condition.
pub fn is_vanished(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EBADFD) | Some(libc::ENODEV) | Some(libc::ENXIO) | Some(libc::EBADF)
    )
}

/// Sets the vnet header size and the offload mask; returns the offloads in force.
fn set_offloads(fd: RawFd, offload: bool) -> io::Result<Offloads> {
    let set = |request: libc::Ioctl, value: libc::c_int| -> io::Result<()> {
        // SAFETY: TUNSETVNETHDRSZ reads an int through the pointer; TUNSETOFFLOAD takes
        // its argument by value. Both are given what they expect.
        let rc = unsafe {
            if request == TUNSETVNETHDRSZ {
                libc::ioctl(fd, request, &value as *const libc::c_int)
            } else {
                libc::ioctl(fd, request, value as libc::c_ulong)
            }
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    if !offload {
        set(TUNSETOFFLOAD, 0)?;
        return Ok(Offloads::default());
    }
    set(
        TUNSETVNETHDRSZ,
        packets::offload::VIRTIO_NET_HDR_LEN as libc::c_int,
    )?;
    let tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    // UDP segmentation offload exists from Linux 6.2; older kernels refuse the bits.
    match set(
        TUNSETOFFLOAD,
        (tso | TUN_F_USO4 | TUN_F_USO6) as libc::c_int,
    ) {
        Ok(()) => Ok(Offloads(tso | TUN_F_USO4 | TUN_F_USO6)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            set(TUNSETOFFLOAD, tso as libc::c_int)?;
            Ok(Offloads(tso))
        }
        Err(e) => Err(e),
    }
}

/// Refuses an existing interface that is not a TAP, naming what it is.
fn check_is_tap(name: &str) -> Result<(), TapError> {
    let dir = Path::new("/sys/class/net").join(name);
    match std::fs::read_to_string(dir.join("tun_flags")) {
        Ok(flags) => {
            let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
            if flags & SYSFS_IFF_TUN != 0 {
                Err(TapError::NotTap {
                    name: name.to_string(),
                    kind: "a TUN (layer 3) device",
                })
            } else {
                Ok(())
            }
        }
        // No tun_flags: the interface exists (if_nametoindex said so) but is no tun device.
        // Without sysfs we cannot tell; let TUNSETIFF decide.
        Err(_) if dir.exists() => Err(TapError::UseUplink(name.to_string())),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        let mut r = IfReq::new("tap0");
        r.set_flags(IFF_TAP | IFF_NO_PI);
        assert_eq!(r.flags(), 0x1002);
        assert_eq!(&r.name[..5], b"tap0\0");
    }
}
