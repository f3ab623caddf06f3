//! What the switch does for each control request: the one typed API that the CLI client,
//! the launcher and (later) the Docker driver, the CNI plugin and the cluster agent
//! share. Handlers read and change the data plane through its methods; they never touch
//! a frame.

use std::collections::BTreeMap;
use std::path::Path;

use forwarder::{NetworkId, PortId, PortKind};
use packets::MacAddr;

use super::cni::CniRegistry;
use super::protocol::*;
use crate::config::specs::{validate_network_name, HostPortSpec, NetworkSpec, PortSpec, VxlanSpec};
use crate::dataplane::Switch;
use crate::launcher::{validate_container_name, Containers, Interface};

/// What the control plane knows beyond the data plane: the subnets the launcher hands
/// addresses from, and the launcher's containers.
#[derive(Debug, Default)]
pub struct ControlState {
    pub subnets: BTreeMap<String, String>,
    pub containers: Containers,
    /// The outbound NAT the Docker driver keeps, as it last said it.
    pub nat: Vec<NatRule>,
    /// The CNI plugin's attachments and their networks' NAT.
    pub cni: CniRegistry,
    /// What the cluster agent last saw (`show cluster`), when this switch is a node.
    pub cluster: Option<std::sync::Arc<std::sync::Mutex<ClusterStatus>>>,
    /// The launcher's containers and runtime networks, as a restart finds them.
    pub launcher: super::launcher_state::LauncherBook,
    /// The changes made through the control socket, as a restart makes them again.
    pub runtime: super::runtime_state::RuntimeBook,
    /// Who is behind a port, as the front end that asked for it said (a Docker
    /// endpoint, the host): what `show ports`, `top` and the topology name.
    pub owners: BTreeMap<String, String>,
}

impl ControlState {
    /// Who is behind port `name`: a launcher container, a CNI container, or what the
    /// front end that added it said.
    pub fn owner_of(&self, name: &str) -> Option<String> {
        if let Some(c) = self.containers.owner_of(name) {
            return Some(c.name.clone());
        }
        if let Some(a) = self.cni.attachments.values().find(|a| a.port == name) {
            let id: String = a.container_id.chars().take(12).collect();
            return Some(format!("cni:{id}/{}", a.ifname));
        }
        self.owners.get(name).cloned()
    }

    /// Notes (or forgets, with `None`) who is behind port `name`.
    pub fn note_owner(&mut self, name: &str, owner: Option<String>) {
        match owner {
            Some(o) => self.owners.insert(name.to_string(), o),
            None => self.owners.remove(name),
        };
    }
}

type Reply = Result<Response, String>;

fn network_name(sw: &Switch, id: NetworkId) -> String {
    sw.forwarder()
        .network(id)
        .map_or_else(|| "?".into(), |n| n.name().to_string())
}

fn find_port(sw: &Switch, name: &str) -> Result<PortId, String> {
    sw.forwarder()
        .port_named(name)
        .ok_or_else(|| format!("no port named {name} (uswitch show ports lists them)"))
}

fn find_network(sw: &Switch, name: &str) -> Result<NetworkId, String> {
    sw.forwarder()
        .network_id(name)
        .ok_or_else(|| format!("no network named {name} (uswitch network ls lists them)"))
}

fn parse_mac(mac: &str) -> Result<MacAddr, String> {
    mac.parse().map_err(|e| format!("{e}"))
}

/// Carries out one control request.
pub fn execute(sw: &mut Switch, state: &mut ControlState, req: Request) -> Response {
    match try_execute(sw, state, req) {
        Ok(r) => r,
        Err(e) => Response::err(e),
    }
}

fn try_execute(sw: &mut Switch, state: &mut ControlState, req: Request) -> Reply {
    match req {
        Request::Ping => Ok(Response::ok(Pong {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        })),
        Request::ShowPorts => Ok(Response::ok(show_ports(sw, state))),
        Request::Observe => Ok(Response::ok(Observation {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            now_ms: sw.now(),
            ports: show_ports(sw, state),
            networks: network_rows(sw, state),
            vxlan: show_vxlan(sw),
            cluster: state
                .cluster
                .as_ref()
                .and_then(|c| c.lock().ok().map(|s| s.clone())),
            unattached_drops: sw.forwarder().unattached_drops(),
        })),
        Request::NatSet { rules } => {
            state.nat = rules;
            Ok(Response::ok(&state.nat))
        }
        Request::ShowNat => {
            let mut all = state.nat.clone();
            all.extend(state.cni.masquerades());
            Ok(Response::ok(all))
        }
        Request::CniAdd { attachment } => cni_add(sw, state, *attachment),
        Request::CniDel {
            container_id,
            ifname,
        } => Ok(Response::ok(cni_del(sw, state, container_id, ifname))),
        Request::OverlayRemoteAdd { network, remote } => {
            sw.add_overlay_remote(&network, remote)
                .map_err(|e| e.to_string())?;
            Ok(Response::ok(
                serde_json::json!({ "network": network, "remote": remote }),
            ))
        }
        Request::OverlayRemoteDel { network, remote } => {
            let removed = sw
                .remove_overlay_remote(&network, remote)
                .map_err(|e| e.to_string())?;
            Ok(Response::ok(
                serde_json::json!({ "network": network, "removed": removed }),
            ))
        }
        Request::ShowCluster => {
            let status = state
                .cluster
                .as_ref()
                .ok_or("this switch is not a cluster node (start it with --cluster etcd=URL --node NAME --vtep ADDR)")?
                .lock()
                .map(|s| s.clone())
                .map_err(|_| "the cluster agent failed")?;
            Ok(Response::ok(status))
        }
        Request::CniLs => {
            let all: Vec<&CniAttachment> = state.cni.attachments.values().collect();
            Ok(Response::ok(all))
        }
        Request::ShowFdb { network, local } => {
            Ok(Response::ok(show_fdb(sw, network.as_deref(), local)?))
        }
        Request::ShowNeighbors { network, local } => {
            Ok(Response::ok(show_neighbors(sw, network.as_deref(), local)?))
        }
        Request::TakeOver { .. } => Err(
            "a take-over is asked on the control socket by uswitch --take-over, and only there"
                .into(),
        ),
        Request::NeighborSet { network, neighbors } => {
            let id = find_network(sw, &network)?;
            let mut entries = Vec::with_capacity(neighbors.len());
            for n in &neighbors {
                let mac = parse_mac(&n.mac)?;
                if !mac.is_valid_source() {
                    return Err(format!("{mac} (for {}) is a group or zero address", n.ip));
                }
                entries.push((n.ip, mac));
            }
            sw.forwarder_mut().set_cluster_neighbors(id, &entries);
            Ok(Response::ok(
                serde_json::json!({ "network": network, "neighbors": entries.len() }),
            ))
        }
        Request::ShowStats => Ok(Response::ok(show_stats(sw, state))),
        Request::NetworkLs => Ok(Response::ok(network_rows(sw, state))),
        Request::NetworkCreate {
            name,
            subnet,
            overlay,
            mtu,
        } => network_create(sw, state, &name, subnet, overlay, mtu),
        Request::NetworkRm { name } => network_rm(sw, state, &name),
        Request::ShowVxlan => Ok(Response::ok(show_vxlan(sw))),
        Request::FdbFlush { network } => {
            let id = network
                .as_deref()
                .map(|n| find_network(sw, n))
                .transpose()?;
            let count = |sw: &Switch| -> usize {
                sw.forwarder().networks().map(|(_, n)| n.fdb().len()).sum()
            };
            let before = count(sw);
            sw.forwarder_mut().flush_fdb(id);
            Ok(Response::ok(Flushed {
                flushed: before - count(sw),
            }))
        }
        Request::FdbAdd { mac, port } => {
            let mac = parse_mac(&mac)?;
            if !mac.is_valid_source() {
                return Err(format!(
                    "{mac} is a group or zero address; a static entry needs a unicast MAC"
                ));
            }
            let id = find_port(sw, &port)?;
            let net = sw
                .forwarder_mut()
                .add_static(mac, id)
                .ok_or("the port went away")?;
            Ok(Response::ok(FdbAdded {
                network: network_name(sw, net),
                mac: mac.to_string(),
                port,
            }))
        }
        Request::FdbDel { mac, network } => {
            let mac = parse_mac(&mac)?;
            let id = network
                .as_deref()
                .map(|n| find_network(sw, n))
                .transpose()?;
            match sw.forwarder_mut().remove_fdb_entry(id, mac) {
                0 => Err(format!("no forwarding entry for {mac}")),
                n => Ok(Response::ok(FdbRemoved {
                    mac: mac.to_string(),
                    removed: n,
                })),
            }
        }
        Request::PortAdd {
            name,
            network,
            offload,
            bum_rate,
            persistent,
            owner,
        } => {
            let spec: PortSpec = format!("{name}@{network}").parse()?;
            if let Some(id) = sw.forwarder().port_named(&spec.name) {
                let on = sw
                    .forwarder()
                    .port(id)
                    .map(|p| network_name(sw, p.network()))
                    .unwrap_or_default();
                return Err(format!(
                    "port {} is already attached to this switch (network {on}); \
                     uswitch port del {} detaches it",
                    spec.name, spec.name
                ));
            }
            let id = sw
                .add_tap_port(&spec.name, &spec.network, offload)
                .map_err(|e| e.to_string())?;
            if let Some(rate) = bum_rate {
                sw.forwarder_mut().set_bum_rate(id, rate);
            }
            if persistent {
                if let Err(e) = sw.persist_port(id, true) {
                    sw.remove_port(id);
                    return Err(e.to_string());
                }
            }
            state.note_owner(&spec.name, owner);
            let created = sw.port_view(id).is_some_and(|v| v.created);
            let mtu = sw.forwarder().port(id).map_or(0, |p| p.mtu());
            Ok(Response::ok(PortAdded {
                name: spec.name,
                network: spec.network,
                created,
                mtu,
            }))
        }
        Request::PortDel { name } => {
            let id = find_port(sw, &name)?;
            if sw.port_view(id).is_some_and(|v| v.kind == PortKind::Remote) {
                return Err(format!(
                    "port {name} is a VXLAN remote; it goes with its network's overlay"
                ));
            }
            if let Some(a) = state.cni.attachments.values().find(|a| a.port == name) {
                return Err(format!(
                    "port {name} is container {}'s {} (a CNI attachment); the runtime \
                     removes it (CNI DEL)",
                    a.container_id, a.ifname
                ));
            }
            if let Some(c) = state.containers.owner_of(&name) {
                return Err(format!(
                    "port {name} belongs to container {0}; remove it with uswitch rm {0}",
                    c.name
                ));
            }
            let (_, created) = sw.delete_port(id).ok_or("the port went away")?;
            state.note_owner(&name, None);
            Ok(Response::ok(PortRemoved {
                name,
                removed_tap: created,
            }))
        }
        Request::PortReopen {
            name,
            network,
            netns,
            mac,
            owner,
        } => {
            find_network(sw, &network)?;
            let id = sw
                .reopen_tap_port(&name, &network, Path::new(&netns), &mac)
                .map_err(|e| e.to_string())?;
            state.note_owner(&name, owner);
            Ok(Response::ok(PortAdded {
                name,
                network,
                created: false,
                mtu: sw.forwarder().port(id).map_or(0, |p| p.mtu()),
            }))
        }
        Request::HostPortAdd {
            name,
            network,
            addresses,
        } => {
            let mut specs = Vec::new();
            for a in &addresses {
                specs.push(HostPortSpec::new(&name, &network, a)?);
            }
            let Some(first) = specs.first() else {
                return Err(format!(
                    "host port {name}: give it at least one ADDR/PREFIX"
                ));
            };
            super::host::add_host_port(sw, first)?;
            for more in &specs[1..] {
                super::host::add_address(more)?;
            }
            state.note_owner(&name, Some(super::host::OWNER.into()));
            let id = find_port(sw, &name)?;
            Ok(Response::ok(PortAdded {
                name,
                network,
                created: sw.port_view(id).is_some_and(|v| v.created),
                mtu: sw.forwarder().port(id).map_or(0, |p| p.mtu()),
            }))
        }
        Request::Capture { port, file, count } => {
            if count == Some(0) {
                return Err("--count must be at least 1".into());
            }
            sw.start_capture(&port, Path::new(&file), count)
                .map_err(|e| e.to_string())?;
            Ok(Response::ok(CaptureReply {
                port,
                file,
                count,
                frames: None,
            }))
        }
        Request::CaptureStop { port } => {
            let (file, frames) = sw.stop_capture(&port).map_err(|e| e.to_string())?;
            Ok(Response::ok(CaptureReply {
                port,
                file,
                count: None,
                frames: Some(frames),
            }))
        }
        Request::ContainerAdd {
            name,
            networks,
            ips,
        } => container_add(sw, state, &name, &networks, &ips),
        Request::ContainerRm { name } => {
            let c = state
                .containers
                .by_name
                .remove(&name)
                .ok_or_else(|| format!("no container named {name} (uswitch ps lists them)"))?;
            drop_container_ports(sw, state, &c.interfaces);
            state.launcher.save(&state.containers);
            log::info!("removed container {name}");
            Ok(Response::ok(c))
        }
        Request::ContainerLs => {
            let list: Vec<&Container> = state.containers.by_name.values().collect();
            Ok(Response::ok(list))
        }
    }
}

/// CNI `ADD`, the switch's half: the network (created when absent), its gateway host
/// port, a persistent TAP, the NAT, and the record that brings it back after a restart.
fn cni_add(sw: &mut Switch, state: &mut ControlState, a: CniAttachment) -> Reply {
    let key = (a.container_id.clone(), a.ifname.clone());
    if a.container_id.is_empty() || a.ifname.is_empty() {
        return Err("a CNI attachment needs a container id and an interface name".into());
    }
    if state.cni.attachments.contains_key(&key) {
        return Err(format!(
            "container {} has an interface {} on this switch already (CNI DEL removes it)",
            a.container_id, a.ifname
        ));
    }
    parse_mac(&a.mac)?;
    let spec: PortSpec = format!("{}@{}", a.port, a.network).parse()?;
    if sw.forwarder().port_named(&spec.name).is_some() {
        return Err(format!("port {} is attached already", spec.name));
    }
    cni_network(sw, state, &a)?;
    let before = state.cni.masquerades();
    let id = sw
        .add_tap_port(&spec.name, &spec.network, true)
        .map_err(|e| e.to_string())?;
    if let Err(e) = sw.persist_port(id, true) {
        sw.delete_port(id);
        return Err(e.to_string());
    }
    state.cni.attachments.insert(key.clone(), a);
    if let Err(e) = state.cni.apply_nat(&before) {
        state.cni.attachments.remove(&key);
        sw.delete_port(id);
        return Err(e);
    }
    state.cni.save();
    let mtu = sw.forwarder().port(id).map_or(0, |p| p.mtu());
    Ok(Response::ok(PortAdded {
        name: spec.name,
        network: spec.network,
        created: true,
        mtu,
    }))
}

/// The attachment's network, created as its configuration says when absent, and the
/// host port holding its gateways.
fn cni_network(sw: &mut Switch, state: &mut ControlState, a: &CniAttachment) -> Result<(), String> {
    if find_network(sw, &a.network).is_err() {
        network_create(sw, state, &a.network, a.subnet.clone(), None, a.mtu)?;
    }
    let gateway = state.cni.gateway_port(&a.network);
    if a.gateways.is_empty() || sw.forwarder().port_named(&gateway).is_some() {
        return Ok(());
    }
    let mut specs = Vec::new();
    for g in &a.gateways {
        specs.push(HostPortSpec::new(&gateway, &a.network, g)?);
    }
    if let Some(first) = specs.first() {
        super::host::add_host_port(sw, first)?;
        state.note_owner(&gateway, Some(super::host::OWNER.into()));
    }
    for more in specs.iter().skip(1) {
        super::host::add_address(more)?;
    }
    Ok(())
}

/// CNI `DEL`, the switch's half: idempotent.
fn cni_del(sw: &mut Switch, state: &mut ControlState, id: String, ifname: String) -> CniRemoved {
    let before = state.cni.masquerades();
    let Some(a) = state.cni.attachments.remove(&(id, ifname)) else {
        return CniRemoved {
            removed: false,
            removed_tap: false,
        };
    };
    let port = sw.forwarder().port_named(&a.port);
    let removed_tap = match port {
        Some(port) => sw.delete_port(port).is_some_and(|(_, created)| created),
        None => false,
    };
    if let Err(e) = state.cni.apply_nat(&before) {
        log::warn!("CNI NAT after removing {}: {e}", a.port);
    }
    state.cni.save();
    log::info!("CNI attachment {} {} removed", a.container_id, a.ifname);
    CniRemoved {
        removed: true,
        removed_tap,
    }
}

/// Brings back the CNI attachments the state file holds, after a restart: networks,
/// gateways and NAT, and each TAP reopened in its container's namespace; one whose
/// namespace or interface is gone is forgotten.
pub fn restore_cni(sw: &mut Switch, state: &mut ControlState) {
    let saved = match state.cni.load() {
        Ok(s) => s,
        Err(e) => {
            log::error!("restoring the CNI attachments: {e}");
            return;
        }
    };
    for a in saved {
        let back = cni_network(sw, state, &a).and_then(|()| {
            sw.reopen_tap_port(&a.port, &a.network, Path::new(&a.netns), &a.mac)
                .map_err(|e| e.to_string())
        });
        match back {
            Ok(_) => {
                log::info!("CNI attachment {} {} reattached", a.container_id, a.ifname);
                state
                    .cni
                    .attachments
                    .insert((a.container_id.clone(), a.ifname.clone()), a);
            }
            Err(e) => log::warn!(
                "CNI attachment {} {} is gone ({e}); forgetting it",
                a.container_id,
                a.ifname
            ),
        }
    }
    if let Err(e) = state.cni.apply_nat(&[]) {
        log::error!("CNI NAT: {e}");
    }
    state.cni.save();
}

/// A stable, locally administered MAC for interface `i` of container `name`.
fn container_mac(name: &str, i: usize) -> String {
    let h = super::cni::hex_hash(format!("{name}/{i}").as_bytes());
    let byte = |k: usize| h.get(2 * k..2 * k + 2).unwrap_or("00");
    format!(
        "02:{}:{}:{}:{}:{}",
        byte(0),
        byte(1),
        byte(2),
        byte(3),
        byte(4)
    )
}

/// Brings back the launcher's containers after a restart: the runtime networks they are
/// on (when the configuration did not make them again), and each TAP reopened in its
/// container by MAC. A container whose namespace or interface is gone is forgotten.
/// Makes again the changes made through the control socket before a restart (after the
/// configuration, before the front ends' records).
pub fn restore_runtime(sw: &mut Switch, state: &mut ControlState) {
    let saved = match state.runtime.load() {
        Ok(s) => s,
        Err(e) => {
            log::error!("restoring the runtime changes: {e}");
            return;
        }
    };
    let mut book = std::mem::take(&mut state.runtime);
    book.replay(saved, |req| {
        let r = execute(sw, state, req);
        match r.ok {
            true => Ok(()),
            false => Err(r.error.unwrap_or_default()),
        }
    });
    state.runtime = book;
}

pub fn restore_launcher(sw: &mut Switch, state: &mut ControlState) {
    let saved = match state.launcher.load() {
        Ok(s) => s,
        Err(e) => {
            log::error!("restoring the launcher's containers: {e}");
            return;
        }
    };
    for (name, m) in &saved.networks {
        if find_network(sw, name).is_ok() {
            continue;
        }
        if let Err(e) = network_create(sw, state, name, m.subnet.clone(), m.overlay.clone(), m.mtu)
        {
            log::warn!("network {name} could not be made again: {e}");
        }
    }
    for c in saved.containers {
        let netns = std::path::Path::new("/run/netns").join(&c.netns);
        let mut reopened = Vec::new();
        let mut failed = None;
        for i in &c.interfaces {
            let Some(mac) = &i.mac else {
                failed = Some(format!("{} has no MAC on record", i.tap));
                break;
            };
            match sw.reopen_tap_port(&i.tap, &i.network, &netns, mac) {
                Ok(id) => reopened.push(id),
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        match failed {
            None => {
                log::info!("container {} reattached", c.name);
                state.containers.restore(c);
            }
            Some(e) => {
                for id in reopened {
                    sw.delete_port(id);
                }
                // A TAP never moved into the container (uswitch stopped between making
                // it and the launcher's move) is still here, persistent: it goes too.
                for i in &c.interfaces {
                    if crate::dataplane::io::tap::interface_exists(&i.tap) {
                        if let Err(e) = sw
                            .add_tap_port(&i.tap, &i.network, true)
                            .map(|id| sw.delete_port(id))
                        {
                            log::warn!(
                                "removing the TAP {} left by container {}: {e}",
                                i.tap,
                                c.name
                            );
                        }
                    }
                }
                log::warn!("container {} is gone ({e}); forgetting it", c.name);
            }
        }
    }
    state.launcher.save(&state.containers);
}

fn drop_container_ports(sw: &mut Switch, state: &mut ControlState, interfaces: &[Interface]) {
    for iface in interfaces {
        let port = sw.forwarder().port_named(&iface.tap);
        if let Some(id) = port {
            // Persistent: deleting, not only closing, takes the TAP away.
            sw.delete_port(id);
        }
        state.containers.release(iface);
    }
}

/// Whether `net` is a cluster network with a subnet, as this node's agent last saw it:
/// one whose addresses etcd hands out.
fn cluster_allocates(state: &ControlState, net: &str) -> bool {
    state.cluster.as_ref().is_some_and(|status| {
        status.lock().is_ok_and(|s| {
            s.networks
                .iter()
                .any(|n| n.name == net && n.subnet.is_some())
        })
    })
}

/// Makes a TAP (and picks an address) per network for a new container. The client
/// then creates the namespace and moves the TAPs in.
fn container_add(
    sw: &mut Switch,
    state: &mut ControlState,
    name: &str,
    networks: &[String],
    ips: &[Option<String>],
) -> Reply {
    validate_container_name(name)?;
    if state.containers.by_name.contains_key(name) {
        return Err(format!(
            "container {name} exists already (uswitch rm {name} removes it)"
        ));
    }
    if networks.is_empty() {
        return Err("a container needs at least one --network".into());
    }
    let mut interfaces = Vec::new();
    let mut result = Ok(());
    for (i, net) in networks.iter().enumerate() {
        if find_network(sw, net).is_err() {
            result = Err(format!(
                "no network named {net}: create it with uswitch network create {net} --subnet CIDR"
            ));
            break;
        }
        let tap = format!("{name}-e{i}");
        if crate::dataplane::io::tap::interface_exists(&tap) {
            result = Err(format!(
                "interface {tap} exists already; remove it or pick another container name"
            ));
            break;
        }
        let wanted = ips.get(i).cloned().flatten();
        if wanted.is_none() && cluster_allocates(state, net) {
            // Picked here, it could be what another node's container holds.
            result = Err(format!(
                "network {net} is a cluster network: its addresses come from etcd \
                 (uswitch run takes one there); give the container's address"
            ));
            break;
        }
        let subnet = state.subnets.get(net).cloned();
        let address = match state
            .containers
            .allocate(net, subnet.as_deref(), wanted.as_deref())
        {
            Ok(a) => a,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        interfaces.push(Interface {
            tap: tap.clone(),
            ifname: format!("eth{i}"),
            network: net.clone(),
            address,
            mac: Some(container_mac(name, i)),
        });
    }
    if let Err(e) = result {
        drop_container_ports(sw, state, &interfaces);
        return Err(e);
    }
    let c = Container {
        name: name.to_string(),
        netns: name.to_string(),
        interfaces,
    };
    // Recorded before its TAPs exist: a uswitch killed while making them finds the
    // record at its next start, sees no namespace, and deletes whatever TAP was made
    // (persistent TAPs made first and recorded after could be left to nobody).
    state.containers.by_name.insert(name.to_string(), c.clone());
    state.launcher.save(&state.containers);
    for iface in &c.interfaces {
        let added = sw
            .add_tap_port(&iface.tap, &iface.network, true)
            .and_then(|id| {
                // The container's interface outlives uswitch, to be found again by its MAC.
                sw.persist_port(id, true).inspect_err(|_| {
                    sw.delete_port(id);
                })
            });
        if let Err(e) = added {
            state.containers.by_name.remove(name);
            drop_container_ports(sw, state, &c.interfaces);
            state.launcher.save(&state.containers);
            return Err(e.to_string());
        }
    }
    log::info!("added container {name} on {}", networks.join(", "));
    Ok(Response::ok(ContainerAdded {
        container: c,
        switch_pid: std::process::id(),
    }))
}

fn show_ports(sw: &Switch, state: &ControlState) -> Vec<PortRow> {
    let now = sw.now();
    sw.forwarder()
        .ports()
        .map(|(id, p)| {
            let v = sw.port_view(id);
            PortRow {
                name: p.name().to_string(),
                network: network_name(sw, p.network()),
                kind: v.as_ref().map_or("?", |v| v.kind.name()).to_string(),
                // Blocked by loop protection, or what the last write said: a TAP whose
                // netdev is down refuses frames.
                state: if p.is_blocked(now) {
                    "blocked"
                } else if v.as_ref().is_some_and(|v| v.down) {
                    "down"
                } else {
                    "up"
                }
                .to_string(),
                bum_rate: p.bum_rate(),
                storm_rests: v.as_ref().map_or(0, |v| v.rests),
                mtu: p.mtu(),
                offloads: v
                    .as_ref()
                    .map(|v| v.offloads.iter().map(|s| s.to_string()).collect())
                    .unwrap_or_default(),
                created: v.as_ref().is_some_and(|v| v.created),
                worker: v.as_ref().map_or(0, |v| v.worker),
                capture: v.and_then(|v| v.capture),
                counters: (&p.counters()).into(),
                owner: state.owner_of(p.name()),
            }
        })
        .collect()
}

/// The network called `network`, or every network (an unknown name is an error).
fn selected_networks<'a>(
    fwd: &'a forwarder::Forwarder,
    network: Option<&str>,
) -> Result<impl Iterator<Item = &'a forwarder::Network> + 'a, String> {
    let only = network
        .map(|n| {
            fwd.network_id(n)
                .ok_or_else(|| format!("no network named {n} (uswitch network ls lists them)"))
        })
        .transpose()?;
    Ok(fwd
        .networks()
        .filter(move |(id, _)| only.is_none_or(|o| o == *id))
        .map(|(_, net)| net))
}

fn show_fdb(sw: &Switch, network: Option<&str>, local: bool) -> Result<Vec<FdbRow>, String> {
    let now = sw.now();
    let fwd = sw.forwarder();
    let mut rows = Vec::new();
    for net in selected_networks(&fwd, network)? {
        let remote = |p| {
            fwd.port(p)
                .is_some_and(|p| p.caps().kind == forwarder::PortKind::Remote)
        };
        let fdb = net.fdb();
        for e in fdb
            .entries()
            .filter(|e| fdb.is_live(e, now) && !(local && remote(e.port)))
        {
            rows.push(FdbRow {
                network: net.name().to_string(),
                mac: e.mac.to_string(),
                port: fwd.port(e.port).map_or("?", |p| p.name()).to_string(),
                age_secs: (!e.is_static).then(|| now.saturating_sub(e.last_seen) as f64 / 1000.0),
                is_static: e.is_static,
            });
        }
    }
    Ok(rows)
}

fn show_neighbors(
    sw: &Switch,
    network: Option<&str>,
    local: bool,
) -> Result<Vec<NeighborRow>, String> {
    let now = sw.now();
    let fwd = sw.forwarder();
    let mut rows = Vec::new();
    for net in selected_networks(&fwd, network)? {
        let heard = |o: &forwarder::Origin| !local || *o == forwarder::Origin::Local;
        // Read whole first: the table is not locked while the neighbours are.
        let neighbors: Vec<_> = net.neighbors().iter().filter(|n| heard(&n.2)).collect();
        for (ip, mac, origin) in neighbors {
            rows.push(NeighborRow {
                network: net.name().to_string(),
                ip,
                mac: mac.to_string(),
                origin: match origin {
                    forwarder::Origin::Local => "local",
                    forwarder::Origin::Cluster => "cluster",
                }
                .into(),
                port: net
                    .table()
                    .peek(mac, now)
                    .and_then(|p| fwd.port(p))
                    .map(|p| p.name().to_string()),
            });
        }
    }
    rows.sort_by(|a, b| (&a.network, a.ip).cmp(&(&b.network, b.ip)));
    Ok(rows)
}

fn show_stats(sw: &Switch, state: &ControlState) -> Stats {
    let fwd = sw.forwarder();
    Stats {
        ports: fwd
            .ports()
            .map(|(_, p)| PortStats {
                name: p.name().to_string(),
                network: network_name(sw, p.network()),
                counters: (&p.counters()).into(),
            })
            .collect(),
        networks: network_rows(sw, state),
        endpoints: fwd
            .endpoints()
            .map(|(_, ep)| EndpointStats {
                endpoint: ep.name().to_string(),
                counters: (&ep.counters()).into(),
            })
            .collect(),
        unattached_drops: fwd.unattached_drops(),
    }
}

fn network_rows(sw: &Switch, state: &ControlState) -> Vec<NetworkRow> {
    let fwd = sw.forwarder();
    fwd.networks()
        .map(|(_, n)| {
            // One lock of the table for both counts (it is not reentrant).
            let (fdb_entries, fdb_static) = {
                let fdb = n.fdb();
                (fdb.len(), fdb.static_len())
            };
            NetworkRow {
                name: n.name().to_string(),
                subnet: state.subnets.get(n.name()).cloned(),
                ports: n
                    .ports()
                    .iter()
                    .filter_map(|&p| fwd.port(p).map(|p| p.name().to_string()))
                    .collect(),
                fdb_entries,
                fdb_static,
                fdb_evictions: n.stats().evictions,
                fdb_expired: n.stats().expired,
            }
        })
        .collect()
}

/// Creates a network, with its overlay if asked: all of it, or (on any failure) none of
/// it, so a retry does not find a half-made network "existing already".
fn network_create(
    sw: &mut Switch,
    state: &mut ControlState,
    name: &str,
    subnet: Option<String>,
    overlay: Option<OverlayRequest>,
    mtu: Option<u32>,
) -> Reply {
    if sw.forwarder().network_id(name).is_some() {
        return Err(format!("network {name} exists already"));
    }
    let spec = NetworkSpec {
        name: name.to_string(),
        subnet: subnet.clone(),
        mtu,
    };
    spec.validate()?;
    let made_overlay = overlay.clone();
    let vxlan = overlay.map(|o| overlay_spec(sw, name, o)).transpose()?;
    if let Some(v) = &vxlan {
        v.validate()?;
    }
    declare_network(sw, state, &spec)?;
    if let Some(v) = &vxlan {
        if let Err(e) = sw.add_vxlan(v) {
            undeclare_network(sw, state, name);
            return Err(e.to_string());
        }
    }
    state.launcher.made.insert(
        name.to_string(),
        super::launcher_state::MadeNetwork {
            subnet: subnet.clone(),
            overlay: made_overlay,
            mtu: spec.mtu,
        },
    );
    let mtu = {
        let fwd = sw.forwarder();
        fwd.network_id(name)
            .and_then(|n| fwd.network(n))
            .and_then(|n| n.mtu())
    };
    Ok(Response::ok(NetworkCreated {
        name: name.to_string(),
        subnet,
        vni: vxlan.as_ref().map(|v| v.vni),
        mtu,
    }))
}

fn undeclare_network(sw: &mut Switch, state: &mut ControlState, name: &str) {
    state.subnets.remove(name);
    let id = sw.forwarder().network_id(name);
    if let Some(id) = id {
        let _ = sw.forwarder_mut().remove_network(id);
    }
}

/// Removes a network: its overlay's remotes go with it; any other port must go first.
fn network_rm(sw: &mut Switch, state: &mut ControlState, name: &str) -> Reply {
    let id = find_network(sw, name)?;
    let fwd = sw.forwarder();
    let others: Vec<String> = fwd
        .network(id)
        .map(|n| n.ports().to_vec())
        .unwrap_or_default()
        .into_iter()
        .filter(|&p| sw.port_view(p).is_some_and(|v| v.kind != PortKind::Remote))
        .filter_map(|p| fwd.port(p).map(|p| p.name().to_string()))
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "network {name} still has ports {}; remove them first (uswitch port del, uswitch rm)",
            others.join(", ")
        ));
    }
    let bindings: Vec<(forwarder::EndpointId, u32)> = fwd
        .endpoints()
        .flat_map(|(eid, ep)| {
            ep.bindings()
                .iter()
                .filter(|b| b.network == id)
                .map(move |b| (eid, b.vni))
                .collect::<Vec<_>>()
        })
        .collect();
    drop(fwd);
    let mut removed = Vec::new();
    for (eid, vni) in bindings {
        let ports = sw.forwarder_mut().unbind_vni(eid, vni);
        for port in ports {
            if let Some((p, _)) = sw.remove_port(port) {
                removed.push(p.name().to_string());
            }
        }
    }
    sw.forwarder_mut()
        .remove_network(id)
        .map_err(|e| e.to_string())?;
    state.subnets.remove(name);
    state.launcher.made.remove(name);
    log::info!("removed network {name}");
    Ok(Response::ok(NetworkRemoved {
        name: name.to_string(),
        ports: removed,
    }))
}

/// A full overlay spec from a runtime request: the local address and port default to
/// those of the switch's only VXLAN endpoint.
fn overlay_spec(sw: &Switch, network: &str, o: OverlayRequest) -> Result<VxlanSpec, String> {
    let eps = sw.endpoint_views();
    let only = match eps.as_slice() {
        [ep] => Some((ep.local, ep.port)),
        _ => None,
    };
    let local = o.local.or(only.map(|(l, _)| l)).ok_or_else(|| {
        format!(
            "network {network}: give --local ADDR (the switch has {} VXLAN endpoints to choose from)",
            eps.len()
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

fn show_vxlan(sw: &Switch) -> Vec<EndpointRow> {
    let fwd = sw.forwarder();
    sw.endpoint_views()
        .into_iter()
        .map(|v| {
            let ep = fwd.endpoint(v.id);
            let segments = ep
                .map(|ep| ep.bindings())
                .unwrap_or_default()
                .iter()
                .map(|b| VniRow {
                    vni: b.vni,
                    network: network_name(sw, b.network),
                    mtu: b.mtu,
                    peers: b
                        .remotes
                        .iter()
                        .map(|&(remote, id)| {
                            let port = fwd.port(id);
                            PeerRow {
                                remote: remote.to_string(),
                                port: port.map(|p| p.name().to_string()),
                                counters: port.map(|p| (&p.counters()).into()),
                            }
                        })
                        .collect(),
                })
                .collect();
            EndpointRow {
                local: v.local.to_string(),
                port: v.port,
                underlay: v.underlay,
                underlay_mtu: v.underlay_mtu,
                source_ports: v.source_ports,
                udp_gro: v.udp_gro,
                worker: v.worker,
                counters: ep.map(|e| (&e.counters()).into()).unwrap_or_default(),
                segments,
            }
        })
        .collect()
}

/// Creates a network (or completes one named by a port) with its subnet and MTU.
pub fn declare_network(
    sw: &mut Switch,
    state: &mut ControlState,
    spec: &NetworkSpec,
) -> Result<(), String> {
    spec.validate()?;
    validate_network_name(&spec.name)?;
    if let Some(s) = &spec.subnet {
        state.subnets.insert(spec.name.clone(), s.clone());
    }
    let mut fwd = sw.forwarder_mut();
    fwd.network_named(&spec.name);
    if let Some(m) = spec.mtu {
        fwd.set_network_mtu(&spec.name, m as usize);
    }
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
