//! The devices behind ports: TAPs, uplinks through AF_PACKET, and the UDP sockets of
//! VXLAN endpoints. Each moves frames and reports errors; none decides anything.
//!
//! Socket options and control messages are set with a few `libc` calls rather than
//! through nix or socket2: socket2 has no `UDP_SEGMENT`/`UDP_GRO`, and nix's `sendmsg`
//! builds its control-message buffer on the heap on every call, which the VXLAN send path
//! makes once per GSO frame.

pub mod af_packet;
pub mod tap;
pub mod udp_tunnel;

use std::io;
use std::os::fd::RawFd;

/// Sets the integer socket option `name` at `level` on `fd`.
pub fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: setsockopt with an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
