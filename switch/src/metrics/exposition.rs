//! One observation of the switch as Prometheus metrics: the families, their help, their
//! labels. Pure: the server hands it an `Observation` and gets the text exposition back.
//!
//! A fresh registry per scrape, filled from the observation, is what makes a port that
//! went away stop being exported: nothing outlives the moment it describes. The values
//! themselves are the forwarder's counters, which only grow while a port exists.

use prometheus::core::Collector;
use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::control::protocol::{Counters, NetworkRow, Observation, PortRow};

/// The labels of a family without any.
const NONE: [&str; 0] = [];

/// The content type of the text exposition format this writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The families of one scrape, registered as they are made.
struct Families {
    registry: Registry,
}

impl Families {
    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        // The names and labels below are constants of this file; a mistake in one is
        // caught by the unit test that renders every family.
        let vec = IntCounterVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| panic!("metric {name}: {e}"));
        self.register(vec.clone());
        vec
    }

    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let vec = IntGaugeVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| panic!("metric {name}: {e}"));
        self.register(vec.clone());
        vec
    }

    fn register(&self, c: impl Collector + 'static) {
        if let Err(e) = self.registry.register(Box::new(c)) {
            panic!("registering a metric family twice: {e}");
        }
    }
}

/// The per-port families: the same counters for a port and for a VXLAN remote.
struct TrafficFamilies {
    rx_frames: IntCounterVec,
    rx_bytes: IntCounterVec,
    tx_frames: IntCounterVec,
    tx_bytes: IntCounterVec,
    drops: IntCounterVec,
}

impl TrafficFamilies {
    fn new(f: &Families, prefix: &str, what: &str, labels: &[&str]) -> TrafficFamilies {
        let with_reason: Vec<&str> = labels.iter().copied().chain(["reason"]).collect();
        TrafficFamilies {
            rx_frames: f.counters(
                &format!("{prefix}_rx_frames_total"),
                &format!("Frames received from {what}."),
                labels,
            ),
            rx_bytes: f.counters(
                &format!("{prefix}_rx_bytes_total"),
                &format!("Bytes received from {what}."),
                labels,
            ),
            tx_frames: f.counters(
                &format!("{prefix}_tx_frames_total"),
                &format!("Frames sent to {what}."),
                labels,
            ),
            tx_bytes: f.counters(
                &format!("{prefix}_tx_bytes_total"),
                &format!("Bytes sent to {what}."),
                labels,
            ),
            drops: f.counters(
                &format!("{prefix}_drops_total"),
                &format!("Frames dropped on {what}, by reason (uswitch show stats names them)."),
                &with_reason,
            ),
        }
    }

    fn add(&self, labels: &[&str], c: &Counters) {
        self.rx_frames.with_label_values(labels).inc_by(c.rx_frames);
        self.rx_bytes.with_label_values(labels).inc_by(c.rx_bytes);
        self.tx_frames.with_label_values(labels).inc_by(c.tx_frames);
        self.tx_bytes.with_label_values(labels).inc_by(c.tx_bytes);
        for (reason, &n) in &c.drops {
            let mut l: Vec<&str> = labels.to_vec();
            l.push(reason);
            self.drops.with_label_values(&l).inc_by(n);
        }
    }
}

/// Counters of the metrics server itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerCounters {
    /// Connections closed at once because too many were open.
    pub refused: u64,
    /// Requests answered with an error (a bad path, method or header).
    pub bad_requests: u64,
}

/// The text exposition of `obs`, the process's own figures (RSS, fds: read here, on the
/// metrics thread) and the server's counters.
pub fn render(obs: &Observation, server: ServerCounters, now_unix_ms: u64) -> String {
    let f = Families {
        registry: Registry::new(),
    };
    f.register(prometheus::process_collector::ProcessCollector::for_self());
    let info = f.gauges(
        "uswitch_info",
        "The running switch: its version (always 1).",
        &["version"],
    );
    info.with_label_values(&[obs.version.as_str()]).set(1);

    let port_labels = ["port", "network"];
    let ports = TrafficFamilies::new(&f, "uswitch_port", "the port", &port_labels);
    let port_info = f.gauges(
        "uswitch_port_info",
        "A port: its kind (tap, uplink, vxlan), state (up, down, blocked) and who is behind it (always 1).",
        &["port", "network", "kind", "state", "owner"],
    );
    // The port's other counters: one family each, filled the same way.
    type PortValue = fn(&PortRow) -> u64;
    let port_counters: [(&str, &str, PortValue); 7] = [
        (
            "uswitch_port_forwarded_frames_total",
            "Frames from the port sent to one known egress.",
            |p| p.counters.forwarded,
        ),
        (
            "uswitch_port_flooded_frames_total",
            "Frames from the port flooded to the network (broadcast, multicast, unknown unicast).",
            |p| p.counters.floods,
        ),
        (
            "uswitch_port_answered_frames_total",
            "ARP requests and neighbour solicitations from the port that the switch answered.",
            |p| p.counters.answered,
        ),
        (
            "uswitch_port_mac_moves_total",
            "MACs that moved to the port from another.",
            |p| p.counters.mac_moves,
        ),
        (
            "uswitch_port_mac_moves_held_total",
            "MAC moves to the port held back by the hold-down.",
            |p| p.counters.mac_moves_held,
        ),
        (
            "uswitch_port_loop_suspicions_total",
            "Times the port looked like part of a loop (a MAC flapping between it and another).",
            |p| p.counters.loop_suspicions,
        ),
        (
            "uswitch_port_storm_rests_total",
            "Times the port was taken out of the poll for flooding far beyond its rate.",
            |p| p.storm_rests,
        ),
    ];
    let port_counters: Vec<_> = port_counters
        .iter()
        .map(|&(name, help, value)| (f.counters(name, help, &port_labels), value))
        .collect();
    for p in &obs.ports {
        let l = [p.name.as_str(), p.network.as_str()];
        ports.add(&l, &p.counters);
        let owner = p.owner.as_deref().unwrap_or("");
        port_info
            .with_label_values(&[&p.name, &p.network, &p.kind, &p.state, owner])
            .set(1);
        for (family, value) in &port_counters {
            family.with_label_values(&l).inc_by(value(p));
        }
    }

    // Per network: gauges of what is, counters of what happened.
    type NetworkValue = fn(&NetworkRow) -> u64;
    let net = ["network"];
    let net_gauges: [(&str, &str, NetworkValue); 3] = [
        (
            "uswitch_network_fdb_entries",
            "Entries in the network's forwarding table (static ones included).",
            |n| n.fdb_entries as u64,
        ),
        (
            "uswitch_network_fdb_static_entries",
            "Static entries in the network's forwarding table.",
            |n| n.fdb_static as u64,
        ),
        (
            "uswitch_network_ports",
            "Ports attached to the network.",
            |n| n.ports.len() as u64,
        ),
    ];
    let net_counters: [(&str, &str, NetworkValue); 2] = [
        (
            "uswitch_network_fdb_evictions_total",
            "Entries evicted because the table was full (--fdb-max).",
            |n| n.fdb_evictions,
        ),
        (
            "uswitch_network_fdb_expired_total",
            "Entries that aged out (--fdb-aging).",
            |n| n.fdb_expired,
        ),
    ];
    let net_gauges: Vec<_> = net_gauges
        .iter()
        .map(|&(name, help, value)| (f.gauges(name, help, &net), value))
        .collect();
    let net_counters: Vec<_> = net_counters
        .iter()
        .map(|&(name, help, value)| (f.counters(name, help, &net), value))
        .collect();
    for n in &obs.networks {
        let l = [n.name.as_str()];
        for (family, value) in &net_gauges {
            family.with_label_values(&l).set(gauge(value(n)));
        }
        for (family, value) in &net_counters {
            family.with_label_values(&l).inc_by(value(n));
        }
    }

    let remotes = TrafficFamilies::new(
        &f,
        "uswitch_vxlan_remote",
        "the VXLAN remote",
        &["endpoint", "vni", "network", "remote"],
    );
    let endpoints = TrafficFamilies::new(
        &f,
        "uswitch_vxlan_endpoint",
        "the VXLAN endpoint (datagrams; drops refused before reaching a remote)",
        &["endpoint"],
    );
    for ep in &obs.vxlan {
        let name = format!("{}:{}", ep.local, ep.port);
        endpoints.add(&[&name], &ep.counters);
        for seg in &ep.segments {
            let vni = seg.vni.to_string();
            for peer in &seg.peers {
                let l = [name.as_str(), &vni, &seg.network, &peer.remote];
                remotes.add(&l, &peer.counters.clone().unwrap_or_default());
            }
        }
    }
    let unattached = f.counters(
        "uswitch_unattached_drops_total",
        "Frames read from a port in the burst it was detached in.",
        &NONE,
    );
    unattached
        .with_label_values(&NONE)
        .inc_by(obs.unattached_drops);

    if let Some(c) = &obs.cluster {
        let g = |name: &str, help: &str, v: i64| {
            f.gauges(name, help, &NONE).with_label_values(&NONE).set(v);
        };
        g(
            "uswitch_cluster_etcd_up",
            "Whether this node's session with etcd is up (1) or not (0).",
            i64::from(c.etcd == "connected"),
        );
        g(
            "uswitch_cluster_nodes",
            "Nodes of the cluster, this one included.",
            gauge(c.nodes.len() as u64),
        );
        g(
            "uswitch_cluster_networks",
            "Cluster networks this node knows.",
            gauge(c.networks.len() as u64),
        );
        g(
            "uswitch_cluster_revision",
            "The etcd revision the switch was last brought in line with.",
            c.revision,
        );
        g(
            "uswitch_cluster_revision_lag",
            "How many revisions etcd is ahead of what the switch was brought in line with.",
            (c.etcd_revision - c.revision).max(0),
        );
        g(
            "uswitch_cluster_advertised_macs",
            "MACs this node advertises.",
            gauge(c.advertised_macs as u64),
        );
        g(
            "uswitch_cluster_remote_macs",
            "MACs of other nodes installed in this switch.",
            gauge(c.remote_macs as u64),
        );
        if let Some(at) = c.lease_answered_ms {
            g(
                "uswitch_cluster_lease_age_seconds",
                "Seconds since etcd last answered this node's lease keep-alive.",
                gauge(now_unix_ms.saturating_sub(at) / 1000),
            );
        }
    }

    let own = f.counters(
        "uswitch_metrics_refused_connections_total",
        "Connections to this endpoint closed at once because too many were open.",
        &NONE,
    );
    own.with_label_values(&NONE).inc_by(server.refused);
    let bad = f.counters(
        "uswitch_metrics_bad_requests_total",
        "Requests to this endpoint answered with an error.",
        &NONE,
    );
    bad.with_label_values(&NONE).inc_by(server.bad_requests);

    let mut out = Vec::new();
    // Encoding into a Vec fails only on a family the registry would not have taken.
    if let Err(e) = TextEncoder::new().encode(&f.registry.gather(), &mut out) {
        return format!("# uswitch could not encode its metrics: {e}\n");
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::*;
    use std::collections::BTreeMap;

    fn counters(rx: u64) -> Counters {
        Counters {
            rx_frames: rx,
            rx_bytes: rx * 100,
            drops: [("runt".to_string(), 2), ("egress_full".to_string(), 0)].into(),
            ..Counters::default()
        }
    }

    fn port(name: &str, owner: Option<&str>) -> PortRow {
        PortRow {
            name: name.into(),
            network: "blue".into(),
            kind: "tap".into(),
            state: "up".into(),
            bum_rate: 0,
            storm_rests: 1,
            worker: 0,
            mtu: 1500,
            offloads: vec![],
            created: true,
            capture: None,
            counters: counters(7),
            owner: owner.map(String::from),
        }
    }

    #[test]
    fn every_family_renders_with_help_type_and_labels() {
        let obs = Observation {
            pid: 1,
            version: "0.1.0".into(),
            now_ms: 0,
            ports: vec![port("tap0", Some("web")), port("tap\"1", None)],
            networks: vec![NetworkRow {
                name: "blue".into(),
                subnet: None,
                ports: vec!["tap0".into()],
                fdb_entries: 3,
                fdb_static: 1,
                fdb_evictions: 4,
                fdb_expired: 5,
            }],
            vxlan: vec![EndpointRow {
                local: "198.18.0.1".into(),
                port: 4789,
                underlay: "eth0".into(),
                underlay_mtu: 1500,
                source_ports: vec![],
                udp_gro: true,
                worker: 0,
                counters: counters(9),
                segments: vec![VniRow {
                    vni: 42,
                    network: "blue".into(),
                    mtu: 1450,
                    peers: vec![PeerRow {
                        remote: "198.18.0.2".into(),
                        port: Some("vx42-1".into()),
                        counters: Some(counters(11)),
                    }],
                }],
            }],
            cluster: Some(ClusterStatus {
                etcd: "connected".into(),
                nodes: BTreeMap::from([("a".into(), "x".into())]),
                revision: 10,
                etcd_revision: 13,
                lease_answered_ms: Some(1_000),
                ..ClusterStatus::default()
            }),
            unattached_drops: 0,
        };
        let text = render(&obs, ServerCounters::default(), 4_000);
        for needle in [
            "# HELP uswitch_port_rx_frames_total Frames received from the port.",
            "# TYPE uswitch_port_rx_frames_total counter",
            "uswitch_port_rx_frames_total{network=\"blue\",port=\"tap0\"} 7",
            // A quote in a label value is escaped, not a broken line.
            "port=\"tap\\\"1\"",
            "uswitch_port_drops_total{network=\"blue\",port=\"tap0\",reason=\"runt\"} 2",
            "uswitch_port_info{kind=\"tap\",network=\"blue\",owner=\"web\",port=\"tap0\",state=\"up\"} 1",
            "uswitch_port_storm_rests_total{network=\"blue\",port=\"tap0\"} 1",
            "# TYPE uswitch_network_fdb_entries gauge",
            "uswitch_network_fdb_entries{network=\"blue\"} 3",
            "uswitch_network_fdb_evictions_total{network=\"blue\"} 4",
            "uswitch_vxlan_remote_rx_frames_total{endpoint=\"198.18.0.1:4789\",network=\"blue\",remote=\"198.18.0.2\",vni=\"42\"} 11",
            "uswitch_vxlan_endpoint_rx_frames_total{endpoint=\"198.18.0.1:4789\"} 9",
            "uswitch_cluster_nodes 1",
            "uswitch_cluster_revision_lag 3",
            "uswitch_cluster_lease_age_seconds 3",
            "uswitch_cluster_etcd_up 1",
            "process_resident_memory_bytes",
            "process_open_fds",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
