//! `uswitch show topology`: what is connected to what, as Graphviz DOT (networks as
//! boxes; ports, the containers behind them, host ports, uplinks and VXLAN remotes with
//! their cluster nodes around them; rates on the edges), as SVG through Graphviz's `dot`,
//! or as JSON.
//!
//! The DOT is written here rather than through a crate: it needs one quoting rule (a
//! quoted ID with `\` and `"` escaped), and the Graphviz crates bring a parser and an AST
//! for what is a dozen lines of output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use serde::Serialize;

use super::rates::{si, PortRate, Rates};
use crate::control::protocol::{vtep_addr, Observation};

/// The topology as `--format json` prints it, and as the DOT is drawn from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Topology {
    pub pid: u32,
    pub networks: Vec<NetworkNode>,
    pub ports: Vec<PortNode>,
    pub remotes: Vec<RemoteNode>,
    /// The cluster's nodes (name -> VTEP), when this switch is one.
    pub nodes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkNode {
    pub name: String,
    pub subnet: Option<String>,
    pub fdb_entries: usize,
    pub vni: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PortNode {
    pub name: String,
    pub network: String,
    /// "tap", "uplink".
    pub kind: String,
    pub state: String,
    pub owner: Option<String>,
    /// Per second, from the port's side: rx is what it sends into the switch.
    pub rate: Option<PortRate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemoteNode {
    pub network: String,
    pub vni: u32,
    pub remote: String,
    /// The cluster node whose VTEP this is.
    pub node: Option<String>,
    pub port: Option<String>,
    pub rate: Option<PortRate>,
}

impl Topology {
    /// The topology of `now`, with rates since `before` when there is one.
    pub fn of(now: &Observation, before: Option<&Observation>) -> Topology {
        let rates = before.map(|b| Rates::between(b, now)).unwrap_or_default();
        let rate = |name: &str| rates.ports.get(name).copied();
        let nodes = now
            .cluster
            .as_ref()
            .map(|c| c.nodes.clone())
            .unwrap_or_default();
        let node_of = |remote: &str| {
            now.cluster
                .as_ref()
                .and_then(|c| c.node_of(remote))
                .map(String::from)
        };
        let mut vnis = BTreeMap::new();
        let mut remotes = Vec::new();
        for ep in &now.vxlan {
            for seg in &ep.segments {
                vnis.insert(seg.network.clone(), seg.vni);
                for p in &seg.peers {
                    remotes.push(RemoteNode {
                        network: seg.network.clone(),
                        vni: seg.vni,
                        remote: p.remote.clone(),
                        node: node_of(&p.remote),
                        port: p.port.clone(),
                        rate: p.port.as_deref().and_then(rate),
                    });
                }
            }
        }
        Topology {
            pid: now.pid,
            networks: now
                .networks
                .iter()
                .map(|n| NetworkNode {
                    name: n.name.clone(),
                    subnet: n.subnet.clone(),
                    fdb_entries: n.fdb_entries,
                    vni: vnis.get(&n.name).copied(),
                })
                .collect(),
            // VXLAN remotes are ports too; they are drawn as remotes.
            ports: now
                .ports
                .iter()
                .filter(|p| p.kind != "vxlan")
                .map(|p| PortNode {
                    name: p.name.clone(),
                    network: p.network.clone(),
                    kind: p.kind.clone(),
                    state: p.state.clone(),
                    owner: p.owner.clone(),
                    rate: rate(&p.name),
                })
                .collect(),
            remotes,
            nodes,
        }
    }

    /// Graphviz DOT: an undirected graph, left to right.
    pub fn to_dot(&self) -> String {
        let mut d = String::new();
        // A container with two ports, or a VTEP carrying two networks, is one node:
        // declared once, however many edges reach it.
        let mut declared = std::collections::BTreeSet::new();
        let _ = writeln!(d, "graph uswitch {{");
        let _ = writeln!(
            d,
            "  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=11, label={}];",
            quote(&format!("uswitch (pid {})", self.pid))
        );
        let _ = writeln!(d, "  node [fontname=\"Helvetica\", fontsize=10];");
        let _ = writeln!(d, "  edge [fontname=\"Helvetica\", fontsize=9];");
        for n in &self.networks {
            let mut label = format!("network {}", n.name);
            if let Some(s) = &n.subnet {
                let _ = write!(label, "\n{s}");
            }
            if let Some(v) = n.vni {
                let _ = write!(label, "\nVNI {v}");
            }
            let _ = write!(label, "\nFDB {}", n.fdb_entries);
            let _ = writeln!(
                d,
                "  {} [shape=box, style=\"rounded,filled\", fillcolor=\"#dbe9f6\", label={}];",
                quote(&format!("net:{}", n.name)),
                quote(&label)
            );
        }
        for p in &self.ports {
            let id = quote(&format!("port:{}", p.name));
            let style = if p.state == "up" { "solid" } else { "dashed" };
            let _ = writeln!(
                d,
                "  {id} [shape=ellipse, style={style}, label={}];",
                quote(&format!("{}\n{} {}", p.name, p.kind, p.state))
            );
            let _ = writeln!(
                d,
                "  {} -- {id} [label={}];",
                quote(&format!("net:{}", p.network)),
                quote(&rate_label(p.rate))
            );
            // What is behind the port: a container, the host, the wire of an uplink.
            let behind = match (p.kind.as_str(), p.owner.as_deref()) {
                ("uplink", _) => Some((format!("wire:{}", p.name), "the wire".to_string(), "cds")),
                (_, Some("host")) => Some(("host".to_string(), "this host".to_string(), "house")),
                (_, Some(o)) => Some((format!("owner:{o}"), o.to_string(), "component")),
                (_, None) => None,
            };
            if let Some((bid, label, shape)) = behind {
                if declared.insert(bid.clone()) {
                    let _ = writeln!(
                        d,
                        "  {} [shape={shape}, label={}];",
                        quote(&bid),
                        quote(&label)
                    );
                }
                let _ = writeln!(d, "  {id} -- {};", quote(&bid));
            }
        }
        for r in &self.remotes {
            let id = quote(&format!("vtep:{}", r.remote));
            let label = match &r.node {
                Some(n) => format!("node {n}\nVTEP {}", r.remote),
                None => format!("VTEP {}", r.remote),
            };
            if declared.insert(format!("vtep:{}", r.remote)) {
                let _ = writeln!(
                    d,
                    "  {id} [shape=octagon, style=filled, fillcolor=\"#fde9c9\", label={}];",
                    quote(&label)
                );
            }
            let _ = writeln!(
                d,
                "  {} -- {id} [style=bold, label={}];",
                quote(&format!("net:{}", r.network)),
                quote(&format!("VNI {}\n{}", r.vni, rate_label(r.rate)))
            );
        }
        // Cluster nodes with no network shared with this one yet.
        for (name, vtep) in &self.nodes {
            let addr = vtep_addr(vtep);
            if self.remotes.iter().any(|r| r.remote == addr) {
                continue;
            }
            let _ = writeln!(
                d,
                "  {} [shape=octagon, style=dashed, label={}];",
                quote(&format!("vtep:{addr}")),
                quote(&format!("node {name}\nVTEP {addr}"))
            );
        }
        let _ = writeln!(d, "}}");
        d
    }
}

fn rate_label(rate: Option<PortRate>) -> String {
    match rate {
        Some(r) => format!(
            "in {} f/s {}b/s\nout {} f/s {}b/s",
            si(r.rx_fps),
            si(r.rx_bps),
            si(r.tx_fps),
            si(r.tx_bps)
        ),
        None => String::new(),
    }
}

/// A DOT quoted ID: `\` and `"` escaped, a line break as DOT's `\n`.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '\\' => q.push_str("\\\\"),
            '"' => q.push_str("\\\""),
            '\n' => q.push_str("\\n"),
            c if c.is_control() => {}
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// SVG from DOT through Graphviz's `dot`.
pub fn render_svg(dot: &str) -> Result<String, String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "--format svg runs Graphviz's dot, which could not start ({e}): install \
                 graphviz, or take --format dot and render it elsewhere"
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot.as_bytes())
            .map_err(|e| format!("writing to dot: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for dot: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "dot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| "dot wrote something that is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_ids_are_quoted_whatever_the_names_hold() {
        assert_eq!(quote("a\"b\\c\nd\u{7}"), "\"a\\\"b\\\\c\\nd\"");
        let t = Topology {
            pid: 7,
            networks: vec![NetworkNode {
                name: "blue \"net\"".into(),
                subnet: Some("198.19.1.0/24".into()),
                fdb_entries: 2,
                vni: Some(42),
            }],
            ports: ["tap0", "tap1"]
                .map(|name| PortNode {
                    name: name.into(),
                    network: "blue \"net\"".into(),
                    kind: "tap".into(),
                    state: "up".into(),
                    owner: Some("web".into()),
                    rate: None,
                })
                .into(),
            remotes: vec![RemoteNode {
                network: "blue \"net\"".into(),
                vni: 42,
                remote: "198.18.0.2".into(),
                node: Some("b".into()),
                port: None,
                rate: None,
            }],
            nodes: BTreeMap::from([("b".into(), "198.18.0.2:4789".into())]),
        };
        let dot = t.to_dot();
        assert!(
            dot.contains("\"net:blue \\\"net\\\"\" -- \"port:tap0\""),
            "{dot}"
        );
        assert!(dot.contains("\"port:tap0\" -- \"owner:web\""), "{dot}");
        assert!(dot.contains("\"port:tap1\" -- \"owner:web\""), "{dot}");
        // The container behind both ports is declared once.
        assert_eq!(dot.matches("\"owner:web\" [").count(), 1, "{dot}");
        assert!(dot.contains("\"vtep:198.18.0.2\""), "{dot}");
        // Node b is drawn once, as the remote it is.
        assert_eq!(dot.matches("node b").count(), 1, "{dot}");
    }

    #[test]
    fn remotes_are_named_by_their_node_ipv4_or_ipv6() {
        let c = crate::control::protocol::ClusterStatus {
            nodes: BTreeMap::from([
                ("a".into(), "198.18.0.1:4789".into()),
                ("b".into(), "2001:2::2:4789".into()),
            ]),
            ..Default::default()
        };
        assert_eq!(c.node_of("198.18.0.1"), Some("a"));
        assert_eq!(c.node_of("2001:2::2"), Some("b"));
        assert_eq!(c.node_of("2001:2::"), None);
    }
}
