//! The client side of the control socket: one request, one response.

use std::io::{self, Read, Write};
use std::path::Path;

use serde::de::DeserializeOwned;

use super::protocol::{Envelope, Request, Response};

/// How long a client waits for the switch's answer.
const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Sends `request` to the switch at `path` and returns its response.
pub fn call(path: &Path, request: &Request) -> Result<Response, String> {
    let unreachable = |e: io::Error| {
        let hint = if e.kind() == io::ErrorKind::PermissionDenied {
            "the control socket is its owner's alone (mode 0600): run the client as root, \
             with sudo"
        } else {
            "is it running? see --switch and --control"
        };
        format!("cannot reach uswitch at {}: {e} ({hint})", path.display())
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(CLIENT_TIMEOUT))
        .map_err(unreachable)?;
    let mut line = serde_json::to_vec(&Envelope::new(request.clone()))
        .map_err(|e| format!("encoding the request: {e}"))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(unreachable)?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).map_err(unreachable)?;
    serde_json::from_slice(&reply).map_err(|e| {
        format!(
            "uswitch at {} sent a malformed response: {e}",
            path.display()
        )
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
