//! Delegation to an IPAM plugin, as the specification says: the plugin named by
//! `ipam.type`, found on `CNI_PATH`, run with this plugin's environment (the command
//! overridden where asked) and the same configuration on stdin.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::spec::{code, CniError, CniResult};

/// The IPAM plugin `name` on `cni_path` (colon-separated directories).
fn find(name: &str, cni_path: &str) -> Result<PathBuf, CniError> {
    std::env::split_paths(cni_path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "the IPAM plugin {name} is not in CNI_PATH ({cni_path}); install it \
                     (Debian: containernetworking-plugins, in /usr/lib/cni) or fix ipam.type"
                ),
            )
        })
}

/// Runs the IPAM plugin for `command`, with `overrides` on top of this process's
/// environment; its stdout, or its error object.
pub fn delegate(
    name: &str,
    cni_path: &str,
    command: &str,
    overrides: &[(&str, &str)],
    conf: &[u8],
) -> Result<Vec<u8>, CniError> {
    let program = find(name, cni_path)?;
    let io = |e: std::io::Error| {
        CniError::new(
            code::IO_FAILURE,
            format!("running the IPAM plugin {}: {e}", program.display()),
        )
    };
    let mut cmd = Command::new(&program);
    cmd.env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in overrides {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(io)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(conf).map_err(io)?;
    }
    let out = child.wait_with_output().map_err(io)?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    // The specification's error object, passed on as the IPAM plugin gave it.
    Err(
        serde_json::from_slice::<CniError>(&out.stdout).unwrap_or_else(|_| {
            CniError::new(
                code::IO_FAILURE,
                format!("the IPAM plugin {name} failed ({})", out.status),
            )
            .details(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }),
    )
}

/// `ADD`: the addresses, routes and DNS the IPAM plugin gives.
pub fn add(name: &str, cni_path: &str, conf: &[u8]) -> Result<CniResult, CniError> {
    let out = delegate(name, cni_path, "ADD", &[], conf)?;
    serde_json::from_slice(&out).map_err(|e| {
        CniError::new(
            code::DECODING_FAILURE,
            format!("the IPAM plugin {name} gave a result uswitch-cni cannot read: {e}"),
        )
    })
}

/// Whether the IPAM plugin speaks `version` (it answers `VERSION`).
pub fn speaks(name: &str, cni_path: &str, version: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Versions {
        #[serde(rename = "supportedVersions")]
        supported: Vec<String>,
    }
    let ask = format!("{{\"cniVersion\":\"{version}\"}}");
    delegate(name, cni_path, "VERSION", &[], ask.as_bytes())
        .ok()
        .and_then(|out| serde_json::from_slice::<Versions>(&out).ok())
        .is_some_and(|v| v.supported.iter().any(|s| s == version))
}
