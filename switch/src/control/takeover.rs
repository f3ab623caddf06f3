//! Upgrades without a gap (`uswitch --take-over`): the new binary asks the running switch
//! of the same control socket for its descriptors; the old one answers with a header (what
//! each descriptor is) and the descriptors themselves (`SCM_RIGHTS`, at most
//! [`FDS_PER_MESSAGE`] a message), stops forwarding and waits. The new one sets itself up
//! from them and from the state directory (written atomically after every change, so it
//! is whole), says `ready`, and the old one exits without undoing anything. Frames that
//! arrive meanwhile wait in the TAPs' queues and the sockets' buffers: none is lost.
//!
//! Either side failing leaves the old switch running: a refused version is answered as
//! an error before anything is handed over, and a new switch that dies or gives up
//! before `ready` closes the connection, which the old one takes as "carry on".

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

use super::protocol::{Envelope, Request, Response};
use crate::dataplane::inherited::{HandedPort, Inherited};
use crate::dataplane::Switch;

/// The version of what a take-over hands over (the header and the state directory's
/// files). Builds that differ refuse each other.
pub const HANDOVER_VERSION: u32 = 1;

/// Below the kernel's limit of descriptors in one message (`SCM_MAX_FD`, 253).
pub const FDS_PER_MESSAGE: usize = 200;

/// How long each side waits for the other before giving up (the old one then carries on).
const PATIENCE: Duration = Duration::from_secs(20);

/// What the old switch hands over: the descriptors in order, ports' first, then the
/// endpoints', then the control socket's listener.
#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub release: String,
    pub pid: u32,
    pub ports: Vec<HandedPort>,
    pub endpoints: Vec<SocketAddr>,
}

impl Header {
    fn fds(&self) -> usize {
        self.ports.len() + self.endpoints.len() + 1
    }
}

/// Why a request for a take-over is refused before anything is handed over.
pub fn refusal(version: u32, release: &str) -> Option<String> {
    (version != HANDOVER_VERSION).then(|| {
        format!(
            "take-over refused: this switch (uswitch {}) hands over state version \
             {HANDOVER_VERSION}, the new binary (uswitch {release}) asks for version {version}; \
             it stays running. Stop it and start the new binary instead (containers' TAPs \
             are persistent and the state directory brings them back)",
            env!("CARGO_PKG_VERSION")
        )
    })
}

/// The old side: hands `sw`'s descriptors and `listener` over on `stream`, then waits
/// for the new switch's `ready`. Ok means this one must exit now, undoing nothing; an
/// error means it carries on.
pub fn give(stream: UnixStream, sw: &Switch, listener: BorrowedFd<'_>) -> Result<(), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    stream
        .set_write_timeout(Some(PATIENCE))
        .and_then(|()| stream.set_read_timeout(Some(PATIENCE)))
        .map_err(|e| fail("setting timeouts", &e))?;
    let held = sw.handing();
    let handing = held.descriptors();
    let header = Header {
        version: HANDOVER_VERSION,
        release: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        ports: handing.ports.iter().map(|(p, _)| p.clone()).collect(),
        endpoints: handing.endpoints.iter().map(|(a, _)| *a).collect(),
    };
    let fds: Vec<RawFd> = handing
        .ports
        .iter()
        .map(|(_, fd)| fd.as_raw_fd())
        .chain(handing.endpoints.iter().map(|(_, fd)| fd.as_raw_fd()))
        .chain([listener.as_raw_fd()])
        .collect();
    let mut line =
        serde_json::to_vec(&Response::ok(&header)).map_err(|e| fail("the header", &e))?;
    line.push(b'\n');
    (&stream)
        .write_all(&line)
        .map_err(|e| fail("sending the header", &e))?;
    for chunk in fds.chunks(FDS_PER_MESSAGE) {
        let marker = [IoSlice::new(b"F")];
        sendmsg::<nix::sys::socket::UnixAddr>(
            stream.as_raw_fd(),
            &marker,
            &[ControlMessage::ScmRights(chunk)],
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| fail("sending descriptors", &e))?;
    }
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| fail("waiting for the new switch", &e))?;
    match answer.trim() {
        "ready" => {
            held.handed();
            Ok(())
        }
        "" => Err("the new switch hung up before it was ready".into()),
        other => Err(format!("the new switch said {other:?}, not ready")),
    }
}

/// What the new side received.
pub struct Taken {
    pub header: Header,
    pub bank: Inherited,
    pub listener: UnixListener,
    /// Where to say `ready` (see [`confirm`]).
    pub stream: UnixStream,
}

/// The new side: asks the switch at `path` for its descriptors.
pub fn take(path: &Path) -> Result<Taken, String> {
    let stream = UnixStream::connect(path).map_err(|e| {
        format!(
            "--take-over: no switch answers on {} ({e}); start without --take-over",
            path.display()
        )
    })?;
    stream
        .set_read_timeout(Some(PATIENCE))
        .and_then(|()| stream.set_write_timeout(Some(PATIENCE)))
        .map_err(|e| format!("--take-over: setting timeouts: {e}"))?;
    let mut ask = serde_json::to_vec(&Envelope::new(Request::TakeOver {
        version: HANDOVER_VERSION,
        release: env!("CARGO_PKG_VERSION").to_string(),
    }))
    .map_err(|e| e.to_string())?;
    ask.push(b'\n');
    (&stream)
        .write_all(&ask)
        .map_err(|e| format!("--take-over: asking: {e}"))?;
    let mut bytes = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut header: Option<Header> = None;
    loop {
        if let Some(h) = &header {
            if fds.len() >= h.fds() {
                break;
            }
        }
        let mut buf = [0u8; 65536];
        let mut space = nix::cmsg_space!([RawFd; FDS_PER_MESSAGE]);
        let (n, got) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(|e| format!("--take-over: receiving: {e}"))?;
            let mut got = Vec::new();
            for c in msg.cmsgs().map_err(|e| format!("--take-over: {e}"))? {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    got.extend(raw);
                }
            }
            (msg.bytes, got)
        };
        // SAFETY: each descriptor was just received (SCM_RIGHTS): this process owns it.
        fds.extend(
            got.into_iter()
                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
        );
        if n == 0 {
            return Err(match header {
                None => "--take-over: the running switch hung up without answering".into(),
                Some(_) => "--take-over: the running switch hung up half-way".into(),
            });
        }
        bytes.extend_from_slice(&buf[..n]);
        if header.is_none() {
            if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
                let resp: Response = serde_json::from_slice(&bytes[..end])
                    .map_err(|e| format!("--take-over: the running switch's answer: {e}"))?;
                if !resp.ok {
                    return Err(resp.error.unwrap_or_else(|| "take-over refused".into()));
                }
                let h: Header = serde_json::from_value(resp.data)
                    .map_err(|e| format!("--take-over: the running switch's header: {e}"))?;
                if h.version != HANDOVER_VERSION {
                    return Err(format!(
                        "--take-over: the running switch handed over state version {}, this \
                         binary reads {HANDOVER_VERSION}",
                        h.version
                    ));
                }
                header = Some(h);
            }
        }
    }
    let Some(header) = header else {
        return Err("--take-over: no header".into());
    };
    if fds.len() != header.fds() {
        return Err(format!(
            "--take-over: {} descriptors received, {} announced",
            fds.len(),
            header.fds()
        ));
    }
    let mut fds = fds.into_iter();
    let ports: Vec<(HandedPort, OwnedFd)> =
        header.ports.iter().cloned().zip(fds.by_ref()).collect();
    let endpoints: Vec<(SocketAddr, OwnedFd)> =
        header.endpoints.iter().copied().zip(fds.by_ref()).collect();
    let listener = fds
        .next()
        .map(UnixListener::from)
        .ok_or("--take-over: no control socket handed over")?;
    Ok(Taken {
        header,
        bank: Inherited::new(ports, endpoints),
        listener,
        stream,
    })
}

/// Tells the old switch (process `pid`) the new one is ready, and waits (at most
/// [`PATIENCE`]) for it to be gone: for every descriptor it held to be closed, so that
/// what it did not hand over (the Docker plugin's socket, the metrics port) is free for
/// this one to open. Its end of the connection closing is not enough: that happens as
/// it starts to exit, before the rest of its descriptors go.
pub fn confirm(mut stream: UnixStream, pid: u32) -> Result<(), String> {
    stream
        .write_all(b"ready\n")
        .map_err(|e| format!("--take-over: saying ready: {e}"))?;
    let mut rest = Vec::new();
    if let Err(e) = stream.read_to_end(&mut rest) {
        return Err(format!(
            "--take-over: the old switch did not exit ({e}); both may now run"
        ));
    }
    let deadline = std::time::Instant::now() + PATIENCE;
    while holds_descriptors(pid) {
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "--take-over: the old switch (pid {pid}) still holds descriptors after {} s; \
                 what it did not hand over may not open",
                PATIENCE.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Whether process `pid` still has a descriptor open, through any of its threads (they
/// share one table, which goes with the last of them). An exited process (a zombie
/// until its parent reaps it) has none; one that is gone has no `/proc` entry.
fn holds_descriptors(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_dir(task.path().join("fd")).is_ok_and(|mut fds| fds.next().is_some())
    })
}
