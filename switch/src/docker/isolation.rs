//! Isolation between uswitch's Docker networks: their gateways are host ports in this
//! namespace, so the host's routing would carry a container's packets from one network
//! to another (Docker's `DOCKER-ISOLATION` chains stop the same between bridges). A table
//! of uswitch's own drops what is forwarded from one gateway port to another; nothing
//! else is touched, and the table goes when the plugin stops.
//!
//! Through the `nft` tool rather than a netlink crate: the Rust nftables bindings
//! (nftnl, rustables) wrap libnftnl's object model for a handful of rules written once at
//! start, and `nft -f` applies a whole table atomically.

use std::io::Write;
use std::process::{Command, Stdio};

use log::{info, warn};

/// The gateway ports' names begin so (see `driver::gateway_port`).
const GATEWAY_GLOB: &str = "ug*";

pub struct Isolation {
    table: String,
}

fn nft(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft (install nftables): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("running nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft refused the isolation rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Isolation {
    /// Installs the table for plugin `name` (replacing one a crashed run left).
    pub fn install(name: &str) -> Result<Isolation, String> {
        let table = format!(
            "uswitch_{}",
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        // Declaring then deleting makes the replacement work whether or not it exists.
        let script = format!(
            "table inet {table}\ndelete table inet {table}\n\
             table inet {table} {{\n\
             \tchain forward {{\n\
             \t\ttype filter hook forward priority -1; policy accept;\n\
             \t\tiifname \"{GATEWAY_GLOB}\" oifname \"{GATEWAY_GLOB}\" counter drop comment \"uswitch: one Docker network never reaches another\"\n\
             \t}}\n\
             }}\n"
        );
        nft(&script)?;
        info!(
            "nftables table inet {table}: uswitch's Docker networks are isolated from each other"
        );
        Ok(Isolation { table })
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

impl Drop for Isolation {
    fn drop(&mut self) {
        if let Err(e) = nft(&format!("delete table inet {}\n", self.table)) {
            warn!("removing table inet {}: {e}", self.table);
        }
    }
}
