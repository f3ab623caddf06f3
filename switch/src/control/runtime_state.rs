//! What brings back the changes made at runtime through the control socket (`uswitch
//! network create`, `port add`, `fdb add`, host ports, overlay remotes, and their
//! removals) after uswitch restarts, cleanly or after a `kill -9`, or hands over to a new
//! binary: the requests themselves, kept in `STATE_DIR/runtime-HASH.json` (one per
//! control socket, written atomically after each change) and made again, in order, after
//! the configuration at start.
//!
//! The book keeps only what still stands: a removal takes the addition it undoes out
//! (and what hung on it: a network's ports, a port's static entries) rather than being
//! written beside it, so the file does not grow with churn. A removal of something the
//! book did not add (a port of the configuration file) is kept, so the restart removes
//! it again. The front ends' own changes (the Docker driver's, the cluster agent's, the
//! CNI plugin's and the launcher's) are not written here: each keeps its own record.
//! Captures are noted but not made again: the restart says which one no longer runs.

use std::path::PathBuf;

use log::{info, warn};

use super::protocol::Request;
use crate::dataplane::Switch;

/// The runtime changes that still stand, and where they are kept.
#[derive(Debug, Default)]
pub struct RuntimeBook {
    path: Option<PathBuf>,
    pub changes: Vec<Request>,
}

/// Whether `req` changes the switch in a way a restart should bring back.
pub fn lasts(req: &Request) -> bool {
    matches!(
        req,
        Request::NetworkCreate { .. }
            | Request::NetworkRm { .. }
            | Request::PortAdd {
                persistent: false,
                ..
            }
            | Request::PortDel { .. }
            | Request::HostPortAdd { .. }
            | Request::FdbAdd { .. }
            | Request::FdbDel { .. }
            | Request::OverlayRemoteAdd { .. }
            | Request::OverlayRemoteDel { .. }
            // Not made again (a restart does not resume a capture), but noted.
            | Request::Capture { .. }
            | Request::CaptureStop { .. }
    )
}

/// The network a recorded request belongs to, when it names one.
fn network_of(req: &Request) -> Option<&str> {
    match req {
        Request::NetworkCreate { name, .. } => Some(name),
        Request::PortAdd { network, .. }
        | Request::HostPortAdd { network, .. }
        | Request::OverlayRemoteAdd { network, .. } => Some(network),
        _ => None,
    }
}

/// The port a recorded request makes, when it makes one.
fn port_of(req: &Request) -> Option<&str> {
    match req {
        Request::PortAdd { name, .. } | Request::HostPortAdd { name, .. } => Some(name),
        _ => None,
    }
}

impl RuntimeBook {
    pub fn new(path: Option<PathBuf>) -> RuntimeBook {
        RuntimeBook {
            path,
            changes: Vec::new(),
        }
    }

    /// Notes `req`, which has just succeeded; `sw` is the switch after it (a static
    /// entry's network is its port's). Writes the book.
    pub fn record(&mut self, req: Request, sw: &Switch) {
        if !lasts(&req) {
            return;
        }
        let undone = match &req {
            Request::NetworkRm { name } => self.undo_network(name),
            Request::PortDel { name } => self.undo_port(name),
            Request::FdbDel { mac, network } => {
                let on_network = |port: &str| {
                    let Some(net) = network else {
                        return true;
                    };
                    let fwd = sw.forwarder();
                    fwd.port_named(port)
                        .and_then(|id| fwd.port(id))
                        .and_then(|p| fwd.network(p.network()))
                        .is_some_and(|n| n.name() == net)
                };
                self.take(
                    |r| matches!(r, Request::FdbAdd { mac: m, port } if m == mac && on_network(port)),
                )
            }
            Request::OverlayRemoteDel { network, remote } => self.take(|r| {
                matches!(r, Request::OverlayRemoteAdd { network: n, remote: a }
                    if n == network && a == remote)
            }),
            Request::CaptureStop { port } => {
                self.take(|r| matches!(r, Request::Capture { port: p, .. } if p == port));
                true
            }
            Request::Capture { port, .. } => {
                self.take(|r| matches!(r, Request::Capture { port: p, .. } if p == port));
                false
            }
            Request::FdbAdd { mac, .. } => {
                // The newest entry for a MAC is the one that stands.
                self.take(|r| matches!(r, Request::FdbAdd { mac: m, .. } if m == mac));
                false
            }
            _ => false,
        };
        if !undone {
            self.changes.push(req);
        }
        self.save();
    }

    /// Takes out every change `gone` matches; whether there was one.
    fn take(&mut self, gone: impl Fn(&Request) -> bool) -> bool {
        let before = self.changes.len();
        self.changes.retain(|r| !gone(r));
        self.changes.len() != before
    }

    /// A network removed: the book's creation of it goes, with its ports (and their
    /// entries) and remotes. Whether the book had created it.
    fn undo_network(&mut self, name: &str) -> bool {
        let ports: Vec<String> = self
            .changes
            .iter()
            .filter(|r| network_of(r) == Some(name))
            .filter_map(|r| port_of(r).map(str::to_string))
            .collect();
        for p in &ports {
            self.undo_port(p);
        }
        let created =
            self.take(|r| matches!(r, Request::NetworkCreate { name: n, .. } if n == name));
        self.take(|r| network_of(r) == Some(name));
        created
    }

    /// A port removed: the book's addition of it goes, with its static entries. Whether
    /// the book had added it.
    fn undo_port(&mut self, name: &str) -> bool {
        self.take(|r| matches!(r, Request::FdbAdd { port, .. } if port == name));
        self.take(|r| matches!(r, Request::Capture { port, .. } if port == name));
        self.take(|r| port_of(r) == Some(name))
    }

    fn save(&self) {
        let Some(path) = &self.path else {
            return;
        };
        if self.changes.is_empty() {
            let _ = std::fs::remove_file(path);
            return;
        }
        if let Err(e) = crate::state_file::write(path, &self.changes) {
            warn!(
                "writing the runtime changes {}: {e} (they stand until uswitch stops, \
                 but a restart will not bring them back)",
                path.display()
            );
        }
    }

    /// What the last run left; a file that does not read is set aside (kept, named in
    /// the error) and nothing of it applied.
    pub fn load(&self) -> Result<Vec<Request>, String> {
        let Some(path) = &self.path else {
            return Ok(Vec::new());
        };
        match crate::state_file::read::<Vec<Request>>(path, "runtime changes") {
            Ok(saved) => Ok(saved.unwrap_or_default()),
            Err(e) => Err(format!("{e}; {}", crate::state_file::set_aside(path))),
        }
    }

    /// Makes the saved changes again with `apply`, in order; keeps those that stood.
    pub fn replay(
        &mut self,
        saved: Vec<Request>,
        mut apply: impl FnMut(Request) -> Result<(), String>,
    ) {
        let total = saved.len();
        self.changes.clear();
        for req in saved {
            if !lasts(&req) {
                warn!("runtime changes: {req:?} is not a lasting change; skipped");
                continue;
            }
            if let Request::Capture { port, file, .. } = &req {
                warn!(
                    "a capture of {port} into {file} was started before the restart; \
                     captures do not survive one, so it is not running now (uswitch capture \
                     {port} FILE starts another)"
                );
                continue;
            }
            match apply(req.clone()) {
                Ok(()) => self.changes.push(req),
                Err(e) => warn!("runtime change {req:?} could not be made again: {e}; dropped"),
            }
        }
        if total > 0 {
            info!(
                "runtime changes: {} of {total} made again",
                self.changes.len()
            );
        }
        self.save();
    }
}
