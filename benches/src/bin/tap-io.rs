//! How much io_uring saves on the TAP path: 64-byte frames are moved from one TAP to
//! another by plain `read`/`write` calls (what uswitch does), then by io_uring with 32
//! reads in flight and the writes submitted in the same `io_uring_enter` calls. A thread
//! keeps the first TAP's queue full through an AF_PACKET socket. Runs in a network
//! namespace of its own (nothing it sends can leave), as root:
//!
//! ```text
//! cargo run --release -p uswitch-benches --bin tap-io -- [SECONDS]
//! ```

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};
use uswitch::dataplane::io::tap::Tap;
use uswitch_benches::check;

const FRAME: usize = 64;
const IN_FLIGHT: usize = 32;

/// Sends 64-byte frames out of `ifname` as fast as the kernel takes them, until `stop`.
fn generator(ifname: String, stop: Arc<AtomicBool>) -> io::Result<u64> {
    let cname = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: if_nametoindex on a NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
    // SAFETY: plain socket(2); checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        )
    };
    check(fd, "AF_PACKET socket")?;
    // SAFETY: fd is fresh and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    uswitch::dataplane::io::af_packet::bind_to_interface(fd.as_raw_fd(), ifindex)?;
    let mut frame = [0u8; FRAME];
    frame[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    frame[12..14].copy_from_slice(&[0x88, 0xb5]);
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: a valid buffer on a bound packet socket.
        let n = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), FRAME, 0) };
        if n > 0 {
            sent += 1;
        }
    }
    Ok(sent)
}

fn set_blocking(fd: RawFd, blocking: bool) -> io::Result<()> {
    // SAFETY: fcntl on an fd we hold.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    check(flags, "F_GETFL")?;
    let flags = if blocking {
        flags & !libc::O_NONBLOCK
    } else {
        flags | libc::O_NONBLOCK
    };
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }, "F_SETFL")
}

/// uswitch's way: a non-blocking read, a write, `poll` when the queue is empty.
fn syscalls(a: &Tap, b: &Tap, secs: u64) -> io::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 2048];
    let mut moved = 0;
    while Instant::now() < deadline {
        match a.read(&mut buf) {
            Ok(n) => {
                let _ = b.write(&buf[..n]);
                moved += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut pfd = libc::pollfd {
                    fd: a.as_raw_fd_for_poll(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, 100) };
            }
            Err(e) => return Err(e),
        }
    }
    Ok(moved)
}

/// io_uring: IN_FLIGHT reads on the (blocking) TAP fd; each completed read becomes a
/// write to the other TAP and a fresh read, all submitted together.
fn uring(a: &Tap, b: &Tap, secs: u64) -> io::Result<u64> {
    let (fa, fb) = (a.as_raw_fd_for_poll(), b.as_raw_fd_for_poll());
    set_blocking(fa, true)?;
    let mut ring = IoUring::new(4 * IN_FLIGHT as u32)?;
    let mut bufs = vec![[0u8; 2048]; IN_FLIGHT];
    const WRITE: u64 = 1 << 32;
    let read = |i: usize, buf: &mut [u8; 2048]| {
        opcode::Read::new(types::Fd(fa), buf.as_mut_ptr(), buf.len() as u32)
            .build()
            .user_data(i as u64)
    };
    for (i, buf) in bufs.iter_mut().enumerate() {
        // SAFETY: the buffer lives in `bufs` until the ring is dropped, after the loop.
        unsafe { ring.submission().push(&read(i, buf)) }.map_err(io::Error::other)?;
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut moved = 0;
    while Instant::now() < deadline {
        ring.submit_and_wait(1)?;
        let done: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (data, res) in done {
            let i = (data & 0xffff_ffff) as usize;
            if data & WRITE != 0 {
                // The write is done: the buffer takes the next read.
                let e = read(i, &mut bufs[i]);
                // SAFETY: as above.
                unsafe { ring.submission().push(&e) }.map_err(io::Error::other)?;
            } else if res > 0 {
                moved += 1;
                let e = opcode::Write::new(types::Fd(fb), bufs[i].as_ptr(), res as u32)
                    .build()
                    .user_data(WRITE | i as u64);
                // SAFETY: the buffer is not reused until this write completes.
                unsafe { ring.submission().push(&e) }.map_err(io::Error::other)?;
            } else {
                let e = read(i, &mut bufs[i]);
                // SAFETY: as above.
                unsafe { ring.submission().push(&e) }.map_err(io::Error::other)?;
            }
        }
    }
    // Unblock the reads still in flight before the buffers go: closing is not enough
    // for io_uring, so the caller drops the TAPs after the ring (declared after them).
    drop(ring);
    Ok(moved)
}

fn run(secs: u64) -> io::Result<()> {
    // SAFETY: unshare(2) on this process: a fresh network namespace, empty but for lo.
    check(
        unsafe { libc::unshare(libc::CLONE_NEWNET) },
        "unshare(CLONE_NEWNET)",
    )?;
    let a = Tap::open("tapio-a", false).map_err(io::Error::other)?;
    let b = Tap::open("tapio-b", false).map_err(io::Error::other)?;
    a.bring_up().map_err(io::Error::other)?;
    b.bring_up().map_err(io::Error::other)?;
    for (name, mode) in [
        ("read/write", false),
        ("io_uring", true),
        ("read/write", false),
    ] {
        set_blocking(a.as_raw_fd_for_poll(), false)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let gen = std::thread::spawn(move || generator("tapio-a".into(), flag));
        std::thread::sleep(Duration::from_millis(200));
        let moved = if mode {
            uring(&a, &b, secs)?
        } else {
            syscalls(&a, &b, secs)?
        };
        stop.store(true, Ordering::Relaxed);
        let sent = gen
            .join()
            .map_err(|_| io::Error::other("generator panicked"))??;
        println!(
            "{name:>10}: {:>8.0} frames/s moved ({} generated)",
            moved as f64 / secs as f64,
            sent
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let secs = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    match run(secs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tap-io: {e}");
            ExitCode::FAILURE
        }
    }
}
