//! The control plane: one typed request/response API ([`protocol`]) that every front end
//! speaks, its server on a Unix socket ([`server`]), what each request does
//! ([`handlers`]), the client side ([`client`]), and setting a switch up from its
//! settings at start ([`setup`]).
//!
//! The server shares the data plane's poll as a [`Sidecar`]: requests run between bursts
//! with the switch in hand, no locks, no second thread, and a client never stalls
//! forwarding.

pub mod client;
pub mod cni;
pub mod handle;
pub mod handlers;
pub mod host;
pub mod launcher_state;
pub mod protocol;
pub mod runtime_state;
pub mod server;
pub mod setup;
pub mod takeover;

use log::{debug, error, info, warn};

use crate::dataplane::{Sidecar, Switch};
use handlers::ControlState;
use protocol::{Request, Response};
use server::{ControlEvent, ControlServer};

pub use server::{socket_path, ControlError};

/// The control socket and the state it keeps, sharing the data plane's poll, and the
/// inbox of front ends on threads of their own.
pub struct Control {
    server: Option<ControlServer>,
    inbox: Option<handle::Inbox>,
    /// The first handle made, cloned for each later front end.
    handle: Option<handle::Handle>,
    pub state: ControlState,
    /// How to read the configuration again on SIGHUP, and what is in force.
    reloader: Option<Reloader>,
    /// When to close the descriptors a take-over received and nothing claimed (the
    /// Docker driver reopens its endpoints from its own thread, after the start).
    release_inherited_at: Option<std::time::Instant>,
}

/// Reads the configuration again (the file under the same flags).
pub type Load = Box<dyn Fn() -> Result<crate::config::Settings, String>>;

struct Reloader {
    load: Load,
    current: crate::config::Settings,
}

impl Control {
    /// Listens on `path`, registering with the switch's poll.
    pub fn bind(path: &std::path::Path, switch: &Switch) -> Result<Control, ControlError> {
        Ok(Control {
            server: Some(ControlServer::bind(path, switch.registry())?),
            inbox: None,
            handle: None,
            state: ControlState::default(),
            reloader: None,
            release_inherited_at: None,
        })
    }

    /// Serves on the control socket a take-over received (see [`takeover`]).
    pub fn adopt(
        listener: std::os::unix::net::UnixListener,
        path: &std::path::Path,
        switch: &Switch,
    ) -> Result<Control, ControlError> {
        let mut c = Control::without_socket();
        c.server = Some(ControlServer::adopt(listener, path, switch.registry())?);
        Ok(c)
    }

    /// The take-over is done: the socket file is this switch's now.
    pub fn own_socket(&mut self) {
        if let Some(s) = self.server.as_mut() {
            s.own_path();
        }
    }

    /// Closes the unclaimed descriptors of a take-over once `after` has passed.
    pub fn release_inherited_after(&mut self, after: std::time::Duration) {
        self.release_inherited_at = Some(std::time::Instant::now() + after);
    }

    /// What SIGHUP does: `load` the configuration again and apply its difference from
    /// `current`.
    pub fn set_reloader(&mut self, load: Load, current: crate::config::Settings) {
        self.reloader = Some(Reloader { load, current });
    }

    /// A handle for a front end on another thread (the first call registers the waker;
    /// later ones share it: the Docker driver and the cluster agent both call in).
    pub fn handle(&mut self, switch: &Switch) -> std::io::Result<handle::Handle> {
        if let Some(h) = &self.handle {
            return Ok(h.clone());
        }
        let (h, inbox) = handle::pair(switch.registry())?;
        self.inbox = Some(inbox);
        self.handle = Some(h.clone());
        Ok(h)
    }

    /// State without a socket (for set-up before binding, and for tests).
    pub fn without_socket() -> Control {
        Control {
            server: None,
            inbox: None,
            handle: None,
            state: ControlState::default(),
            reloader: None,
            release_inherited_at: None,
        }
    }

    pub fn path(&self) -> Option<&std::path::Path> {
        self.server.as_ref().map(|s| s.path())
    }
}

impl Sidecar for Control {
    fn ready(&mut self, switch: &mut Switch, n: usize) {
        if n == handle::WAKER {
            if let Some(inbox) = &self.inbox {
                let state = &mut self.state;
                inbox.drain(|req| {
                    debug!("front-end request: {req:?}");
                    handlers::execute(switch, state, req)
                });
            }
            return;
        }
        let Some(server) = self.server.as_mut() else {
            return;
        };
        if let ControlEvent::Request(conn, request) = server.ready(n, switch.registry()) {
            if let Ok(Request::TakeOver { version, release }) = &request {
                if let Some(why) = takeover::refusal(*version, release) {
                    warn!("{why}");
                    server.reply(conn, &Response::err(why), switch.registry());
                    return;
                }
                let Some(stream) = server.take_stream(conn, switch.registry()) else {
                    return;
                };
                info!("take-over asked by a new uswitch: handing over");
                match takeover::give(stream, switch, server.listener_fd()) {
                    Ok(()) => {
                        switch.flush_for_exit();
                        info!(
                            "handed over to the new uswitch; exiting, leaving everything in place"
                        );
                        // Nothing is undone: the TAPs, sockets, tables and state files
                        // are the new switch's now.
                        std::process::exit(0);
                    }
                    Err(e) => warn!("take-over failed: {e}; this switch carries on"),
                }
                return;
            }
            let response = match request {
                Ok(req) => {
                    debug!("control request: {req:?}");
                    let lasting = runtime_state::lasts(&req).then(|| req.clone());
                    let response = handlers::execute(switch, &mut self.state, req);
                    if let (Some(req), true) = (lasting, response.ok) {
                        self.state.runtime.record(req, switch);
                    }
                    response
                }
                Err(e) => Response::err(e),
            };
            server.reply(conn, &response, switch.registry());
        }
    }

    fn reload(&mut self, switch: &mut Switch) {
        let Some(r) = self.reloader.as_mut() else {
            warn!("SIGHUP: this switch has no configuration to read again");
            return;
        };
        let new = match (r.load)() {
            Ok(s) => s,
            Err(e) => {
                error!("SIGHUP: the configuration is refused ({e}); the running one stays");
                return;
            }
        };
        match setup::apply_changes(switch, &mut self.state, &r.current, &new) {
            Ok(ch) => {
                let applied = if ch.applied.is_empty() {
                    "nothing changed".to_string()
                } else {
                    ch.applied.join(", ")
                };
                info!("SIGHUP: configuration reloaded: {applied}");
                if !ch.at_restart.is_empty() {
                    warn!(
                        "SIGHUP: changed, but applied only at the next start: {}",
                        ch.at_restart.join(", ")
                    );
                }
                r.current = new;
            }
            Err(e) => error!(
                "SIGHUP: the configuration is refused ({e}); nothing changed, the running one                  stays"
            ),
        }
    }

    fn tick(&mut self, switch: &mut Switch) {
        if self
            .release_inherited_at
            .is_some_and(|at| std::time::Instant::now() >= at)
        {
            self.release_inherited_at = None;
            switch.release_inherited();
        }
        if let Some(server) = self.server.as_mut() {
            server.reap_idle(switch.registry());
        }
    }
}
