//! The control socket: a Unix stream socket on which the running switch answers one JSON
//! request per connection (a line) with one JSON response, then closes. The client side
//! is the same binary's subcommands (`uswitch show ports`, ...).
//!
//! The server side is non-blocking and lives in the event loop: a slow or stuck client
//! can never stall forwarding.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use serde::{Deserialize, Serialize};

/// Where a switch listens when neither --control nor --name says otherwise.
pub const DEFAULT_DIR: &str = "/run/uswitch";
/// Requests larger than this are refused (they are a few hundred bytes).
const MAX_REQUEST: usize = 64 * 1024;
/// Open connections at most; a new one beyond this closes the oldest, so clients that
/// connect and never speak can neither use up the switch's file descriptors nor lock out
/// the next client.
const MAX_CONNECTIONS: usize = 64;
/// A connection that has not finished its exchange by then is closed.
const IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a client waits for the switch's answer.
const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The socket path for `--control PATH` / `--name NAME` (PATH wins).
pub fn socket_path(control: Option<&Path>, name: Option<&str>) -> PathBuf {
    match (control, name) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(n)) => Path::new(DEFAULT_DIR).join(format!("{n}.sock")),
        (None, None) => Path::new(DEFAULT_DIR).join("uswitch.sock"),
    }
}

/// One request to the running switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    ShowPorts,
    ShowFdb {
        network: Option<String>,
    },
    ShowStats,
    NetworkLs,
    NetworkCreate {
        name: String,
        subnet: Option<String>,
        /// Joins the new network to a VXLAN overlay.
        #[serde(default)]
        overlay: Option<OverlayRequest>,
    },
    ShowVxlan,
    FdbFlush {
        network: Option<String>,
    },
    FdbAdd {
        mac: String,
        port: String,
    },
    FdbDel {
        mac: String,
        network: Option<String>,
    },
    PortAdd {
        name: String,
        network: String,
        #[serde(default = "offload_on")]
        offload: bool,
        #[serde(default)]
        bum_rate: Option<u64>,
    },
    PortDel {
        name: String,
    },
    Capture {
        port: String,
        file: String,
        count: Option<u64>,
    },
    ContainerAdd {
        name: String,
        networks: Vec<String>,
        ips: Vec<Option<String>>,
    },
    ContainerRm {
        name: String,
    },
    ContainerLs,
}

/// `uswitch network create ... --vni N --remote ADDR ...`: what the client knows of the
/// overlay; the switch fills in the local address and port from its endpoint when there
/// is exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayRequest {
    pub vni: u32,
    pub remotes: Vec<std::net::IpAddr>,
    #[serde(default)]
    pub local: Option<std::net::IpAddr>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub mtu: Option<u32>,
}

fn offload_on() -> bool {
    true
}

/// The switch's answer: `data` on success, `error` (one line) on failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Response {
        Response {
            ok: true,
            error: None,
            data,
        }
    }

    pub fn err(msg: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(msg.into()),
            data: serde_json::Value::Null,
        }
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
    listener: UnixListener,
    conns: HashMap<Token, Conn>,
    next: usize,
    first_token: usize,
}

/// What a readiness event on a control token asks of the switch.
pub enum ControlEvent {
    /// Nothing to do now.
    Idle,
    /// A complete request arrived on this connection; answer it with [`ControlServer::reply`].
    Request(Token, Result<Request, String>),
}

impl ControlServer {
    /// Binds `path` (mode 0600), replacing a stale socket left by a crashed switch. Tokens
    /// from `first_token` upwards are used for connections; `listener_token` for the
    /// listener.
    pub fn bind(
        path: &Path,
        registry: &Registry,
        listener_token: Token,
        first_token: usize,
    ) -> Result<ControlServer, ControlError> {
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
            .register(&mut listener, listener_token, Interest::READABLE)
            .map_err(io_err)?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            listener,
            conns: HashMap::new(),
            next: first_token,
            first_token,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `token` is one of this server's connections.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.first_token
    }

    /// Accepts every pending connection.
    pub fn accept(&mut self, registry: &Registry) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.conns.len() >= MAX_CONNECTIONS {
                        // Make room by closing the oldest: a client that connects and
                        // stays silent must not lock the others out.
                        if let Some(oldest) = self
                            .conns
                            .iter()
                            .min_by_key(|(_, c)| c.opened)
                            .map(|(t, _)| *t)
                        {
                            self.close(oldest, registry);
                        }
                    }
                    let token = Token(self.next);
                    self.next += 1;
                    if registry
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_ok()
                    {
                        self.conns.insert(
                            token,
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
    pub fn service(&mut self, token: Token, registry: &Registry) -> ControlEvent {
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
                let parsed = serde_json::from_slice::<Request>(&conn.input[..end])
                    .map_err(|e| format!("malformed request: {e}"));
                return ControlEvent::Request(token, parsed);
            }
            if conn.input.len() > MAX_REQUEST {
                conn.answered = true;
                return ControlEvent::Request(token, Err("request too large".into()));
            }
            return ControlEvent::Idle;
        }
        self.flush(token, registry);
        ControlEvent::Idle
    }

    /// Queues `response` for the connection and writes as much as the socket takes.
    pub fn reply(&mut self, token: Token, response: &Response, registry: &Registry) {
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

    fn flush(&mut self, token: Token, registry: &Registry) {
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
        let stale: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.opened.elapsed() > IDLE_LIMIT)
            .map(|(t, _)| *t)
            .collect();
        for token in stale {
            self.close(token, registry);
        }
    }

    fn close(&mut self, token: Token, registry: &Registry) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = registry.deregister(&mut conn.stream);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends `request` to the switch at `path` and returns its response.
pub fn call(path: &Path, request: &Request) -> Result<Response, String> {
    let unreachable = |e: io::Error| {
        format!(
            "cannot reach uswitch at {}: {e} (is it running? see --control and --name)",
            path.display()
        )
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(CLIENT_TIMEOUT))
        .map_err(unreachable)?;
    let mut line = serde_json::to_vec(request).map_err(|e| format!("encoding the request: {e}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json() {
        let r = Request::FdbAdd {
            mac: "02:00:00:00:00:01".into(),
            port: "tap0".into(),
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"cmd":"fdb_add","mac":"02:00:00:00:00:01","port":"tap0"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"show_ports"}"#).unwrap(),
            Request::ShowPorts
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
    }

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
