//! State files under `--state-dir` (the Docker driver's, the CNI attachments'): JSON,
//! written atomically (a temporary file, synced, renamed over the old one) with mode 0600,
//! and a file that cannot be read back kept aside for the operator, never overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Writes `value` to `path` atomically.
pub fn write<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        // A full disk leaves a torn temporary file: not ours to keep (the last good
        // record stays where it was).
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// What `path` holds: None when there is no such file; an error naming the file (and
/// what to do) when it is not what `what` should be.
pub fn read<T: DeserializeOwned>(path: &Path, what: &str) -> Result<Option<T>, String> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading the {what} {}: {e}", path.display())),
    };
    serde_json::from_slice(&text).map(Some).map_err(|e| {
        format!(
            "the {what} {} is not uswitch's: {e} (move it away to start afresh)",
            path.display()
        )
    })
}

/// Moves a file that could not be restored out of the way (to `*.bad`), so the next
/// write does not overwrite it; says where it went.
pub fn set_aside(path: &Path) -> String {
    let bad = path.with_extension("json.bad");
    match std::fs::rename(path, &bad) {
        Ok(()) => format!("the state file is kept as {}", bad.display()),
        Err(e) => format!("moving the state file aside failed: {e}"),
    }
}
