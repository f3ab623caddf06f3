//! A port as the data plane holds it: its device, its place in the poll, its capture.

use std::time::Instant;

use log::info;

use super::capture::{Capture, Direction, Stopped};
use super::device::Device;

pub(crate) struct PortIo {
    pub(crate) dev: Device,
    /// On the ready list: readable and not yet drained.
    pub(crate) queued: bool,
    /// The last write failed because the interface is down (its netdev, possibly in a
    /// container's namespace, is not up); cleared by the next write that succeeds.
    pub(crate) down: bool,
    pub(crate) capture: Option<Capture>,
    /// Not polled until then: the port floods far beyond its storm-control rate.
    pub(crate) resting_until: Option<Instant>,
    /// How many times the port was rested, and when that was last logged.
    pub(crate) rests: u64,
    pub(crate) rest_logged: Option<Instant>,
}

impl PortIo {
    pub(crate) fn new(dev: Device) -> PortIo {
        PortIo {
            queued: dev.raw_fd().is_some(),
            dev,
            down: false,
            capture: None,
            resting_until: None,
            rests: 0,
            rest_logged: None,
        }
    }

    /// Records `frame` in the port's capture, closing the capture when it is complete.
    /// Returns true when it closed, so the caller can tell the forwarder.
    pub(crate) fn capture(&mut self, frame: &[u8], direction: Direction) -> bool {
        let Some(cap) = self.capture.as_mut() else {
            return false;
        };
        let Some(why) = cap.record(frame, direction) else {
            return false;
        };
        if let Some(cap) = self.capture.take() {
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
