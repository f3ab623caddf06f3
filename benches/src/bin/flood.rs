//! Sends broadcast frames from many source MACs out of an interface as fast as it can (a
//! MAC flood), for the robustness measurements in benches/macflood.sh and benches/soak.sh.
//! Run it inside the namespace that holds the interface:
//!
//! ```text
//! ip netns exec NS flood IFACE MACS SECONDS
//! ```

use std::ffi::CString;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(ifname), Some(macs), Some(secs)) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<u32>().ok()),
        args.get(2).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: flood IFACE MACS SECONDS");
        return ExitCode::from(2);
    };
    let Ok(cname) = CString::new(ifname.as_str()) else {
        eprintln!("flood: bad interface name");
        return ExitCode::from(2);
    };
    // SAFETY: if_nametoindex on a NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
    if ifindex == 0 {
        eprintln!("flood: no interface {ifname} here");
        return ExitCode::FAILURE;
    }
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); checked below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto as i32) };
    if fd < 0 {
        eprintln!(
            "flood: AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    // SAFETY: sockaddr_ll is plain data; zeroed is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex;
    // SAFETY: binding with a sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd,
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        eprintln!("flood: bind: {}", std::io::Error::last_os_error());
        return ExitCode::FAILURE;
    }
    let mut frame = [0u8; 60];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut sent, mut i) = (0u64, 0u32);
    // A multiplicative hash spreads the MACs over the whole space, as random ones are.
    while Instant::now() < deadline {
        for _ in 0..256 {
            let m = (i % macs.max(1)).wrapping_mul(2_654_435_761).to_be_bytes();
            frame[6..12].copy_from_slice(&[0x02, 0xf1, m[0], m[1], m[2], m[3]]);
            i = i.wrapping_add(1);
            // SAFETY: sending from a valid buffer on a bound packet socket.
            if unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), 0) }
                == frame.len() as isize
            {
                sent += 1;
            }
        }
    }
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd) };
    println!("flood: {sent} frames from {} MACs in {secs} s", macs.min(i));
    ExitCode::SUCCESS
}
