//! The control API for front ends on threads of their own (the Docker driver): a request
//! goes through a channel and wakes the loop; the loop runs it between bursts, as it does
//! a socket's, and sends the response back. The front end's thread waits; the data plane
//! never does.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use mio::{Registry, Waker};

use super::protocol::{Request, Response};
use crate::dataplane::tokens;

/// The sidecar number the waker's events come under (the socket's are counted from 0).
pub const WAKER: usize = tokens::MAX_SIDECAR;

type Call = (Request, Sender<Response>);

/// A front end's way to the switch; clone one per thread.
#[derive(Clone)]
pub struct Handle {
    calls: Sender<Call>,
    waker: Arc<Waker>,
}

impl Handle {
    /// Runs `request` in the switch and returns its response. A switch that has stopped
    /// answers with an error.
    pub fn call(&self, request: Request) -> Response {
        let (tx, rx) = channel();
        if self.calls.send((request, tx)).is_err() || self.waker.wake().is_err() {
            return Response::err("the switch is shutting down");
        }
        rx.recv()
            .unwrap_or_else(|_| Response::err("the switch is shutting down"))
    }
}

/// The loop's end of the handles.
pub struct Inbox {
    calls: Receiver<Call>,
    // Kept so the waker's registration lives as long as the inbox.
    _waker: Arc<Waker>,
}

/// A handle and the inbox it feeds, the waker registered with `registry`.
pub fn pair(registry: &Registry) -> std::io::Result<(Handle, Inbox)> {
    let waker = Arc::new(Waker::new(registry, tokens::sidecar(WAKER))?);
    let (tx, rx) = channel();
    Ok((
        Handle {
            calls: tx,
            waker: Arc::clone(&waker),
        },
        Inbox {
            calls: rx,
            _waker: waker,
        },
    ))
}

impl Inbox {
    /// Every call waiting, each answered by `run`.
    pub fn drain(&self, mut run: impl FnMut(Request) -> Response) {
        while let Ok((request, reply)) = self.calls.try_recv() {
            // A caller that gave up has dropped its receiver: nothing to tell.
            let _ = reply.send(run(request));
        }
    }
}
