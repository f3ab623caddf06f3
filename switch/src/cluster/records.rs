//! What the cluster keeps in etcd, under one prefix (`--cluster-prefix`, default
//! `/uswitch/v1`), and the view a node builds of it. Everything a node writes hangs on its
//! lease, so a node that dies vanishes from every other within the TTL:
//!
//! | key | value | lease |
//! |---|---|---|
//! | `P/nodes/NODE` | [`NodeRecord`]: VTEP address and port | the node's |
//! | `P/networks/NAME` | [`NetworkRecord`]: VNI, subnet, MTU | none (a cluster object) |
//! | `P/vnis/VNI` | the network's name (one network per VNI) | none |
//! | `P/members/NETWORK/NODE` | empty: NODE has a port on NETWORK (the flood list) | the node's |
//! | `P/macs/NETWORK/MAC/NODE` | [`MacRecord`]: a MAC behind NODE | the node's |
//! | `P/addresses/NETWORK/IP` | [`AddressRecord`]: who holds IP | the allocating node's |
//!
//! Members and MACs are the roles of EVPN's type-3 and type-2 routes. A MAC is keyed by
//! node too, so two nodes claiming one MAC both stand in the store; the most recent claim
//! (highest modification revision) wins, and the conflict is logged.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub vtep: IpAddr,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub name: String,
    pub vni: u32,
    pub subnet: Option<String>,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacRecord {
    #[serde(default)]
    pub ips: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRecord {
    pub node: String,
    pub owner: String,
}

/// The keys under a prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// What a key under the prefix is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Node(String),
    Network(String),
    Vni(u32),
    Member {
        network: String,
        node: String,
    },
    Mac {
        network: String,
        mac: String,
        node: String,
    },
    Address {
        network: String,
        ip: String,
    },
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    pub fn prefix(&self) -> String {
        format!("{}/", self.prefix)
    }

    pub fn node(&self, node: &str) -> String {
        format!("{}/nodes/{node}", self.prefix)
    }
    pub fn network(&self, name: &str) -> String {
        format!("{}/networks/{name}", self.prefix)
    }
    pub fn vni(&self, vni: u32) -> String {
        format!("{}/vnis/{vni}", self.prefix)
    }
    pub fn member(&self, network: &str, node: &str) -> String {
        format!("{}/members/{network}/{node}", self.prefix)
    }
    pub fn mac(&self, network: &str, mac: &str, node: &str) -> String {
        format!("{}/macs/{network}/{mac}/{node}", self.prefix)
    }
    pub fn addresses(&self, network: &str) -> String {
        format!("{}/addresses/{network}/", self.prefix)
    }
    pub fn address(&self, network: &str, ip: &str) -> String {
        format!("{}/addresses/{network}/{ip}", self.prefix)
    }

    /// What `key` is, or None for a key that is not one of ours (ignored).
    pub fn parse(&self, key: &str) -> Option<Key> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        let ok = |s: &&str| !s.is_empty();
        match parts.as_slice() {
            ["nodes", n] if ok(n) => Some(Key::Node(n.to_string())),
            ["networks", n] if ok(n) => Some(Key::Network(n.to_string())),
            ["vnis", v] => v.parse().ok().map(Key::Vni),
            ["members", net, node] if ok(net) && ok(node) => Some(Key::Member {
                network: net.to_string(),
                node: node.to_string(),
            }),
            ["macs", net, mac, node] if ok(net) && ok(mac) && ok(node) => Some(Key::Mac {
                network: net.to_string(),
                mac: mac.to_string(),
                node: node.to_string(),
            }),
            ["addresses", net, ip] if ok(net) && ok(ip) => Some(Key::Address {
                network: net.to_string(),
                ip: ip.to_string(),
            }),
            _ => None,
        }
    }
}

/// A node's picture of the cluster, kept from a listing and the watch after it.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub nodes: BTreeMap<String, NodeRecord>,
    pub networks: BTreeMap<String, NetworkRecord>,
    /// network -> nodes with a port on it.
    pub members: BTreeMap<String, BTreeSet<String>>,
    /// (network, mac) -> node -> (record, modification revision).
    pub macs: BTreeMap<(String, String), BTreeMap<String, (MacRecord, i64)>>,
    pub addresses: usize,
    /// The store's revision this view is of.
    pub revision: i64,
}

impl View {
    /// Applies a put (`Some(value)`) or a delete (`None`) of `key`. A value that does
    /// not decode is ignored (someone else's writing, or a newer release's), not fatal.
    pub fn apply(&mut self, keys: &Keys, key: &str, value: Option<&[u8]>, mod_revision: i64) {
        let Some(k) = keys.parse(key) else {
            return;
        };
        match (k, value) {
            (Key::Node(n), Some(v)) => {
                if let Ok(r) = serde_json::from_slice(v) {
                    self.nodes.insert(n, r);
                }
            }
            (Key::Node(n), None) => {
                self.nodes.remove(&n);
            }
            (Key::Network(n), Some(v)) => {
                if let Ok(r) = serde_json::from_slice(v) {
                    self.networks.insert(n, r);
                }
            }
            (Key::Network(n), None) => {
                self.networks.remove(&n);
            }
            (Key::Member { network, node }, Some(_)) => {
                self.members.entry(network).or_default().insert(node);
            }
            (Key::Member { network, node }, None) => {
                if let Some(m) = self.members.get_mut(&network) {
                    m.remove(&node);
                }
            }
            (Key::Mac { network, mac, node }, Some(v)) => {
                let r = serde_json::from_slice(v).unwrap_or_default();
                self.macs
                    .entry((network, mac))
                    .or_default()
                    .insert(node, (r, mod_revision));
            }
            (Key::Mac { network, mac, node }, None) => {
                let k = (network, mac);
                if let Some(m) = self.macs.get_mut(&k) {
                    m.remove(&node);
                    if m.is_empty() {
                        self.macs.remove(&k);
                    }
                }
            }
            (Key::Address { .. }, Some(_)) => self.addresses += 1,
            (Key::Address { .. }, None) => self.addresses = self.addresses.saturating_sub(1),
            (Key::Vni(_), _) => {}
        }
    }

    /// Who holds `mac` on `network`: the most recent claim; and whether it is contested.
    pub fn mac_owner(&self, network: &str, mac: &str) -> Option<(&str, bool)> {
        let claims = self.macs.get(&(network.to_string(), mac.to_string()))?;
        let (node, _) = claims.iter().max_by_key(|(_, (_, rev))| *rev)?;
        Some((node.as_str(), claims.len() > 1))
    }

    /// The addresses other nodes advertise on `network` with the MACs that hold them:
    /// what ARP suppression answers from. A contested MAC counts for its winner only;
    /// an address that does not parse is skipped.
    pub fn remote_neighbors(&self, network: &str, me: &str) -> Vec<(IpAddr, String)> {
        let mut out = Vec::new();
        let from = (network.to_string(), String::new());
        for ((net, mac), claims) in self.macs.range(from..) {
            if net != network {
                break;
            }
            let Some((node, (record, _))) = claims.iter().max_by_key(|(_, (_, rev))| *rev) else {
                continue;
            };
            if node == me {
                continue;
            }
            out.extend(
                record
                    .ips
                    .iter()
                    .filter_map(|ip| ip.parse().ok())
                    .map(|ip| (ip, mac.clone())),
            );
        }
        out.sort();
        out
    }

    /// The records `node` has in the store, by key, with their values: what a node
    /// restarted under the same name takes back (and deletes what no longer holds).
    pub fn records_of(&self, keys: &Keys, node: &str) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for (network, members) in &self.members {
            if members.contains(node) {
                out.insert(keys.member(network, node), Vec::new());
            }
        }
        for ((network, mac), claims) in &self.macs {
            if let Some((record, _)) = claims.get(node) {
                let value = serde_json::to_vec(record).unwrap_or_default();
                out.insert(keys.mac(network, mac, node), value);
            }
        }
        out
    }

    /// The VTEPs of the nodes other than `me` that have a port on `network`.
    pub fn flood_list(&self, network: &str, me: &str) -> BTreeSet<IpAddr> {
        self.members
            .get(network)
            .into_iter()
            .flatten()
            .filter(|n| n.as_str() != me)
            .filter_map(|n| self.nodes.get(n).map(|r| r.vtep))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_strangers_are_ignored() {
        let k = Keys::new("/uswitch/v1/");
        assert_eq!(
            k.parse(&k.mac("blue", "02:00:00:00:00:01", "h1")),
            Some(Key::Mac {
                network: "blue".into(),
                mac: "02:00:00:00:00:01".into(),
                node: "h1".into()
            })
        );
        assert_eq!(k.parse(&k.vni(60)), Some(Key::Vni(60)));
        assert_eq!(k.parse("/uswitch/v1/nodes/"), None);
        assert_eq!(k.parse("/other/nodes/h1"), None);
        assert_eq!(k.parse("/uswitch/v1/macs/blue/x"), None);
    }

    #[test]
    fn the_view_follows_puts_and_deletes_and_the_latest_claim_wins() {
        let k = Keys::new("/p");
        let mut v = View::default();
        let node = |n: &str, a: &str| {
            serde_json::to_vec(&NodeRecord {
                name: n.into(),
                vtep: a.parse().unwrap(),
                port: 4789,
            })
            .unwrap()
        };
        v.apply(&k, &k.node("h1"), Some(&node("h1", "198.18.100.1")), 1);
        v.apply(&k, &k.node("h2"), Some(&node("h2", "198.18.100.2")), 2);
        v.apply(&k, &k.member("blue", "h1"), Some(b""), 3);
        v.apply(&k, &k.member("blue", "h2"), Some(b""), 4);
        let flood: Vec<String> = v
            .flood_list("blue", "h1")
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(flood, ["198.18.100.2"]);
        v.apply(&k, &k.mac("blue", "m", "h1"), Some(b"{}"), 5);
        v.apply(&k, &k.mac("blue", "m", "h2"), Some(b"{}"), 6);
        assert_eq!(v.mac_owner("blue", "m"), Some(("h2", true)));
        v.apply(&k, &k.mac("blue", "m", "h2"), None, 7);
        assert_eq!(v.mac_owner("blue", "m"), Some(("h1", false)));
        let with_ips = br#"{"ips":["198.18.60.2","2001:2::2","junk"]}"#;
        v.apply(&k, &k.mac("blue", "m", "h2"), Some(with_ips), 8);
        v.apply(&k, &k.mac("green", "g", "h2"), Some(with_ips), 8);
        let ips: Vec<String> = v
            .remote_neighbors("blue", "h1")
            .iter()
            .map(|(ip, mac)| format!("{ip}={mac}"))
            .collect();
        assert_eq!(ips, ["198.18.60.2=m", "2001:2::2=m"]);
        assert!(v.remote_neighbors("blue", "h2").is_empty());
        v.apply(&k, &k.node("h2"), None, 8);
        v.apply(&k, &k.node("h1"), Some(b"not json"), 9);
        assert!(v.flood_list("blue", "h1").is_empty());
    }
}
