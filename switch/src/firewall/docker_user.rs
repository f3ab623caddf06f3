//! uswitch's accept rules in the `DOCKER-USER` chain of a Docker that runs its own
//! iptables rules.
//!
//! Docker with its defaults sets the `FORWARD` policy to `DROP` and accepts only what
//! crosses its own bridges. A packet passes every base chain of the forward hook —
//! iptables' (Docker's) and nftables' (uswitch's own table) alike — and a drop in any is
//! final, so uswitch's table cannot accept what Docker's policy drops. Docker keeps
//! `DOCKER-USER` for other people's rules, jumps to it first from `FORWARD` and leaves
//! its contents alone across restarts; uswitch inserts its three rules there, each tagged
//! with a comment naming its table, and deletes exactly those when it stops. Nothing else
//! of Docker's is touched. Isolation still holds: the drops of uswitch's own table (one
//! network from another, uswitch networks from Docker's bridges) are final too.
//!
//! Through the `iptables`/`ip6tables` tools, the ones Docker itself runs: whichever
//! backend they use (nf_tables or legacy), uswitch's rules land beside Docker's. A host
//! without Docker's chains (or without iptables) gets nothing.

use std::process::Command;

use log::{info, warn};

/// The gateway ports' names begin so (`super::GATEWAY_PREFIX`), in iptables' glob.
const GATEWAY_GLOB: &str = "ug+";
const CHAIN: &str = "DOCKER-USER";
const TOOLS: [&str; 2] = ["iptables", "ip6tables"];

pub struct DockerUser {
    /// Marks uswitch's rules (the nftables table's name: one per plugin).
    comment: String,
}

/// What to say to `tool` (wait for the xtables lock, as Docker does); its stdout, or
/// why it failed.
fn xtables(tool: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(tool)
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| format!("running {tool}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{tool} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl DockerUser {
    pub fn new(table: &str) -> DockerUser {
        DockerUser {
            comment: table.to_string(),
        }
    }

    /// The rules, in the order they stand at the top of the chain: what a network sends
    /// out through its gateway, the replies to it, and what a published port's DNAT
    /// sends in.
    fn rules(&self) -> [Vec<&str>; 3] {
        let tag = ["-m", "comment", "--comment", &self.comment, "-j", "ACCEPT"];
        let with = |head: &[&'static str]| -> Vec<&str> {
            head.iter().copied().chain(tag.iter().copied()).collect()
        };
        [
            with(&["-i", GATEWAY_GLOB]),
            with(&[
                "-o",
                GATEWAY_GLOB,
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
            ]),
            with(&["-o", GATEWAY_GLOB, "-m", "conntrack", "--ctstate", "DNAT"]),
        ]
    }

    /// Puts uswitch's rules at the top of every `DOCKER-USER` chain there is, unless
    /// they are there already. Called on every firewall change and now and then, since
    /// Docker may start (and make its chains) after uswitch.
    pub fn ensure(&self) {
        let rules = self.rules();
        for tool in TOOLS {
            let Ok(listing) = xtables(tool, &["-S", CHAIN]) else {
                continue; // no Docker rules for this family (or no iptables)
            };
            let ours = listing
                .lines()
                .filter(|l| l.split_whitespace().any(|w| w == self.comment))
                .count();
            if ours == rules.len() {
                continue;
            }
            self.remove_from(tool);
            let mut inserted = true;
            for (at, rule) in rules.iter().enumerate() {
                let position = (at + 1).to_string();
                let mut args = vec!["-I", CHAIN, position.as_str()];
                args.extend_from_slice(rule);
                if let Err(e) = xtables(tool, &args) {
                    warn!("{e}; uswitch networks may not forward past Docker's FORWARD policy");
                    inserted = false;
                    break;
                }
            }
            if inserted {
                info!(
                    "{tool}: accept rules for uswitch's gateway ports at the top of Docker's \
                     {CHAIN} chain (Docker's FORWARD policy drops the rest)"
                );
            }
        }
    }

    /// Deletes uswitch's rules, and only those, from `tool`'s chain.
    fn remove_from(&self, tool: &str) {
        for rule in self.rules() {
            let mut args = vec!["-D", CHAIN];
            args.extend_from_slice(&rule);
            // The same rule may stand twice after a crash between insert and check.
            for _ in 0..4 {
                if xtables(tool, &args).is_err() {
                    break;
                }
            }
        }
    }

    pub fn remove(&self) {
        for tool in TOOLS {
            if xtables(tool, &["-S", CHAIN]).is_ok() {
                self.remove_from(tool);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_tagged_and_accepts_only_gateway_traffic() {
        let d = DockerUser::new("uswitch_lab");
        for rule in d.rules() {
            let s = rule.join(" ");
            assert!(
                s.contains("-m comment --comment uswitch_lab -j ACCEPT"),
                "{s}"
            );
            assert!(s.contains("ug+"), "{s}");
        }
    }
}
