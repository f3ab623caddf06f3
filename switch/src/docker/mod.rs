//! uswitch as Docker's network driver: a legacy v1 plugin serving Docker's remote network
//! driver protocol on `/run/docker/plugins/NAME.sock` (tiny_http, on a thread of its
//! own). Each request becomes requests of the control API through a [`Handle`]; the data
//! plane never waits for Docker, and the driver never calls Docker.

pub mod api;
pub mod driver;
pub mod ipam;

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use log::{debug, info, warn};

use crate::control::handle::Handle;
use driver::Driver;

/// Where Docker looks for plugin sockets.
pub const PLUGIN_DIR: &str = "/run/docker/plugins";
/// Requests are a few hundred bytes; anything past this is refused.
const MAX_BODY: u64 = 1 << 20;

/// Why the plugin socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("another process serves the Docker plugin {0} already; stop it or pick another --docker-plugin name")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; remove it or pick another --docker-plugin name")]
    NotASocket(PathBuf),
    #[error("serving the Docker plugin at {path}: {why}")]
    Serve { path: PathBuf, why: String },
}

/// The plugin's server thread; dropping it stops serving and removes the socket.
pub struct Plugin {
    server: std::sync::Arc<tiny_http::Server>,
    /// Set before unblocking the server: `recv_timeout` reads an unblock as a timeout.
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl Plugin {
    /// Serves the plugin `name` under `dir` (Docker's plugin directory by default),
    /// keeping its networks and endpoints in `state_dir` (restored first, once the loop
    /// runs).
    pub fn serve(
        name: &str,
        dir: Option<&Path>,
        state_dir: &Path,
        switch: Handle,
    ) -> Result<Plugin, DockerError> {
        let dir = dir.unwrap_or(Path::new(PLUGIN_DIR));
        let path = dir.join(format!("{name}.sock"));
        let serve_err = |why: String| DockerError::Serve {
            path: path.clone(),
            why,
        };
        std::fs::create_dir_all(dir).map_err(|e| serve_err(e.to_string()))?;
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                    return Err(DockerError::InUse(path));
                }
                // Left by a driver that died: take it over.
                std::fs::remove_file(&path).map_err(|e| serve_err(e.to_string()))?;
            }
            Ok(_) => return Err(DockerError::NotASocket(path)),
            Err(_) => {}
        }
        // Only the plugin's one server installs (and so, on drop, removes) its table.
        let firewall = crate::firewall::Firewall::install(name).map_err(&serve_err)?;
        let server = tiny_http::Server::http_unix(&path).map_err(|e| serve_err(e.to_string()))?;
        let server = std::sync::Arc::new(server);
        let serving = std::sync::Arc::clone(&server);
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopping);
        let state_file = state_dir.join(format!("docker-{name}.json"));
        let thread = std::thread::Builder::new()
            .name("docker-plugin".into())
            .spawn(move || {
                let mut driver = Driver::new(switch, firewall, Some(state_file));
                if let Err(e) = driver.restore() {
                    // Kept for the operator, never half-applied again or overwritten.
                    let aside = driver.set_state_aside();
                    log::error!("restoring the Docker networks: {e}; {aside}");
                }
                run(&serving, &stop, driver)
            })
            .map_err(|e| serve_err(e.to_string()))?;
        info!("Docker network driver plugin on {}", path.display());
        Ok(Plugin {
            server,
            stopping,
            thread: Some(thread),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How often the driver checks that its rules in Docker's chains still stand.
const KEEP_UP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How long the driver waits for a request before looking at the finished bodies again.
const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(20);
/// Requests whose bodies are still arriving, at most; more are refused at once, so
/// clients that never finish a request cannot tie up threads without bound.
const MAX_IN_FLIGHT: usize = 64;

/// A request whose body has been read (or failed to be), ready for the driver.
type Arrived = (tiny_http::Request, String, Result<Vec<u8>, String>);

/// Serves requests until the plugin stops. A request's body is read on a thread of its
/// own: a client that sends headers and then stalls (or dribbles its body) must not hold
/// up the driver, which answers each complete request in order of arrival on this
/// thread.
fn run(server: &tiny_http::Server, stopping: &AtomicBool, mut driver: Driver) {
    let (done, arrived) = std::sync::mpsc::channel::<Arrived>();
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut kept_up = std::time::Instant::now();
    loop {
        while let Ok((request, path, body)) = arrived.try_recv() {
            let answer = body.and_then(|b| driver.handle(&path, &b));
            respond(request, &path, answer);
        }
        if kept_up.elapsed() >= KEEP_UP_EVERY {
            driver.keep_up();
            kept_up = std::time::Instant::now();
        }
        let request = match server.recv_timeout(POLL_EVERY) {
            Ok(Some(request)) => request,
            Ok(None) if stopping.load(Ordering::Acquire) => return,
            Ok(None) => continue,
            Err(e) => {
                warn!("the Docker plugin's server failed: {e}; it stops serving");
                return;
            }
        };
        let path = request.url().to_string();
        if in_flight.load(Ordering::Acquire) >= MAX_IN_FLIGHT {
            respond(
                request,
                &path,
                Err(format!(
                    "{MAX_IN_FLIGHT} requests are still arriving; try again when they are in"
                )),
            );
            continue;
        }
        in_flight.fetch_add(1, Ordering::AcqRel);
        let (done, reading) = (done.clone(), Arc::clone(&in_flight));
        let spawned = std::thread::Builder::new()
            .name("docker-body".into())
            .spawn(move || {
                let mut request = request;
                let mut body = Vec::new();
                let read = request
                    .as_reader()
                    .take(MAX_BODY + 1)
                    .read_to_end(&mut body);
                let body = match read {
                    Err(e) => Err(format!("reading the request: {e}")),
                    Ok(_) if body.len() as u64 > MAX_BODY => {
                        Err(format!("the request is over {MAX_BODY} bytes"))
                    }
                    Ok(_) => Ok(body),
                };
                reading.fetch_sub(1, Ordering::AcqRel);
                let _ = done.send((request, path, body));
            });
        if let Err(e) = spawned {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            warn!("the Docker plugin could not read a request: {e}");
        }
    }
}

/// Sends the driver's answer (or error, as `{"Err": ...}`, which Docker shows).
fn respond(request: tiny_http::Request, path: &str, answer: Result<serde_json::Value, String>) {
    let json = match answer {
        Ok(v) => {
            debug!("docker {path}: ok");
            v
        }
        Err(e) => {
            warn!("docker {path}: {e}");
            serde_json::json!({ "Err": e })
        }
    };
    let bytes = serde_json::to_vec(&json).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = tiny_http::Response::from_data(bytes).with_status_code(200);
    if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", api::CONTENT_TYPE) {
        response = response.with_header(h);
    }
    let _ = request.respond(response);
}
