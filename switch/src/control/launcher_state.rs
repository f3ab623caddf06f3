//! What brings the launcher's containers back after uswitch restarts (cleanly or after a
//! `kill -9`): each container, its interfaces with their MACs and addresses, and how the
//! networks they are on were created at runtime, in `STATE_DIR/launcher-HASH.json` (one
//! per control socket, written atomically). Their TAPs are persistent, so they stay in
//! the containers while uswitch is away, and are found again there by MAC.

use std::collections::BTreeMap;
use std::path::PathBuf;

use log::warn;
use serde::{Deserialize, Serialize};

use super::protocol::OverlayRequest;
use crate::launcher::{Container, Containers};

/// How a network was created at runtime (`network create`), to create it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MadeNetwork {
    pub subnet: Option<String>,
    pub overlay: Option<OverlayRequest>,
    pub mtu: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    pub networks: BTreeMap<String, MadeNetwork>,
    pub containers: Vec<Container>,
}

/// The launcher's record: networks made at runtime, and where the record is kept.
#[derive(Debug, Default)]
pub struct LauncherBook {
    path: Option<PathBuf>,
    pub made: BTreeMap<String, MadeNetwork>,
}

impl LauncherBook {
    pub fn new(path: Option<PathBuf>) -> LauncherBook {
        LauncherBook {
            path,
            made: BTreeMap::new(),
        }
    }

    /// Writes the containers and the runtime networks they are on.
    pub fn save(&self, containers: &Containers) {
        let Some(path) = &self.path else {
            return;
        };
        let list: Vec<Container> = containers.by_name.values().cloned().collect();
        if list.is_empty() {
            // Nothing to bring back: no file either.
            let _ = std::fs::remove_file(path);
            return;
        }
        let networks = self
            .made
            .iter()
            .filter(|(n, _)| {
                list.iter()
                    .any(|c| c.interfaces.iter().any(|i| &i.network == *n))
            })
            .map(|(n, m)| (n.clone(), m.clone()))
            .collect();
        let saved = Saved {
            networks,
            containers: list,
        };
        if let Err(e) = crate::state_file::write(path, &saved) {
            warn!("writing the launcher's state {}: {e}", path.display());
        }
    }

    /// What the last run left; a file that does not read is set aside (kept, named in
    /// the error) and nothing of it applied.
    pub fn load(&self) -> Result<Saved, String> {
        let Some(path) = &self.path else {
            return Ok(Saved::default());
        };
        match crate::state_file::read::<Saved>(path, "launcher state") {
            Ok(saved) => Ok(saved.unwrap_or_default()),
            Err(e) => Err(format!("{e}; {}", crate::state_file::set_aside(path))),
        }
    }
}
