//! `--metrics ADDR:PORT`: Prometheus scrapes `/metrics` here. The server runs on a thread
//! of its own (hyper's HTTP/1 server on a current-thread tokio runtime) and reaches the
//! loop like every front end, through `control::handle`: one `Observe` request, answered
//! between bursts, is all a scrape costs the data plane. Observations are shared for
//! half a second, so a thousand scrapers cost the loop no more than one.
//!
//! Hostile clients are bounded: at most `MAX_CONNECTIONS` at once (more are closed as
//! they arrive, and counted), headers of at most `MAX_HEADER_BYTES`, five seconds to send
//! them, a minute per connection.

pub mod exposition;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use log::{info, warn};
use tokio::sync::{Mutex, Notify};

use crate::control::handle::Handle;
use crate::control::protocol::{unix_ms, Observation, Request};
use exposition::ServerCounters;

/// Connections served at once; more are closed as they arrive.
pub const MAX_CONNECTIONS: usize = 64;
/// The most a request's head may hold (hyper answers 431 beyond it).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// How long one observation answers every scrape.
const SHARED_FOR: Duration = Duration::from_millis(500);

/// The running metrics server; dropping it stops it.
pub struct MetricsServer {
    stop: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` now (so a taken port is the switch's start-up error) and serves it
    /// from a thread of its own.
    pub fn serve(addr: SocketAddr, switch: Handle) -> io::Result<MetricsServer> {
        let listener = std::net::TcpListener::bind(addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("--metrics {addr}: {e} (pick another ADDR:PORT)"),
            )
        })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(Notify::new());
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        warn!("metrics: no runtime: {e}");
                        return;
                    }
                };
                rt.block_on(run(listener, switch, stopped));
            })?;
        info!("metrics: serving Prometheus on http://{addr}/metrics");
        Ok(MetricsServer {
            stop,
            thread: Some(thread),
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What every connection's requests share.
struct Shared {
    switch: Handle,
    /// The last observation and when it was made.
    cache: Mutex<Option<(Instant, Arc<Observation>)>>,
    open: AtomicUsize,
    refused: AtomicU64,
    bad_requests: AtomicU64,
}

async fn run(listener: std::net::TcpListener, switch: Handle, stop: Arc<Notify>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics: {e}");
            return;
        }
    };
    let shared = Arc::new(Shared {
        switch,
        cache: Mutex::new(None),
        open: AtomicUsize::new(0),
        refused: AtomicU64::new(0),
        bad_requests: AtomicU64::new(0),
    });
    loop {
        let accepted = tokio::select! {
            _ = stop.notified() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            // Out of descriptors, or a connection reset before it was taken: the next
            // accept may succeed; a short pause keeps a full fd table from spinning.
            Err(e) => {
                warn!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if shared.open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        shared.open.fetch_add(1, Ordering::Relaxed);
        let conn_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service_shared = Arc::clone(&conn_shared);
            let service = hyper::service::service_fn(move |req| {
                let s = Arc::clone(&service_shared);
                async move { Ok::<_, Infallible>(answer(&s, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            // A client that errs (bad bytes, headers too large, too slow) is its own
            // problem; the server goes on.
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            conn_shared.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn answer(s: &Shared, req: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
    let bad = |status, body: &str| {
        s.bad_requests.fetch_add(1, Ordering::Relaxed);
        text(status, format!("{body}\n"))
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return bad(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET /metrics is served here",
        );
    }
    match req.uri().path() {
        "/metrics" => {}
        "/" => {
            return text(
                StatusCode::OK,
                "uswitch: Prometheus metrics are at /metrics\n".into(),
            )
        }
        _ => {
            return bad(
                StatusCode::NOT_FOUND,
                "not found: uswitch serves its metrics at /metrics",
            )
        }
    }
    let obs = match observe(s).await {
        Ok(o) => o,
        Err(e) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the switch did not answer: {e}\n"),
            )
        }
    };
    let counters = ServerCounters {
        refused: s.refused.load(Ordering::Relaxed),
        bad_requests: s.bad_requests.load(Ordering::Relaxed),
    };
    let body = exposition::render(&obs, counters, unix_ms());
    let mut r = text(StatusCode::OK, body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(exposition::CONTENT_TYPE),
    );
    r
}

/// The switch as it is now, or as it was less than `SHARED_FOR` ago. Scrapes arriving
/// together wait on the lock and share the one observation the first of them asked for.
async fn observe(s: &Shared) -> Result<Arc<Observation>, String> {
    let mut cache = s.cache.lock().await;
    if let Some((at, obs)) = cache.as_ref() {
        if at.elapsed() < SHARED_FOR {
            return Ok(Arc::clone(obs));
        }
    }
    let switch = s.switch.clone();
    // The handle's call waits on a channel: off the runtime's thread.
    let resp = tokio::task::spawn_blocking(move || switch.call(Request::Observe))
        .await
        .map_err(|e| e.to_string())?;
    if !resp.ok {
        return Err(resp.error.unwrap_or_default());
    }
    let obs: Observation = serde_json::from_value(resp.data).map_err(|e| e.to_string())?;
    let obs = Arc::new(obs);
    *cache = Some((Instant::now(), Arc::clone(&obs)));
    Ok(obs)
}
