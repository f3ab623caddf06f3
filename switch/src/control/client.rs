//! The client side of the control socket: one request, one response.

use std::io::{self, Read, Write};
use std::path::Path;

use serde::de::DeserializeOwned;

use super::protocol::{Envelope, Request, Response};

/// How long a client waits for the switch's answer.
const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Sends `request` to the switch at `path` and returns its response. A connection the
/// switch closed before answering (to make room when a crowd of clients holds its 64
/// connections, it closes the oldest that has not sent a whole request — this one, if it
/// had just connected) is tried again, three times at most: the request was never read,
/// so it never ran.
pub fn call(path: &Path, request: &Request) -> Result<Response, String> {
    let mut tries = 0;
    loop {
        match call_once(path, request) {
            Err(Attempt::Closed(_)) if tries < 3 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50 * tries));
            }
            Err(Attempt::Closed(e)) | Err(Attempt::Failed(e)) => return Err(e),
            Ok(r) => return Ok(r),
        }
    }
}

enum Attempt {
    /// The switch closed the connection before any answer.
    Closed(String),
    Failed(String),
}

fn call_once(path: &Path, request: &Request) -> Result<Response, Attempt> {
    let closed = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        )
    };
    let unreachable = |e: io::Error| {
        let hint = if e.kind() == io::ErrorKind::PermissionDenied {
            "the control socket is its owner's alone (mode 0600): run the client as root, \
             with sudo"
        } else {
            "is it running? see --switch and --control"
        };
        format!("cannot reach uswitch at {}: {e} ({hint})", path.display())
    };
    let failed = |e: io::Error| {
        if closed(&e) {
            Attempt::Closed(unreachable(e))
        } else {
            Attempt::Failed(unreachable(e))
        }
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| Attempt::Failed(unreachable(e)))?;
    stream
        .set_read_timeout(Some(CLIENT_TIMEOUT))
        .map_err(failed)?;
    let mut line = serde_json::to_vec(&Envelope::new(request.clone()))
        .map_err(|e| Attempt::Failed(format!("encoding the request: {e}")))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(failed)?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).map_err(failed)?;
    if reply.is_empty() {
        return Err(Attempt::Closed(format!(
            "uswitch at {} closed the connection without answering",
            path.display()
        )));
    }
    serde_json::from_slice(&reply).map_err(|e| {
        Attempt::Failed(format!(
            "uswitch at {} sent a malformed response: {e}",
            path.display()
        ))
    })
}

/// Sends `request` and returns the reply it gets, typed, or the switch's error.
pub fn ask<T: DeserializeOwned>(path: &Path, request: &Request) -> Result<T, String> {
    let resp = call(path, request)?;
    if !resp.ok {
        return Err(resp
            .error
            .unwrap_or_else(|| "the switch refused without saying why".into()));
    }
    serde_json::from_value(resp.data).map_err(|e| {
        format!(
            "uswitch at {} sent an answer this client does not understand: {e} (is it the \
             same release?)",
            path.display()
        )
    })
}
