//! A port as the data plane holds it: its device, which every worker may write to, and
//! what only the worker that reads it keeps (its place in that worker's poll, its rests).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use log::info;
use parking_lot::Mutex;

use super::capture::{Capture, Direction, Stopped};
use super::device::Device;

/// A port's device and what any worker touches of it while writing.
pub(crate) struct PortDev {
    pub(crate) dev: Device,
    /// The worker that reads the device (for a VXLAN remote, the worker that reads its
    /// endpoint).
    pub(crate) owner: usize,
    /// Tells this attachment from a later one under the same port id.
    pub(crate) incarnation: u64,
    /// The last write failed because the interface is down (its netdev, possibly in a
    /// container's namespace, is not up); cleared by the next write that succeeds.
    pub(crate) down: AtomicBool,
    /// Set while `capture` holds a capture, so that a frame's path checks a flag, not a
    /// lock.
    capturing: AtomicBool,
    capture: Mutex<Option<Capture>>,
    /// How many times the port was rested (see `worker::rest_if_storming`).
    pub(crate) rests: AtomicU64,
}

/// A new attachment's number.
static NEXT_INCARNATION: AtomicU64 = AtomicU64::new(1);

impl PortDev {
    pub(crate) fn new(dev: Device, owner: usize) -> PortDev {
        PortDev {
            dev,
            owner,
            incarnation: NEXT_INCARNATION.fetch_add(1, Ordering::Relaxed),
            down: AtomicBool::new(false),
            capturing: AtomicBool::new(false),
            capture: Mutex::new(None),
            rests: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Notes whether the port's link is down; true if that changed it.
    pub(crate) fn set_down(&self, down: bool) -> bool {
        // Written only when it changes: a line every writer reads stays unshared.
        let changed = self.down.load(Ordering::Relaxed) != down;
        if changed {
            self.down.store(down, Ordering::Relaxed);
        }
        changed
    }

    pub(crate) fn is_captured(&self) -> bool {
        self.capturing.load(Ordering::Relaxed)
    }

    /// Starts `cap` on the port; false (and `cap` dropped) if one runs already.
    pub(crate) fn start_capture(&self, cap: Capture) -> bool {
        let mut slot = self.capture.lock();
        if slot.is_some() {
            return false;
        }
        *slot = Some(cap);
        self.capturing.store(true, Ordering::Relaxed);
        true
    }

    /// Ends the capture, if one runs, and gives it back.
    pub(crate) fn take_capture(&self) -> Option<Capture> {
        let mut slot = self.capture.lock();
        self.capturing.store(false, Ordering::Relaxed);
        slot.take()
    }

    /// Runs `f` on the capture, if one runs.
    pub(crate) fn with_capture<T>(&self, f: impl FnOnce(&mut Option<Capture>) -> T) -> T {
        let mut slot = self.capture.lock();
        let out = f(&mut slot);
        if slot.is_none() {
            self.capturing.store(false, Ordering::Relaxed);
        }
        out
    }

    /// Records `frame` in the port's capture, closing the capture when it is complete.
    /// Returns true when it closed, so the caller can tell the forwarder.
    pub(crate) fn capture(&self, frame: &[u8], direction: Direction) -> bool {
        if !self.is_captured() {
            return false;
        }
        let mut slot = self.capture.lock();
        let Some(cap) = slot.as_mut() else {
            return false;
        };
        let Some(why) = cap.record(frame, direction) else {
            return false;
        };
        self.capturing.store(false, Ordering::Relaxed);
        if let Some(cap) = slot.take() {
            let (path, frames) = (cap.path().display().to_string(), cap.frames());
            let result = cap.finish();
            let why = match (why, result) {
                (_, Err(e)) => format!("writing failed: {e}"),
                (Stopped::WriteError, Ok(())) => "writing failed (its reader went away?)".into(),
                (Stopped::Count, Ok(())) => "it has all the frames asked for".into(),
                (Stopped::SizeCap, Ok(())) => "it reached its size cap".into(),
            };
            info!(
                "capture on {} into {path} ended after {frames} frames: {why}",
                self.dev.name()
            );
        }
        true
    }
}

/// What the worker that reads a port keeps of it.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    /// The attachment this is for (see [`PortDev::incarnation`]).
    pub(crate) incarnation: u64,
    /// On the ready list: readable and not yet drained.
    pub(crate) queued: bool,
    /// Not polled until then: the port floods far beyond its storm-control rate.
    pub(crate) resting_until: Option<Instant>,
    /// When a rest was last logged.
    pub(crate) rest_logged: Option<Instant>,
}
