//! The driver: each Docker request translated into requests of the control API, and the
//! answer Docker expects. It never calls back into Docker.
//!
//! Names: a Docker network `N…` is uswitch network `dk-` + its first 12 hex digits, its
//! gateway the host port `ug` + 13; an endpoint `E…` is the TAP `ue` + 13 (15 bytes, the
//! kernel's limit).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;

use log::{info, warn};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::*;
use crate::control::handle::Handle;
use crate::control::protocol::{NatRule, OverlayRequest, Request, Response};
use crate::firewall::{Firewall, Publish};

/// Option keys of `docker network create -o` (under `com.docker.network.generic`).
const OPTIONS: &[&str] = &[
    "uswitch.vni",
    "uswitch.remote",
    "uswitch.local",
    "uswitch.port",
    "uswitch.mtu",
    "uswitch.bum_rate",
    "uswitch.cluster",
];

/// What the driver remembers of a Docker network: its gateways (for Join), whether it is
/// internal, and its endpoints' storm-control rate.
#[derive(Debug, Clone, Default)]
struct Net {
    gateway4: Option<String>,
    gateway6: Option<String>,
    internal: bool,
    bum_rate: Option<u64>,
    /// Masqueraded when it leaves through anything but the gateway (not internal).
    nat: Option<NatRule>,
    /// The cluster network this Docker network puts its containers on
    /// (`-o uswitch.cluster=NAME`): it is the cluster's, not this network's, so
    /// deleting the Docker network leaves it.
    cluster: Option<String>,
}

/// An endpoint as the state file keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedEndpoint {
    network_id: String,
    mac: String,
    address: Option<std::net::Ipv4Addr>,
    /// The container's namespace, once joined.
    sandbox: Option<String>,
    /// Published ports: (udp, host port, container port).
    publish: Vec<(bool, u16, u16)>,
}

/// What survives a restart: every network's CreateNetwork as Docker sent it, and every
/// endpoint. Docker does not resend them to a plugin that comes back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    networks: BTreeMap<String, Value>,
    endpoints: BTreeMap<String, SavedEndpoint>,
}

pub struct Driver {
    state_file: Option<PathBuf>,
    state: State,
    switch: Handle,
    networks: HashMap<String, Net>,
    /// Each endpoint's IPv4 address (from CreateEndpoint), for its published ports.
    addresses: HashMap<String, std::net::Ipv4Addr>,
    /// Each endpoint's published ports.
    published: HashMap<String, Vec<Publish>>,
    firewall: Firewall,
    ipam: super::ipam::Ipam,
    /// Bringing the state file back: the firewall is written once, at the end.
    restoring: bool,
}

type Answer = Result<Value, String>;

fn short(id: &str, n: usize) -> Result<&str, String> {
    let ok = id.len() >= n && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(&id[..n])
    } else {
        Err(format!(
            "'{id}' is not an id Docker makes (hex digits expected)"
        ))
    }
}

pub fn network_name(id: &str) -> Result<String, String> {
    Ok(format!("dk-{}", short(id, 12)?))
}

pub fn gateway_port(id: &str) -> Result<String, String> {
    Ok(format!(
        "{}{}",
        crate::firewall::GATEWAY_PREFIX,
        short(id, 13)?
    ))
}

pub fn endpoint_tap(id: &str) -> Result<String, String> {
    Ok(format!("ue{}", short(id, 13)?))
}

/// Who `show ports` says is behind an endpoint's TAP: Docker names the endpoint, not
/// the container, to its drivers (`docker network inspect` maps one to the other).
pub fn endpoint_owner(id: &str) -> String {
    format!("docker:{}", id.chars().take(12).collect::<String>())
}

/// A stable, locally administered MAC from an endpoint id, for an endpoint Docker gave
/// none.
pub fn endpoint_mac(id: &str) -> String {
    let mut b = [0u8; 5];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = id
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(i as u8);
    }
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4]
    )
}

/// A string option, which Docker may send as a string or a bool.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

impl Driver {
    pub fn new(switch: Handle, firewall: Firewall, state_file: Option<PathBuf>) -> Driver {
        Driver {
            state_file,
            state: State::default(),
            networks: HashMap::new(),
            addresses: HashMap::new(),
            published: HashMap::new(),
            firewall,
            ipam: super::ipam::Ipam::new(switch.clone()),
            switch,
            restoring: false,
        }
    }

    /// The uswitch network Docker network `id`'s endpoints go on.
    fn uswitch_network(&self, id: &str) -> Result<String, String> {
        match self.networks.get(id).and_then(|n| n.cluster.clone()) {
            Some(cluster) => Ok(cluster),
            None => network_name(id),
        }
    }

    /// Writes the state file, atomically (a temporary file renamed over it).
    fn save(&self) {
        let Some(path) = &self.state_file else {
            return;
        };
        if let Err(e) = crate::state_file::write(path, &self.state) {
            warn!("writing the Docker state {}: {e}", path.display());
        }
    }

    /// Moves a state file that could not be restored out of the way (to `*.bad`), so the
    /// next save does not overwrite it; says where it went.
    pub fn set_state_aside(&mut self) -> String {
        let Some(path) = &self.state_file else {
            return "no state file".into();
        };
        crate::state_file::set_aside(path)
    }

    /// Brings back what the state file holds after a restart: the networks as Docker
    /// created them, and each endpoint's TAP, reopened where it lives now (in its
    /// container); an endpoint whose container is gone is forgotten.
    ///
    /// The firewall's table is then written once, whole, for what came back (or for
    /// nothing, when nothing did): one a take-over or a crash left in place keeps its
    /// rules until then, so published ports and outbound NAT never lapse meanwhile.
    pub fn restore(&mut self) -> Result<(), String> {
        self.restoring = true;
        let restored = self.restore_saved();
        self.restoring = false;
        let written = self.refresh_nat();
        restored.and(written)
    }

    fn restore_saved(&mut self) -> Result<(), String> {
        let Some(path) = self.state_file.clone() else {
            return Ok(());
        };
        let Some(saved): Option<State> = crate::state_file::read(&path, "Docker state")? else {
            return Ok(());
        };
        for body in saved.networks.values() {
            let req: CreateNetwork =
                serde_json::from_value(body.clone()).map_err(|e| e.to_string())?;
            self.create_network(req)?;
        }
        for (id, ep) in saved.endpoints {
            let name = endpoint_tap(&id)?;
            let network = self.uswitch_network(&ep.network_id)?;
            let back = match &ep.sandbox {
                Some(ns) => self.ask(Request::PortReopen {
                    name,
                    network,
                    netns: ns.clone(),
                    mac: ep.mac.clone(),
                    owner: Some(endpoint_owner(&id)),
                }),
                None => self.ask(Request::PortAdd {
                    name,
                    network,
                    offload: true,
                    bum_rate: None,
                    persistent: true,
                    owner: Some(endpoint_owner(&id)),
                }),
            };
            match back {
                Ok(_) => {
                    if let Some(a) = ep.address {
                        self.addresses.insert(id.clone(), a);
                        let publish = ep
                            .publish
                            .iter()
                            .map(|&(udp, host_port, port)| Publish {
                                udp,
                                host_port,
                                addr: a,
                                port,
                            })
                            .collect();
                        self.published.insert(id.clone(), publish);
                    }
                    info!("Docker endpoint {id} reattached");
                    self.state.endpoints.insert(id, ep);
                }
                Err(e) => warn!("Docker endpoint {id} is gone ({e}); forgetting it"),
            }
        }
        self.save();
        Ok(())
    }

    /// Puts back the firewall's rules in chains others own (see `Firewall::keep_up`).
    pub fn keep_up(&self) {
        self.firewall.keep_up();
    }

    /// Writes the outbound NAT of every network into the firewall, and tells the switch
    /// (for `show nat`).
    fn refresh_nat(&self) -> Result<(), String> {
        if self.restoring {
            return Ok(());
        }
        let mut rules: Vec<NatRule> = self
            .networks
            .values()
            .filter_map(|n| n.nat.clone())
            .collect();
        rules.sort_by(|a, b| a.network.cmp(&b.network));
        let mut publish: Vec<Publish> = self.published.values().flatten().cloned().collect();
        publish.sort_by_key(|p| (p.udp, p.host_port));
        self.firewall.apply(&rules, &publish)?;
        self.ask(Request::NatSet { rules })?;
        Ok(())
    }

    fn ask(&self, req: Request) -> Answer {
        let Response { ok, error, data } = self.switch.call(req);
        if ok {
            Ok(data)
        } else {
            Err(error.unwrap_or_else(|| "uswitch refused without saying why".into()))
        }
    }

    /// Answers one request by its path (`/NetworkDriver.CreateNetwork`, ...).
    pub fn handle(&mut self, path: &str, body: &[u8]) -> Answer {
        fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
            serde_json::from_slice(body)
                .map_err(|e| format!("uswitch could not read the request: {e}"))
        }
        match path {
            "/Plugin.Activate" => Ok(json!({ "Implements": ["NetworkDriver", "IpamDriver"] })),
            ipam if ipam.starts_with("/IpamDriver.") => self
                .ipam
                .handle(ipam, body)
                .unwrap_or_else(|| Err(format!("uswitch does not implement {ipam}"))),
            "/NetworkDriver.GetCapabilities" => {
                Ok(json!({ "Scope": "local", "ConnectivityScope": "local" }))
            }
            "/NetworkDriver.CreateNetwork" => self.create_network(parse(body)?),
            "/NetworkDriver.DeleteNetwork" => self.delete_network(parse(body)?),
            "/NetworkDriver.CreateEndpoint" => self.create_endpoint(parse(body)?),
            "/NetworkDriver.DeleteEndpoint" => {
                let r: EndpointRef = parse(body)?;
                let name = endpoint_tap(&r.endpoint_id)?;
                // Best effort: an endpoint whose TAP is gone is deleted already.
                let _ = self.ask(Request::PortDel { name });
                self.addresses.remove(&r.endpoint_id);
                self.state.endpoints.remove(&r.endpoint_id);
                self.save();
                Ok(json!({}))
            }
            "/NetworkDriver.EndpointOperInfo" => {
                let _: EndpointRef = parse(body)?;
                Ok(json!({ "Value": {} }))
            }
            "/NetworkDriver.Join" => self.join(parse(body)?),
            "/NetworkDriver.Leave" => {
                let r: EndpointRef = parse(body)?;
                if let Some(ep) = self.state.endpoints.get_mut(&r.endpoint_id) {
                    ep.sandbox = None;
                }
                self.save();
                Ok(json!({}))
            }
            "/NetworkDriver.ProgramExternalConnectivity" => self.publish(parse(body)?),
            "/NetworkDriver.RevokeExternalConnectivity" => {
                let r: EndpointRef = parse(body)?;
                if let Some(ep) = self.state.endpoints.get_mut(&r.endpoint_id) {
                    ep.publish.clear();
                }
                self.save();
                if self.published.remove(&r.endpoint_id).is_some() {
                    self.refresh_nat()?;
                }
                Ok(json!({}))
            }
            "/NetworkDriver.DiscoverNew" | "/NetworkDriver.DiscoverDelete" => Ok(json!({})),
            other => Err(format!("uswitch does not implement {other}")),
        }
    }

    fn create_network(&mut self, r: CreateNetwork) -> Answer {
        let name = network_name(&r.network_id)?;
        let body = serde_json::to_value(&r).map_err(|e| e.to_string())?;
        let generic = match r.options.get("com.docker.network.generic") {
            Some(Value::Object(m)) => m.clone(),
            Some(Value::Null) | None => Default::default(),
            Some(other) => return Err(format!("unexpected driver options {other}")),
        };
        let opt = |k: &str| generic.get(k).and_then(Value::as_str).map(str::to_string);
        for key in generic.keys() {
            if !OPTIONS.contains(&key.as_str()) {
                return Err(format!(
                    "unknown option {key}: the uswitch driver takes {}",
                    OPTIONS.join(", ")
                ));
            }
        }
        let num = |k: &str| -> Result<Option<u64>, String> {
            opt(k)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| format!("option {k}={v} is not a number"))
                })
                .transpose()
        };
        if let Some(cluster) = opt("uswitch.cluster") {
            return self.create_cluster_network(r, body, &generic, cluster);
        }
        let vni = num("uswitch.vni")?;
        let overlay = match vni {
            Some(vni) => {
                let vni = u32::try_from(vni)
                    .ok()
                    .filter(|v| *v <= packets::vxlan::MAX_VNI)
                    .ok_or_else(|| {
                        format!("option uswitch.vni={vni} does not fit 24 bits (at most 16777215)")
                    })?;
                let mut remotes = Vec::new();
                for r in opt("uswitch.remote").unwrap_or_default().split(',') {
                    let r = r.trim();
                    if !r.is_empty() {
                        remotes.push(r.parse::<IpAddr>().map_err(|_| {
                            format!("option uswitch.remote: {r} is not an IP address")
                        })?);
                    }
                }
                let local = opt("uswitch.local")
                    .map(|l| {
                        l.parse::<IpAddr>()
                            .map_err(|_| format!("option uswitch.local={l} is not an IP address"))
                    })
                    .transpose()?;
                let port = num("uswitch.port")?
                    .map(|p| {
                        u16::try_from(p)
                            .map_err(|_| format!("option uswitch.port={p} is not a UDP port"))
                    })
                    .transpose()?;
                Some(OverlayRequest {
                    vni,
                    remotes,
                    local,
                    port,
                    mtu: num("uswitch.mtu")?.map(|m| m as u32),
                })
            }
            None => {
                for k in ["uswitch.remote", "uswitch.local", "uswitch.port"] {
                    if generic.contains_key(k) {
                        return Err(format!("option {k} needs uswitch.vni (an overlay network)"));
                    }
                }
                None
            }
        };
        let mtu = num("uswitch.mtu")?
            .map(|m| {
                u32::try_from(m)
                    .ok()
                    .filter(|m| (68..=65_535).contains(m))
                    .ok_or_else(|| format!("option uswitch.mtu={m} is outside 68..65535"))
            })
            .transpose()?;
        let internal = truthy(r.options.get("com.docker.network.internal"));
        let subnet = r
            .ipv4_data
            .first()
            .map(|d| d.pool.clone())
            .filter(|p| !p.is_empty());
        self.ask(Request::NetworkCreate {
            name: name.clone(),
            subnet,
            overlay,
            mtu: if vni.is_some() { None } else { mtu },
        })?;
        let gateways: Vec<String> = r
            .ipv4_data
            .iter()
            .chain(&r.ipv6_data)
            .map(|d| d.gateway.clone())
            .filter(|g| !g.is_empty())
            .collect();
        let mut net = Net {
            internal,
            bum_rate: num("uswitch.bum_rate")?,
            ..Net::default()
        };
        if !internal && !gateways.is_empty() {
            let added = self.ask(Request::HostPortAdd {
                name: gateway_port(&r.network_id)?,
                network: name.clone(),
                addresses: gateways.clone(),
            });
            if let Err(e) = added {
                let _ = self.ask(Request::NetworkRm { name });
                return Err(format!("giving the network its gateway: {e}"));
            }
            let bare = |g: &String| g.split('/').next().unwrap_or_default().to_string();
            net.gateway4 = gateways.iter().find(|g| !g.contains(':')).map(bare);
            net.gateway6 = gateways.iter().find(|g| g.contains(':')).map(bare);
            net.nat = r
                .ipv4_data
                .first()
                .map(|d| d.pool.clone())
                .filter(|p| !p.is_empty())
                .map(|subnet| NatRule {
                    network: name.clone(),
                    subnet,
                    gateway_port: gateway_port(&r.network_id).unwrap_or_default(),
                });
        }
        self.networks.insert(r.network_id.clone(), net);
        if let Err(e) = self.refresh_nat() {
            self.networks.remove(&r.network_id);
            let _ = self.ask(Request::PortDel {
                name: gateway_port(&r.network_id)?,
            });
            let _ = self.ask(Request::NetworkRm { name });
            return Err(format!("setting up the network's outbound NAT: {e}"));
        }
        self.state.networks.insert(r.network_id, body);
        self.save();
        Ok(json!({}))
    }

    /// `-o uswitch.cluster=NAME`: the Docker network is cluster network NAME on this
    /// host, its addresses the cluster's (`--ipam-driver` this plugin). It carries
    /// traffic between containers across hosts; it has no gateway or NAT of its own here
    /// (as an `--internal` network).
    fn create_cluster_network(
        &mut self,
        r: CreateNetwork,
        body: Value,
        generic: &serde_json::Map<String, Value>,
        cluster: String,
    ) -> Answer {
        if let Some(k) = generic.keys().find(|k| k.as_str() != "uswitch.cluster") {
            return Err(format!(
                "option {k} does not go with uswitch.cluster: the cluster network sets its                  VNI, MTU and remotes"
            ));
        }
        let asked = self.switch.call(Request::ShowCluster);
        let status: crate::control::protocol::ClusterStatus = if asked.ok {
            serde_json::from_value(asked.data).map_err(|e| e.to_string())?
        } else {
            return Err(format!(
                "uswitch.cluster needs a cluster node: {}",
                asked.error.unwrap_or_default()
            ));
        };
        let Some(net) = status.networks.iter().find(|n| n.name == cluster) else {
            return Err(format!(
                "the cluster has no network {cluster}; create it first with `uswitch network                  create {cluster} --subnet CIDR --vni N --cluster`"
            ));
        };
        let pool = r.ipv4_data.first().map(|d| d.pool.as_str()).unwrap_or("");
        if net.subnet.as_deref().is_some_and(|s| s != pool) {
            return Err(format!(
                "cluster network {cluster}'s addresses come from the cluster: add                  --ipam-driver with this plugin's name and --ipam-opt uswitch.cluster={cluster}                  (Docker's pool {pool} is not the cluster's subnet {})",
                net.subnet.as_deref().unwrap_or_default()
            ));
        }
        let local: Vec<crate::control::protocol::NetworkRow> =
            serde_json::from_value(self.ask(Request::NetworkLs)?).map_err(|e| e.to_string())?;
        if !local.iter().any(|n| n.name == cluster) {
            return Err(format!(
                "cluster network {cluster} is not declared on this host yet; try again in a                  second"
            ));
        }
        self.networks.insert(
            r.network_id.clone(),
            Net {
                internal: true,
                bum_rate: None,
                cluster: Some(cluster.clone()),
                ..Net::default()
            },
        );
        info!(
            "Docker network {} is cluster network {cluster}",
            r.network_id
        );
        self.state.networks.insert(r.network_id, body);
        self.save();
        Ok(json!({}))
    }

    fn delete_network(&mut self, r: NetworkRef) -> Answer {
        if self
            .networks
            .get(&r.network_id)
            .is_some_and(|n| n.cluster.is_some())
        {
            // The cluster's network stays for the cluster's other users.
            self.networks.remove(&r.network_id);
            self.state.networks.remove(&r.network_id);
            self.save();
            return Ok(json!({}));
        }
        let name = network_name(&r.network_id)?;
        // The gateway goes first; a network that is gone already is deleted.
        let _ = self.ask(Request::PortDel {
            name: gateway_port(&r.network_id)?,
        });
        match self.ask(Request::NetworkRm { name }) {
            Ok(_) => {}
            Err(e) if e.contains("no network named") => {}
            Err(e) => return Err(e),
        }
        self.networks.remove(&r.network_id);
        self.state.networks.remove(&r.network_id);
        self.save();
        self.refresh_nat()?;
        Ok(json!({}))
    }

    fn create_endpoint(&mut self, r: CreateEndpoint) -> Answer {
        let network = self.uswitch_network(&r.network_id)?;
        let name = endpoint_tap(&r.endpoint_id)?;
        let bum_rate = self.networks.get(&r.network_id).and_then(|n| n.bum_rate);
        self.ask(Request::PortAdd {
            name,
            network,
            offload: true,
            bum_rate,
            persistent: true,
            owner: Some(endpoint_owner(&r.endpoint_id)),
        })?;
        let v4 = r
            .interface
            .as_ref()
            .and_then(|i| i.address.split('/').next()?.parse().ok());
        if let Some(a) = v4 {
            self.addresses.insert(r.endpoint_id.clone(), a);
        }
        let given = r
            .interface
            .as_ref()
            .map(|i| i.mac_address.clone())
            .filter(|m| !m.is_empty());
        self.state.endpoints.insert(
            r.endpoint_id.clone(),
            SavedEndpoint {
                network_id: r.network_id.clone(),
                mac: given
                    .clone()
                    .unwrap_or_else(|| endpoint_mac(&r.endpoint_id)),
                address: v4,
                sandbox: None,
                publish: Vec::new(),
            },
        );
        self.save();
        if given.is_some() {
            // Docker chose the MAC: the answer must leave the interface alone.
            return Ok(json!({}));
        }
        Ok(json!({
            "Interface": { "MacAddress": endpoint_mac(&r.endpoint_id) }
        }))
    }

    /// `-p HOST:CONTAINER[/udp]`: DNAT from this host's addresses to the endpoint.
    fn publish(&mut self, r: ExternalConnectivity) -> Answer {
        let Some(&addr) = self.addresses.get(&r.endpoint_id) else {
            return Err(format!(
                "endpoint {} has no IPv4 address to publish ports to",
                r.endpoint_id
            ));
        };
        let maps = match r.options.get("com.docker.network.portmap") {
            Some(v) => serde_json::from_value::<Vec<PortBinding>>(v.clone())
                .map_err(|e| format!("unexpected port map: {e}"))?,
            None => Vec::new(),
        };
        let mut publish = Vec::new();
        for m in maps {
            let udp = match m.proto {
                6 => false,
                17 => true,
                p => {
                    return Err(format!(
                        "uswitch publishes TCP and UDP ports, not protocol {p}"
                    ))
                }
            };
            let end = m.host_port_end.max(m.host_port);
            if end != m.host_port {
                return Err(
                    "uswitch publishes one host port per container port, not a range".into(),
                );
            }
            if m.host_port == 0 {
                return Err(
                    "give the host port (-p HOST:CONTAINER): uswitch does not pick one".into(),
                );
            }
            publish.push(Publish {
                udp,
                host_port: m.host_port,
                addr,
                port: m.port,
            });
        }
        if let Some(ep) = self.state.endpoints.get_mut(&r.endpoint_id) {
            ep.publish = publish
                .iter()
                .map(|p| (p.udp, p.host_port, p.port))
                .collect();
        }
        self.save();
        self.published.insert(r.endpoint_id.clone(), publish);
        if let Err(e) = self.refresh_nat() {
            self.published.remove(&r.endpoint_id);
            return Err(e);
        }
        Ok(json!({}))
    }

    fn join(&mut self, r: JoinRequest) -> Answer {
        if let Some(ep) = self.state.endpoints.get_mut(&r.endpoint_id) {
            ep.sandbox = Some(r.sandbox_key.clone()).filter(|k| !k.is_empty());
        }
        self.save();
        let net = self
            .networks
            .get(&r.network_id)
            .cloned()
            .unwrap_or_default();
        let resp = JoinResponse {
            interface_name: InterfaceName {
                src_name: endpoint_tap(&r.endpoint_id)?,
                dst_prefix: "eth".into(),
            },
            gateway: net.gateway4.unwrap_or_default(),
            gateway_ipv6: net.gateway6.unwrap_or_default(),
            disable_gateway_service: net.internal,
        };
        serde_json::to_value(resp).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_and_macs_are_stable_and_local() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(network_name(id).unwrap(), "dk-0123456789ab");
        assert_eq!(endpoint_tap(id).unwrap().len(), 15);
        assert_eq!(gateway_port(id).unwrap().len(), 15);
        assert_eq!(endpoint_mac(id), "02:01:23:45:67:89");
        assert_eq!(endpoint_mac(id), endpoint_mac(id));
        assert!(network_name("../../etc").is_err());
        assert!(endpoint_tap("abc").is_err());
    }
}
