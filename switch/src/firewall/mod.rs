//! The host's packet filter for uswitch's networks that have a gateway (Docker's and
//! CNI's), in an nftables table of uswitch's own (`inet uswitch_NAME`), rewritten whole on
//! every change and removed when its owner stops; nothing outside it is touched.
//!
//! - Isolation: the networks' gateways are host ports in this namespace, so the host's
//!   routing would carry a container's packets from one network to another (Docker's
//!   `DOCKER-ISOLATION` chains stop the same between bridges). What is forwarded from one
//!   gateway port to another is dropped.
//! - Outbound NAT: what a network's subnet sends out through any interface but its own
//!   gateway is masqueraded, as Docker's bridge does (not for `--internal` networks,
//!   which have no gateway).
//!
//! - Docker's bridges: uswitch networks are Docker networks, so what goes between a
//!   gateway port and one of Docker's own bridges (`docker0`, `br-*`) is dropped too,
//!   unless a published port's DNAT sent it.
//! - Beside a Docker that runs its own iptables rules (`FORWARD` policy `DROP`), accept
//!   rules in its `DOCKER-USER` chain ([`DockerUser`]).
//!
//! Through the `nft` tool rather than a netlink crate: the Rust nftables bindings
//! (nftnl, rustables) wrap libnftnl's object model for a handful of rules, and `nft -f`
//! replaces a whole table atomically.

use std::io::Write;
use std::process::{Command, Stdio};

use log::{info, warn};

pub mod docker_user;

use serde::{Deserialize, Serialize};

use docker_user::DockerUser;

/// One network's outbound NAT: its IPv4 subnet masqueraded when it leaves through any
/// interface but its gateway port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatRule {
    pub network: String,
    pub subnet: String,
    pub gateway_port: String,
}

/// A published port: what arrives for this host's `host_port` goes to `addr`:`port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub udp: bool,
    pub host_port: u16,
    pub addr: std::net::Ipv4Addr,
    pub port: u16,
}

/// Every gateway port's name begins so (Docker's and CNI's networks alike), and so the
/// rules below name them all with one glob.
pub const GATEWAY_PREFIX: &str = "ug";
/// `GATEWAY_PREFIX` as an nft glob.
const GATEWAY_GLOB: &str = "ug*";
/// The names of Docker's own bridges: `docker0`, `docker_gwbridge` and `br-<id>`.
const DOCKER_BRIDGE_GLOBS: [&str; 2] = ["docker*", "br-*"];

pub struct Firewall {
    table: String,
    docker_user: DockerUser,
    /// False for [`Firewall::inert`]: rules are rendered (and so checked) but never
    /// applied.
    live: bool,
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
            "nft refused uswitch's rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether nftables holds the table `inet table`.
fn table_exists(table: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", table])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The whole table for these masquerades. A subnet or port name is written only after
/// checking it is what it says, so nothing from Docker reaches nft as syntax.
fn render(table: &str, masquerades: &[NatRule], publish: &[Publish]) -> Result<String, String> {
    let mut dnat = String::new();
    for p in publish {
        // Typed fields: nothing here can be nft syntax.
        dnat.push_str(&format!(
            "\t\tfib daddr type local {} dport {} counter dnat ip to {}:{}\n",
            if p.udp { "udp" } else { "tcp" },
            p.host_port,
            p.addr,
            p.port
        ));
    }
    let mut nat = String::new();
    for m in masquerades {
        m.subnet
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(|_| ())
            .or_else(|| {
                let (a, p) = m.subnet.split_once('/')?;
                a.parse::<std::net::Ipv4Addr>().ok()?;
                p.parse::<u8>().ok().filter(|p| *p <= 32).map(|_| ())
            })
            .ok_or_else(|| format!("{} is not an IPv4 subnet", m.subnet))?;
        if !m.gateway_port.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("{} is not a port name", m.gateway_port));
        }
        nat.push_str(&format!(
            "\t\tip saddr {} oifname != \"{}\" counter masquerade comment \"uswitch network {}\"\n",
            m.subnet,
            m.gateway_port,
            m.network
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        ));
    }
    // `ct status & dnat == 0`: the flag is not set (`!= dnat` would compare the whole
    // status word).
    let mut bridges = String::new();
    for bridge in DOCKER_BRIDGE_GLOBS {
        for (from, to) in [(GATEWAY_GLOB, bridge), (bridge, GATEWAY_GLOB)] {
            bridges.push_str(&format!(
                "\t\tiifname \"{from}\" oifname \"{to}\" ct status & dnat == 0 counter drop \
                 comment \"uswitch: Docker's bridges and uswitch networks never meet\"\n"
            ));
        }
    }
    // Declaring then deleting makes the replacement work whether or not it exists.
    Ok(format!(
        "table inet {table}\ndelete table inet {table}\n\
         table inet {table} {{\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority -1; policy accept;\n\
         \t\tiifname \"{GATEWAY_GLOB}\" oifname \"{GATEWAY_GLOB}\" counter drop comment \"uswitch: one Docker network never reaches another\"\n\
         {bridges}\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         {nat}\t}}\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         {dnat}\t}}\n\
         \tchain output {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         {dnat}\t}}\n\
         }}\n"
    ))
}

impl Firewall {
    /// Installs the table for plugin `name`. One a run before left (handing over to
    /// this one, or crashed) stays as it is until the first [`Firewall::apply`], which
    /// the driver makes once it has restored its networks: a take-over never leaves
    /// published ports or outbound NAT without their rules.
    pub fn install(name: &str) -> Result<Firewall, String> {
        let table = format!(
            "uswitch_{}",
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        let docker_user = DockerUser::new(&table);
        let fw = Firewall {
            table,
            docker_user,
            live: true,
        };
        if table_exists(&fw.table) {
            info!(
                "nftables table inet {}: kept as it is until the Docker networks are restored",
                fw.table
            );
        } else {
            fw.apply(&[], &[])?;
        }
        info!(
            "nftables table inet {}: uswitch's networks are isolated from each other",
            fw.table
        );
        Ok(fw)
    }

    /// A firewall that renders its rules (refusing what would not render) but touches
    /// neither nftables, iptables nor sysctls: for driving the Docker driver with
    /// arbitrary requests (its fuzz target) on a machine that must stay as it is.
    pub fn inert(name: &str) -> Firewall {
        Firewall {
            table: format!("uswitch_{name}"),
            docker_user: DockerUser::new(name),
            live: false,
        }
    }

    /// Rewrites the table with these masquerades; IP forwarding is turned on for the
    /// first, as Docker does.
    pub fn apply(&self, masquerades: &[NatRule], publish: &[Publish]) -> Result<(), String> {
        if !self.live {
            return render(&self.table, masquerades, publish).map(|_| ());
        }
        if !masquerades.is_empty() || !publish.is_empty() {
            ensure_forwarding();
        }
        nft(&render(&self.table, masquerades, publish)?)?;
        self.docker_user.ensure();
        Ok(())
    }

    /// Puts back what another program took away: Docker, started after uswitch, makes
    /// its chains (and its `DROP` policy) then.
    pub fn keep_up(&self) {
        if self.live {
            self.docker_user.ensure();
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

/// Turns on IPv4 forwarding if it is off, and says so (Docker does the same).
fn ensure_forwarding() {
    let path = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return;
    }
    match std::fs::write(path, "1") {
        Ok(()) => info!("turned IPv4 forwarding on (net.ipv4.ip_forward=1) for outbound NAT"),
        Err(e) => warn!("could not turn IPv4 forwarding on: {e}; containers will not reach out"),
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        self.docker_user.remove();
        if let Err(e) = nft(&format!("delete table inet {}\n", self.table)) {
            warn!("removing table inet {}: {e}", self.table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_checked_words_reach_nft() {
        let m = |subnet: &str, port: &str| NatRule {
            network: "dk-1".into(),
            subnet: subnet.into(),
            gateway_port: port.into(),
        };
        let publish = Publish {
            udp: false,
            host_port: 18080,
            addr: std::net::Ipv4Addr::new(198, 18, 40, 2),
            port: 80,
        };
        let t = render("uswitch_x", &[m("198.18.40.0/24", "ug0123")], &[publish]).unwrap();
        assert!(t.contains("ip saddr 198.18.40.0/24 oifname != \"ug0123\" counter masquerade"));
        assert!(
            t.contains("fib daddr type local tcp dport 18080 counter dnat ip to 198.18.40.2:80")
        );
        assert!(t.contains("iifname \"br-*\" oifname \"ug*\" ct status & dnat == 0 counter drop"));
        assert!(render("t", &[m("198.18.40.0/24; flush ruleset", "ug0")], &[]).is_err());
        assert!(render("t", &[m("198.18.40.0/24", "ug\"; drop")], &[]).is_err());
        assert!(render("t", &[m("198.18.40.0/33", "ug0")], &[]).is_err());
    }
}
