//! uswitch as Docker's network driver: a legacy v1 plugin serving Docker's remote network
//! driver protocol on `/run/docker/plugins/NAME.sock` (hyper's HTTP/1 server on a
//! current-thread tokio runtime, on a thread of its own). Each request becomes requests
//! of the control API through a [`Handle`]; the data plane never waits for Docker, and
//! the driver never calls Docker.
//!
//! Every connection is a task with deadlines of its own (its head, its body, its life),
//! so clients that stall or dribble cost a task each until their deadline, and never hold
//! up another client: tiny_http, used before, kept a thread per connection without
//! deadlines, and its pool could leave a new connection queued behind stalled ones.

pub mod api;
pub mod driver;
pub mod ipam;

use std::convert::Infallible;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use log::{debug, info, warn};
use tokio::sync::Notify;

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
    stop: Arc<Notify>,
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
        let listener =
            std::os::unix::net::UnixListener::bind(&path).map_err(|e| serve_err(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| serve_err(e.to_string()))?;
        let stop = Arc::new(Notify::new());
        let stopped = Arc::clone(&stop);
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
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        warn!("the Docker plugin has no runtime: {e}; it does not serve");
                        return;
                    }
                };
                let driver = Arc::new(Mutex::new(driver));
                rt.block_on(run(listener, Arc::clone(&driver), stopped));
                // The connections' tasks go with the runtime; the driver (and with it
                // the firewall table) goes last.
                drop(rt);
                drop(driver);
            })
            .map_err(|e| serve_err(e.to_string()))?;
        info!("Docker network driver plugin on {}", path.display());
        Ok(Plugin {
            stop,
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
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How often the driver checks that its rules in Docker's chains still stand.
const KEEP_UP_EVERY: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed as they arrive. Docker keeps a few; the
/// rest of the room is for clients that stall, each until its deadline.
const MAX_CONNECTIONS: usize = 512;
/// A request's head, and then its body, must arrive within this.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// The longest a connection lives (Docker reconnects when it needs to).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

type Shared = Arc<Mutex<Driver>>;

/// Serves connections until the plugin stops. The driver answers one request at a time,
/// in order of arrival of complete requests, on the runtime's blocking thread: it waits
/// on the switch's loop, never on a client.
async fn run(listener: std::os::unix::net::UnixListener, driver: Shared, stop: Arc<Notify>) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("the Docker plugin's socket: {e}; it does not serve");
            return;
        }
    };
    let open = Arc::new(AtomicUsize::new(0));
    let mut keep_up = tokio::time::interval(KEEP_UP_EVERY);
    loop {
        let accepted = tokio::select! {
            _ = stop.notified() => return,
            _ = keep_up.tick() => {
                let d = Arc::clone(&driver);
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(d) = d.lock() {
                        d.keep_up();
                    }
                })
                .await;
                continue;
            }
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            // Out of descriptors, most likely: the next accept may succeed.
            Err(e) => {
                warn!("the Docker plugin's accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            warn!("the Docker plugin has {MAX_CONNECTIONS} connections open; one more is closed");
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let (open, driver) = (Arc::clone(&open), Arc::clone(&driver));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let d = Arc::clone(&driver);
                async move { Ok::<_, Infallible>(answer(d, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(REQUEST_DEADLINE)
                .serve_connection(TokioIo::new(stream), service);
            // A client that errs or stalls is its own problem; the server goes on.
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// One request: its body (bounded in size and time), the driver's answer.
async fn answer(driver: Shared, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let limited = Limited::new(req.into_body(), MAX_BODY as usize);
    let body = match tokio::time::timeout(REQUEST_DEADLINE, limited.collect()).await {
        Err(_) => Err(format!(
            "the request's body did not arrive within {} s",
            REQUEST_DEADLINE.as_secs()
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(format!("the request is over {MAX_BODY} bytes"))
        }
        Ok(Err(e)) => Err(format!("reading the request: {e}")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    };
    let result = match body {
        Err(e) => Err(e),
        Ok(body) => {
            let p = path.clone();
            tokio::task::spawn_blocking(move || match driver.lock() {
                Ok(mut d) => d.handle(&p, &body),
                Err(_) => Err("the Docker driver failed on an earlier request".to_string()),
            })
            .await
            .unwrap_or_else(|e| Err(format!("the Docker driver failed: {e}")))
        }
    };
    respond(&path, result)
}

/// Sends the driver's answer (or error, as `{"Err": ...}`, which Docker shows).
fn respond(path: &str, answer: Result<serde_json::Value, String>) -> hyper::Response<Full<Bytes>> {
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
    let mut response = hyper::Response::new(Full::new(Bytes::from(bytes)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(api::CONTENT_TYPE),
    );
    response
}
