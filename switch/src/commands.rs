//! What the switch does for each control request.

use std::collections::BTreeMap;
use std::path::Path;

use forwarder::{DropReason, PortCounters, PortId};
use packets::MacAddr;
use serde_json::{json, Value};

use crate::capture::{Capture, DEFAULT_MAX_BYTES};
use crate::cli::{validate_network_name, NetworkSpec, PortSpec};
use crate::control::{OverlayRequest, Request, Response};
use crate::event_loop::Switch;
use crate::launcher::{validate_container_name, Container, Containers, Interface};
use crate::tap::interface_exists;
use crate::vxlan::VxlanSpec;

/// What the shell knows of networks beyond the forwarder: the subnet the launcher hands
/// addresses from.
#[derive(Debug, Default)]
pub struct NetworkBook {
    pub subnets: BTreeMap<String, String>,
    /// The MTU the TAPs of a network get when attached.
    pub mtus: BTreeMap<String, u32>,
    pub containers: Containers,
}

/// Counters as JSON: every field, and drops by reason.
pub fn counters_json(c: &PortCounters) -> Value {
    let drops: serde_json::Map<String, Value> = DropReason::ALL
        .iter()
        .map(|r| (r.name().to_string(), json!(c.drops(*r))))
        .collect();
    json!({
        "rx_frames": c.rx_frames,
        "rx_bytes": c.rx_bytes,
        "tx_frames": c.tx_frames,
        "tx_bytes": c.tx_bytes,
        "floods": c.floods,
        "mac_moves": c.mac_moves,
        "mac_moves_held": c.mac_moves_held,
        "loop_suspicions": c.loop_suspicions,
        "drops": drops,
    })
}

impl Switch {
    fn network_name(&self, id: forwarder::NetworkId) -> String {
        self.fwd
            .network(id)
            .map_or_else(|| "?".into(), |n| n.name().to_string())
    }

    fn find_port(&self, name: &str) -> Result<PortId, String> {
        self.fwd
            .port_named(name)
            .ok_or_else(|| format!("no port named {name} (uswitch show ports lists them)"))
    }

    fn find_network(&self, name: &str) -> Result<forwarder::NetworkId, String> {
        self.fwd
            .network_id(name)
            .ok_or_else(|| format!("no network named {name} (uswitch network ls lists them)"))
    }

    /// Carries out one control request.
    pub fn execute(&mut self, req: Request) -> Response {
        match self.try_execute(req) {
            Ok(v) => Response::ok(v),
            Err(e) => Response::err(e),
        }
    }

    fn try_execute(&mut self, req: Request) -> Result<Value, String> {
        match req {
            Request::ShowPorts => Ok(self.show_ports()),
            Request::ShowFdb { network } => self.show_fdb(network.as_deref()),
            Request::ShowStats => Ok(self.show_stats()),
            Request::NetworkLs => Ok(self.network_ls()),
            Request::NetworkCreate {
                name,
                subnet,
                overlay,
            } => self.network_create(&name, subnet, overlay),
            Request::ShowVxlan => Ok(self.show_vxlan()),
            Request::FdbFlush { network } => {
                let id = network
                    .as_deref()
                    .map(|n| self.find_network(n))
                    .transpose()?;
                let before: usize = self.fwd.networks().map(|(_, n)| n.fdb().len()).sum();
                self.fwd.flush_fdb(id);
                let after: usize = self.fwd.networks().map(|(_, n)| n.fdb().len()).sum();
                Ok(json!({ "flushed": before - after }))
            }
            Request::FdbAdd { mac, port } => {
                let mac: MacAddr = mac.parse().map_err(|e| format!("{e}"))?;
                if !mac.is_valid_source() {
                    return Err(format!(
                        "{mac} is a group or zero address; a static entry needs a unicast MAC"
                    ));
                }
                let id = self.find_port(&port)?;
                let net = self.fwd.add_static(mac, id).ok_or("the port went away")?;
                Ok(
                    json!({ "network": self.network_name(net), "mac": mac.to_string(), "port": port }),
                )
            }
            Request::FdbDel { mac, network } => {
                let mac: MacAddr = mac.parse().map_err(|e| format!("{e}"))?;
                let id = network
                    .as_deref()
                    .map(|n| self.find_network(n))
                    .transpose()?;
                match self.fwd.remove_fdb_entry(id, mac) {
                    0 => Err(format!("no forwarding entry for {mac}")),
                    n => Ok(json!({ "mac": mac.to_string(), "removed": n })),
                }
            }
            Request::PortAdd {
                name,
                network,
                offload,
                bum_rate,
            } => {
                let spec: PortSpec = format!("{name}@{network}").parse()?;
                let id = self
                    .add_tap_port(&spec.name, &spec.network, offload)
                    .map_err(|e| e.to_string())?;
                if let Some(rate) = bum_rate {
                    self.set_bum_rate(id, rate);
                }
                let created = self
                    .ports
                    .get(id.0 as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|p| p.dev.created());
                let mtu = self.fwd.port(id).map_or(0, |p| p.mtu());
                Ok(
                    json!({ "name": spec.name, "network": spec.network, "created": created, "mtu": mtu }),
                )
            }
            Request::PortDel { name } => {
                let id = self.find_port(&name)?;
                if self
                    .ports
                    .get(id.0 as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|io| io.dev.kind() == "vxlan")
                {
                    return Err(format!(
                        "port {name} is a VXLAN remote; it goes with its network's overlay"
                    ));
                }
                let owner = self
                    .networks
                    .containers
                    .by_name
                    .values()
                    .find(|c| c.interfaces.iter().any(|i| i.tap == name));
                if let Some(c) = owner {
                    return Err(format!(
                        "port {name} belongs to container {0}; remove it with uswitch rm {0}",
                        c.name
                    ));
                }
                let (_, created) = self.remove_port(id).ok_or("the port went away")?;
                Ok(json!({ "name": name, "removed_tap": created }))
            }
            Request::Capture { port, file, count } => {
                self.start_capture(&port, Path::new(&file), count)?;
                Ok(json!({ "port": port, "file": file, "count": count }))
            }
            Request::ContainerAdd {
                name,
                networks,
                ips,
            } => self.container_add(&name, &networks, &ips),
            Request::ContainerRm { name } => {
                let c = self
                    .networks
                    .containers
                    .by_name
                    .remove(&name)
                    .ok_or_else(|| format!("no container named {name} (uswitch ps lists them)"))?;
                self.drop_container_ports(&c.interfaces);
                log::info!("removed container {name}");
                serde_json::to_value(&c).map_err(|e| e.to_string())
            }
            Request::ContainerLs => {
                let list: Vec<&Container> = self.networks.containers.by_name.values().collect();
                serde_json::to_value(list).map_err(|e| e.to_string())
            }
        }
    }

    fn drop_container_ports(&mut self, interfaces: &[Interface]) {
        for iface in interfaces {
            if let Some(id) = self.fwd.port_named(&iface.tap) {
                self.remove_port(id);
            }
            self.networks.containers.release(iface);
        }
    }

    /// Makes a TAP (and picks an address) per network for a new container. The client
    /// then creates the namespace and moves the TAPs in.
    fn container_add(
        &mut self,
        name: &str,
        networks: &[String],
        ips: &[Option<String>],
    ) -> Result<Value, String> {
        validate_container_name(name)?;
        if self.networks.containers.by_name.contains_key(name) {
            return Err(format!(
                "container {name} exists already (uswitch rm {name} removes it)"
            ));
        }
        if networks.is_empty() {
            return Err("a container needs at least one --network".into());
        }
        let mut interfaces = Vec::new();
        let result = (|| {
            for (i, net) in networks.iter().enumerate() {
                self.find_network(net)
                    .map_err(|_| format!("no network named {net}: create it with uswitch network create {net} --subnet CIDR"))?;
                let tap = format!("{name}-e{i}");
                if interface_exists(&tap) {
                    return Err(format!(
                        "interface {tap} exists already; remove it or pick another container name"
                    ));
                }
                let wanted = ips.get(i).cloned().flatten();
                let subnet = self.networks.subnets.get(net).cloned();
                let address =
                    self.networks
                        .containers
                        .allocate(net, subnet.as_deref(), wanted.as_deref())?;
                let iface = Interface {
                    tap: tap.clone(),
                    ifname: format!("eth{i}"),
                    network: net.clone(),
                    address,
                };
                if let Err(e) = self.add_tap_port(&tap, net, true) {
                    self.networks.containers.release(&iface);
                    return Err(e.to_string());
                }
                interfaces.push(iface);
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.drop_container_ports(&interfaces);
            return Err(e);
        }
        let c = Container {
            name: name.to_string(),
            netns: name.to_string(),
            interfaces,
        };
        log::info!("added container {name} on {}", networks.join(", "));
        // The launcher moves the TAPs from the switch's namespace, which it finds by pid.
        let v = serde_json::to_value(&c)
            .map(|mut v| {
                v["switch_pid"] = json!(std::process::id());
                v
            })
            .map_err(|e| e.to_string());
        self.networks.containers.by_name.insert(name.to_string(), c);
        v
    }

    /// Starts recording what `port` receives and sends into `file`.
    pub fn start_capture(
        &mut self,
        port: &str,
        file: &Path,
        count: Option<u64>,
    ) -> Result<(), String> {
        let id = self.find_port(port)?;
        if count == Some(0) {
            return Err("--count must be at least 1".into());
        }
        let cap = Capture::create(file, count, DEFAULT_MAX_BYTES)
            .map_err(|e| format!("cannot write capture file {}: {e}", file.display()))?;
        let io = self
            .ports
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or("the port went away")?;
        if let Some(old) = io.capture.replace(cap) {
            let _ = old.finish();
        }
        log::info!("capturing port {port} into {}", file.display());
        Ok(())
    }

    fn show_ports(&self) -> Value {
        let rows: Vec<Value> = self
            .fwd
            .ports()
            .map(|(id, p)| {
                let io = self.ports.get(id.0 as usize).and_then(Option::as_ref);
                json!({
                    "name": p.name(),
                    "network": self.network_name(p.network()),
                    "kind": io.map_or("?", |io| io.dev.kind()),
                    // Blocked by loop protection, or what the last write said: a TAP
                    // whose netdev is down refuses frames.
                    "state": if p.is_blocked(self.now()) {
                        "blocked"
                    } else if io.is_some_and(|io| io.down) {
                        "down"
                    } else {
                        "up"
                    },
                    "bum_rate": p.bum_rate(),
                    // Times the port was taken out of the poll for flooding far beyond
                    // its storm-control rate.
                    "storm_rests": io.map_or(0, |io| io.rests),
                    "mtu": p.mtu(),
                    "offloads": io.map(|io| io.dev.offloads()).unwrap_or_default(),
                    "created": io.is_some_and(|io| io.dev.created()),
                    "capture": io.and_then(|io| io.capture.as_ref()).map(|c| c.path().display().to_string()),
                    "counters": counters_json(p.counters()),
                })
            })
            .collect();
        Value::Array(rows)
    }

    fn show_fdb(&self, network: Option<&str>) -> Result<Value, String> {
        let only = network.map(|n| self.find_network(n)).transpose()?;
        let now = self.now();
        let mut rows = Vec::new();
        for (nid, net) in self.fwd.networks() {
            if only.is_some_and(|o| o != nid) {
                continue;
            }
            for e in net.fdb().entries().filter(|e| net.fdb().is_live(e, now)) {
                let port = self.fwd.port(e.port).map_or("?", |p| p.name());
                let age = (!e.is_static).then(|| now.saturating_sub(e.last_seen) as f64 / 1000.0);
                rows.push(json!({
                    "network": net.name(),
                    "mac": e.mac.to_string(),
                    "port": port,
                    "age_secs": age,
                    "static": e.is_static,
                }));
            }
        }
        Ok(Value::Array(rows))
    }

    fn show_stats(&self) -> Value {
        let ports: Vec<Value> = self
            .fwd
            .ports()
            .map(|(_, p)| {
                let mut v = counters_json(p.counters());
                v["name"] = json!(p.name());
                v["network"] = json!(self.network_name(p.network()));
                v
            })
            .collect();
        json!({ "ports": ports, "networks": self.network_rows() })
    }

    fn network_rows(&self) -> Vec<Value> {
        self.fwd
            .networks()
            .map(|(_, n)| {
                let ports: Vec<&str> = n
                    .ports()
                    .iter()
                    .filter_map(|&p| self.fwd.port(p).map(|p| p.name()))
                    .collect();
                json!({
                    "name": n.name(),
                    "subnet": self.networks.subnets.get(n.name()),
                    "ports": ports,
                    "fdb_entries": n.fdb().len(),
                    "fdb_static": n.fdb().static_len(),
                    "fdb_evictions": n.stats().evictions,
                    "fdb_expired": n.stats().expired,
                })
            })
            .collect()
    }

    fn network_ls(&self) -> Value {
        Value::Array(self.network_rows())
    }

    fn network_create(
        &mut self,
        name: &str,
        subnet: Option<String>,
        overlay: Option<OverlayRequest>,
    ) -> Result<Value, String> {
        if self.fwd.network_id(name).is_some() {
            return Err(format!("network {name} exists already"));
        }
        let spec = NetworkSpec {
            name: name.to_string(),
            subnet: subnet.clone(),
            mtu: None,
        };
        spec.validate()?;
        let vxlan = overlay.map(|o| self.overlay_spec(name, o)).transpose()?;
        if let Some(v) = &vxlan {
            v.validate()?;
        }
        self.declare_network(&spec)?;
        if let Some(v) = &vxlan {
            self.add_vxlan(v)?;
        }
        Ok(json!({
            "name": name,
            "subnet": subnet,
            "vni": vxlan.as_ref().map(|v| v.vni),
            "mtu": self.networks.mtus.get(name),
        }))
    }

    /// A full overlay spec from a runtime request: the local address and port default to
    /// those of the switch's only VXLAN endpoint.
    fn overlay_spec(&self, network: &str, o: OverlayRequest) -> Result<VxlanSpec, String> {
        let only = match self.vxlan.as_slice() {
            [ep] => Some((ep.local, ep.port)),
            _ => None,
        };
        let local = o.local.or(only.map(|(l, _)| l)).ok_or_else(|| {
            format!(
                "network {network}: give --local ADDR (the switch has {} VXLAN endpoints to choose from)",
                self.vxlan.len()
            )
        })?;
        let port = o.port.unwrap_or_else(|| {
            only.filter(|&(l, _)| l == local)
                .map_or(packets::vxlan::IANA_PORT, |(_, p)| p)
        });
        Ok(VxlanSpec {
            network: network.to_string(),
            vni: o.vni,
            local,
            remotes: o.remotes,
            port,
            mtu: o.mtu,
        })
    }

    fn show_vxlan(&self) -> Value {
        let endpoints: Vec<Value> = self
            .vxlan
            .iter()
            .map(|ep| {
                let segments: Vec<Value> = ep
                    .segments
                    .iter()
                    .map(|seg| {
                        let peers: Vec<Value> = seg
                            .peers
                            .iter()
                            .map(|&(remote, id)| {
                                let port = self.fwd.port(id);
                                json!({
                                    "remote": remote.to_string(),
                                    "port": port.map(|p| p.name()),
                                    "counters": port.map(|p| counters_json(p.counters())),
                                })
                            })
                            .collect();
                        json!({
                            "vni": seg.vni,
                            "network": seg.network,
                            "mtu": seg.mtu,
                            "peers": peers,
                        })
                    })
                    .collect();
                json!({
                    "local": ep.local.to_string(),
                    "port": ep.port,
                    "underlay": ep.underlay,
                    "underlay_mtu": ep.underlay_mtu,
                    "source_ports": ep.source_ports(),
                    "udp_gro": ep.gro,
                    "counters": counters_json(&ep.counters),
                    "segments": segments,
                })
            })
            .collect();
        Value::Array(endpoints)
    }

    /// Creates a network (or completes one named by a port) with its subnet and MTU.
    pub fn declare_network(&mut self, spec: &NetworkSpec) -> Result<(), String> {
        spec.validate()?;
        validate_network_name(&spec.name)?;
        if let Some(s) = &spec.subnet {
            self.networks.subnets.insert(spec.name.clone(), s.clone());
        }
        if let Some(m) = spec.mtu {
            self.networks.mtus.insert(spec.name.clone(), m);
        }
        self.fwd.network_named(&spec.name);
        log::info!(
            "network {}{}{}",
            spec.name,
            spec.subnet
                .as_deref()
                .map(|s| format!(" subnet {s}"))
                .unwrap_or_default(),
            spec.mtu.map(|m| format!(" mtu {m}")).unwrap_or_default()
        );
        Ok(())
    }
}
