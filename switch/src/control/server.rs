//! The control socket's server: a Unix stream socket on which the running switch answers
//! one request per connection (a line) with one response, then closes.
//!
//! It is non-blocking and shares the data plane's poll: a slow or stuck client can never
//! stall forwarding. Its tokens are the data plane's sidecar tokens: the listener's is
//! 0, each connection's the next free one above.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use super::protocol::{Envelope, Request, Response};
use crate::dataplane::tokens;

/// Where a switch listens when neither --control nor --name says otherwise.
pub const DEFAULT_DIR: &str = "/run/uswitch";
/// The listener's sidecar number; connections take the numbers above.
const LISTENER: usize = 0;
/// Requests larger than this are refused (they are a few hundred bytes).
const MAX_REQUEST: usize = 64 * 1024;
/// Open connections at most; a new one beyond this closes the oldest, so clients that
/// connect and never speak can neither use up the switch's file descriptors nor lock out
/// the next client.
const MAX_CONNECTIONS: usize = 64;
/// A connection that has not finished its exchange by then is closed.
const IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The socket path for `--control PATH` / `--name NAME` (PATH wins).
pub fn socket_path(control: Option<&Path>, name: Option<&str>) -> PathBuf {
    match (control, name) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(n)) => Path::new(DEFAULT_DIR).join(format!("{n}.sock")),
        (None, None) => Path::new(DEFAULT_DIR).join("uswitch.sock"),
    }
}

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A live switch answers on the path already.
    #[error(
        "another uswitch is running as {0}; stop it, or pick another --name or --control path"
    )]
    InUse(PathBuf),
    /// Something that is not a socket sits at the path.
    #[error("{0} exists and is not a socket; remove it or pick another --control path")]
    NotASocket(PathBuf),
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

struct Conn {
    opened: std::time::Instant,
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    answered: bool,
}

/// The listening socket and its open connections.
pub struct ControlServer {
    path: PathBuf,
    /// Whether the socket file is this server's to remove on drop (not while a
    /// take-over may still leave it to the switch it came from).
    owns_path: bool,
    listener: UnixListener,
    conns: HashMap<usize, Conn>,
    /// The sidecar number the next connection tries first.
    next: usize,
}

/// What a readiness event on a control token asks of the switch.
pub enum ControlEvent {
    /// Nothing to do now.
    Idle,
    /// A complete request arrived on this connection (a sidecar number); answer it with
    /// [`ControlServer::reply`].
    Request(usize, Result<Request, String>),
}

impl ControlServer {
    /// Binds `path` (mode 0600), replacing a stale socket left by a crashed switch.
    pub fn bind(path: &Path, registry: &Registry) -> Result<ControlServer, ControlError> {
        let io_err = |source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(io_err)?;
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(ControlError::InUse(path.to_path_buf()));
                }
                // Nobody answers: left behind by a switch that died. Replace it.
                std::fs::remove_file(path).map_err(io_err)?;
            }
            Ok(_) => return Err(ControlError::NotASocket(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        let mut listener = UnixListener::bind(path).map_err(io_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
        registry
            .register(&mut listener, tokens::sidecar(LISTENER), Interest::READABLE)
            .map_err(io_err)?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            owns_path: true,
            listener,
            conns: HashMap::new(),
            next: LISTENER + 1,
        })
    }

    /// Serves on `listener`, bound at `path` already: the socket a take-over received
    /// from the switch it replaces (clients never see it close).
    pub fn adopt(
        listener: std::os::unix::net::UnixListener,
        path: &Path,
        registry: &Registry,
    ) -> Result<ControlServer, ControlError> {
        let io_err = |source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        };
        listener.set_nonblocking(true).map_err(io_err)?;
        let mut listener = UnixListener::from_std(listener);
        registry
            .register(&mut listener, tokens::sidecar(LISTENER), Interest::READABLE)
            .map_err(io_err)?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            owns_path: false,
            listener,
            conns: HashMap::new(),
            next: LISTENER + 1,
        })
    }

    /// Makes the socket file this server's to remove (the take-over is done).
    pub fn own_path(&mut self) {
        self.owns_path = true;
    }

    /// The listening socket, for a handover.
    pub fn listener_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.listener.as_fd()
    }

    /// Takes connection `token` out of the poll, as a blocking stream of its own (the
    /// take-over's exchange).
    pub fn take_stream(
        &mut self,
        token: usize,
        registry: &Registry,
    ) -> Option<std::os::unix::net::UnixStream> {
        use std::os::fd::{FromRawFd, IntoRawFd};
        let mut conn = self.conns.remove(&token)?;
        let _ = registry.deregister(&mut conn.stream);
        let fd = conn.stream.into_raw_fd();
        // SAFETY: `fd` was just released by the mio stream that owned it.
        let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
        stream.set_nonblocking(false).ok()?;
        Some(stream)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A sidecar number no open connection has (numbers are reused, so they never run
    /// out, on any word size).
    fn free_number(&mut self) -> usize {
        loop {
            let n = self.next;
            self.next = if n >= tokens::MAX_SIDECAR {
                LISTENER + 1
            } else {
                n + 1
            };
            if !self.conns.contains_key(&n) {
                return n;
            }
        }
    }

    /// Handles readiness of sidecar number `n`: the listener, or a connection.
    pub fn ready(&mut self, n: usize, registry: &Registry) -> ControlEvent {
        if n == LISTENER {
            self.accept(registry);
            ControlEvent::Idle
        } else {
            self.service(n, registry)
        }
    }

    /// The connection to close for a new one: the oldest that, once what it sent so far
    /// is read, still has no whole request (or has hung up); else the oldest of all.
    fn silent_victim(&mut self) -> Option<usize> {
        let mut by_age: Vec<(std::time::Instant, usize)> =
            self.conns.iter().map(|(n, c)| (c.opened, *n)).collect();
        by_age.sort();
        for &(_, n) in &by_age {
            let Some(conn) = self.conns.get_mut(&n) else {
                continue;
            };
            if conn.answered {
                continue;
            }
            let mut chunk = [0u8; 4096];
            let hung_up = loop {
                match conn.stream.read(&mut chunk) {
                    Ok(0) => break true,
                    Ok(k) => {
                        conn.input.extend_from_slice(&chunk[..k]);
                        if conn.input.len() > MAX_REQUEST {
                            break false;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break e.kind() != io::ErrorKind::WouldBlock,
                }
            };
            if hung_up || !conn.input.contains(&b'\n') {
                return Some(n);
            }
        }
        by_age.first().map(|&(_, n)| n)
    }

    /// Accepts every pending connection.
    fn accept(&mut self, registry: &Registry) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.conns.len() >= MAX_CONNECTIONS {
                        // Make room by closing the oldest silent one: a client that
                        // connects and stays silent must not lock the others out, and
                        // a flood of those must not push out a client whose request
                        // has arrived but not been read yet.
                        if let Some(victim) = self.silent_victim() {
                            self.close(victim, registry);
                        }
                    }
                    let n = self.free_number();
                    let token: Token = tokens::sidecar(n);
                    if registry
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_ok()
                    {
                        self.conns.insert(
                            n,
                            Conn {
                                opened: std::time::Instant::now(),
                                stream,
                                input: Vec::new(),
                                output: Vec::new(),
                                written: 0,
                                answered: false,
                            },
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("control socket: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Reads what a connection sent, and writes what is pending for it.
    fn service(&mut self, token: usize, registry: &Registry) -> ControlEvent {
        let Some(conn) = self.conns.get_mut(&token) else {
            return ControlEvent::Idle;
        };
        if !conn.answered {
            let mut chunk = [0u8; 4096];
            loop {
                match conn.stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        conn.input.extend_from_slice(&chunk[..n]);
                        if conn.input.len() > MAX_REQUEST {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        self.close(token, registry);
                        return ControlEvent::Idle;
                    }
                }
            }
            if let Some(end) = conn.input.iter().position(|&b| b == b'\n') {
                conn.answered = true;
                let parsed = Envelope::parse(&conn.input[..end]);
                return ControlEvent::Request(token, parsed);
            }
            if conn.input.len() > MAX_REQUEST {
                conn.answered = true;
                return ControlEvent::Request(
                    token,
                    Err(format!(
                        "request too large: over {MAX_REQUEST} bytes without a newline"
                    )),
                );
            }
            return ControlEvent::Idle;
        }
        self.flush(token, registry);
        ControlEvent::Idle
    }

    /// Queues `response` for the connection and writes as much as the socket takes.
    pub fn reply(&mut self, token: usize, response: &Response, registry: &Registry) {
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.output = serde_json::to_vec(response).unwrap_or_else(|e| {
                format!("{{\"ok\":false,\"error\":\"encoding the response failed: {e}\"}}")
                    .into_bytes()
            });
            conn.output.push(b'\n');
            conn.written = 0;
        }
        self.flush(token, registry);
    }

    fn flush(&mut self, token: usize, registry: &Registry) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        while conn.written < conn.output.len() {
            match conn.stream.write(&conn.output[conn.written..]) {
                Ok(n) => conn.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if conn.answered && conn.written >= conn.output.len() && !conn.output.is_empty() {
            self.close(token, registry);
        }
    }

    /// Closes connections that have taken longer than the idle limit (called once a
    /// second by the loop).
    pub fn reap_idle(&mut self, registry: &Registry) {
        let stale: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.opened.elapsed() > IDLE_LIMIT)
            .map(|(t, _)| *t)
            .collect();
        for token in stale {
            self.close(token, registry);
        }
    }

    fn close(&mut self, token: usize, registry: &Registry) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = registry.deregister(&mut conn.stream);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if self.owns_path {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths() {
        assert_eq!(
            socket_path(None, None),
            Path::new("/run/uswitch/uswitch.sock")
        );
        assert_eq!(
            socket_path(None, Some("lab")),
            Path::new("/run/uswitch/lab.sock")
        );
        assert_eq!(
            socket_path(Some(Path::new("/tmp/x.sock")), Some("lab")),
            Path::new("/tmp/x.sock")
        );
    }
}
