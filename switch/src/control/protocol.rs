//! The control protocol, shared by the server and every client: one JSON request line
//! (`{"v":1,"cmd":"show_ports"}`), one JSON response (`{"ok":true,"data":...}` or
//! `{"ok":false,"error":"..."}`). Each request's answer is a typed struct here, so the
//! server and the clients cannot disagree on a field.

use std::collections::BTreeMap;
use std::net::IpAddr;

use forwarder::{DropReason, PortCounters};
use serde::{Deserialize, Serialize};

pub use crate::launcher::Container;

/// The version this build speaks. A request that names another is refused with a
/// message saying so; one that names none is taken as this version.
pub const PROTOCOL_VERSION: u32 = 1;

/// Milliseconds since the Unix epoch: the clock of the protocol's wall-clock fields
/// (`ClusterStatus::lease_answered_ms`).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A request with its protocol version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(default, rename = "v", skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(flatten)]
    pub request: Request,
}

impl Envelope {
    pub fn new(request: Request) -> Envelope {
        Envelope {
            version: Some(PROTOCOL_VERSION),
            request,
        }
    }

    /// Parses one request line, refusing another protocol version with a clear error.
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        let env: Envelope = serde_json::from_slice(line).map_err(|e| {
            format!(
                "bad request: {e} (expected one JSON object such as {{\"cmd\":\"show_ports\"}})"
            )
        })?;
        match env.version {
            None | Some(PROTOCOL_VERSION) => Ok(env.request),
            Some(v) => Err(format!(
                "this switch speaks control protocol version {PROTOCOL_VERSION}, the client \
                 version {v}: use the uswitch client of the same release"
            )),
        }
    }
}

/// One request to the running switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    ShowPorts,
    ShowFdb {
        network: Option<String>,
        /// Only entries on local ports (not on VXLAN remotes): what the cluster agent
        /// advertises, without a hundred thousand remote entries in every answer.
        #[serde(default)]
        local: bool,
    },
    ShowStats,
    NetworkLs,
    NetworkCreate {
        name: String,
        subnet: Option<String>,
        /// Joins the new network to a VXLAN overlay.
        #[serde(default)]
        overlay: Option<OverlayRequest>,
        /// The MTU the network's TAPs get.
        #[serde(default)]
        mtu: Option<u32>,
    },
    NetworkRm {
        name: String,
    },
    ShowVxlan,
    FdbFlush {
        network: Option<String>,
    },
    FdbAdd {
        mac: String,
        port: String,
    },
    FdbDel {
        mac: String,
        network: Option<String>,
    },
    PortAdd {
        name: String,
        network: String,
        #[serde(default = "offload_on")]
        offload: bool,
        #[serde(default)]
        bum_rate: Option<u64>,
        /// The TAP outlives uswitch (a container's interface, kept across restarts).
        #[serde(default)]
        persistent: bool,
        /// Who is behind the port (`docker:ENDPOINT`): what `show ports` names.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
    },
    /// Attaches again a persistent TAP that now lives in the namespace `netns`, found by
    /// its MAC: a container's interface, after uswitch restarted.
    PortReopen {
        name: String,
        network: String,
        netns: String,
        mac: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
    },
    PortDel {
        name: String,
    },
    /// A TAP left in the switch's namespace with these addresses (`ADDR/PREFIX`): the
    /// host's door into the network, a Docker network's gateway.
    HostPortAdd {
        name: String,
        network: String,
        addresses: Vec<String>,
    },
    /// Records a port's traffic into `file` (a path on the switch's side).
    Capture {
        port: String,
        file: String,
        count: Option<u64>,
    },
    /// Ends the capture on a port.
    CaptureStop {
        port: String,
    },
    ContainerAdd {
        name: String,
        networks: Vec<String>,
        ips: Vec<Option<String>>,
    },
    ContainerRm {
        name: String,
    },
    ContainerLs,
    /// Answers once the switch is up: what `uswitch wait` asks.
    Ping,
    /// The outbound NAT now in force (the Docker driver says it after each change).
    NatSet {
        rules: Vec<NatRule>,
    },
    /// What `NatSet` last said, and the CNI networks' NAT: `uswitch show nat`.
    ShowNat,
    /// The switch's half of a CNI `ADD`: the network (created when absent), its gateway
    /// host port and NAT, and a persistent TAP for the container, remembered in the state
    /// directory so that a restart reopens it where it lives.
    CniAdd {
        attachment: Box<CniAttachment>,
    },
    /// The switch's half of a CNI `DEL`: the attachment's TAP deleted and forgotten.
    /// Nothing to remove is no error (DEL is idempotent).
    CniDel {
        container_id: String,
        ifname: String,
    },
    /// Every CNI attachment (for `CHECK` and `GC`).
    CniLs,
    /// Adds `remote` to the flood list of overlay network `network` (the cluster agent).
    OverlayRemoteAdd {
        network: String,
        remote: IpAddr,
    },
    /// Takes `remote` (its port, and the entries behind it) off `network`'s overlay.
    OverlayRemoteDel {
        network: String,
        remote: IpAddr,
    },
    /// The cluster as this node sees it: `uswitch show cluster`.
    ShowCluster,
    /// Hand this switch's descriptors and state over to the uswitch asking (`uswitch
    /// --take-over`), then exit. Refused when the handover state `version` is not this
    /// build's.
    TakeOver {
        version: u32,
        release: String,
    },
    /// Who holds which address, per network: what ARP suppression answers from.
    ShowNeighbors {
        #[serde(default)]
        network: Option<String>,
        /// Only the claims heard on local ports (what the cluster agent advertises).
        #[serde(default)]
        local: bool,
    },
    /// The addresses other nodes advertise on `network` (the cluster agent), replacing
    /// those it gave before.
    NeighborSet {
        network: String,
        neighbors: Vec<Neighbor>,
    },
    /// Everything the observers read at once (`--metrics`, `uswitch top`, `show
    /// topology`): ports with who is behind them, networks, VXLAN endpoints and the
    /// cluster, all from one moment of the loop.
    Observe,
}

/// An address and the MAC that holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neighbor {
    pub ip: IpAddr,
    pub mac: String,
}

/// A row of `show neighbors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborRow {
    pub network: String,
    pub ip: IpAddr,
    pub mac: String,
    /// "local" (heard on a local port) or "cluster" (advertised by another node).
    pub origin: String,
    /// The port the MAC is behind now, if the FDB knows.
    pub port: Option<String>,
}

/// What `show cluster` says: where etcd is, this node's lease, the nodes, the cluster
/// networks and their members, and the MACs advertised and installed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node: String,
    /// The switch's pid: a client reaches etcd from the switch's network namespace.
    pub pid: u32,
    pub vtep: String,
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// "connecting", "connected", or "unreachable: why".
    pub etcd: String,
    pub lease: Option<i64>,
    pub revision: i64,
    /// Node name -> its VTEP.
    pub nodes: BTreeMap<String, String>,
    pub networks: Vec<ClusterNetworkRow>,
    pub advertised_macs: usize,
    pub remote_macs: usize,
    pub addresses: usize,
    /// When etcd last answered the lease's keep-alive (milliseconds since the Unix
    /// epoch): the lease's age is now minus this.
    #[serde(default)]
    pub lease_answered_ms: Option<u64>,
    /// The newest revision etcd has told this node of; `revision` is the one the switch
    /// was last brought in line with, so their difference is how far the node lags.
    #[serde(default)]
    pub etcd_revision: i64,
}

impl ClusterStatus {
    /// The node whose VTEP is `remote` (an underlay address; the nodes' VTEPs are
    /// `ADDR:PORT`, and an IPv6 ADDR holds colons of its own).
    pub fn node_of(&self, remote: &str) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(_, vtep)| vtep_addr(vtep) == remote)
            .map(|(n, _)| n.as_str())
    }
}

/// The address of a node's `ADDR:PORT` VTEP.
pub fn vtep_addr(vtep: &str) -> &str {
    vtep.rsplit_once(':').map_or(vtep, |(a, _)| a)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNetworkRow {
    pub name: String,
    pub vni: u32,
    pub subnet: Option<String>,
    pub members: Vec<String>,
}

/// One container interface a CNI runtime asked for, as the switch keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CniAttachment {
    /// `CNI_CONTAINERID` and `CNI_IFNAME`: the attachment's key.
    pub container_id: String,
    pub ifname: String,
    /// The configuration's `name` (GC looks at one configuration's attachments).
    pub config: String,
    /// The uswitch network, its subnet and MTU (used when it has to be created).
    pub network: String,
    pub subnet: Option<String>,
    pub mtu: Option<u32>,
    /// Gateways from IPAM (`ADDR/PREFIX`), served by the network's host port.
    pub gateways: Vec<String>,
    /// Masquerade the subnet when it leaves through another interface.
    pub ip_masq: bool,
    /// `CNI_NETNS` and the MAC the interface has there (found by it after a restart).
    pub netns: String,
    pub mac: String,
    /// The TAP's name on the switch's side.
    pub port: String,
    /// The addresses IPAM gave (`ADDR/PREFIX`).
    pub ips: Vec<String>,
}

pub use crate::firewall::NatRule;

/// `uswitch network create ... --vni N --remote ADDR ...`: what the client knows of the
/// overlay; the switch fills in the local address and port from its endpoint when there
/// is exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlayRequest {
    pub vni: u32,
    pub remotes: Vec<IpAddr>,
    #[serde(default)]
    pub local: Option<IpAddr>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub mtu: Option<u32>,
}

fn offload_on() -> bool {
    true
}

/// The switch's answer: `data` on success, `error` (one line) on failure. `data` is the
/// request's reply struct below, serialized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: impl Serialize) -> Response {
        match serde_json::to_value(data) {
            Ok(data) => Response {
                ok: true,
                error: None,
                data,
            },
            Err(e) => Response::err(format!("the answer could not be written: {e}")),
        }
    }

    pub fn err(msg: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(msg.into()),
            data: serde_json::Value::Null,
        }
    }
}

/// A port's counters, drops by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    #[serde(default)]
    pub forwarded: u64,
    pub floods: u64,
    /// ARP requests and neighbour solicitations the switch answered in the owner's name.
    #[serde(default)]
    pub answered: u64,
    pub mac_moves: u64,
    pub mac_moves_held: u64,
    pub loop_suspicions: u64,
    pub drops: BTreeMap<String, u64>,
}

impl From<&PortCounters> for Counters {
    fn from(c: &PortCounters) -> Counters {
        Counters {
            rx_frames: c.rx_frames,
            rx_bytes: c.rx_bytes,
            tx_frames: c.tx_frames,
            tx_bytes: c.tx_bytes,
            forwarded: c.forwarded,
            floods: c.floods,
            answered: c.answered,
            mac_moves: c.mac_moves,
            mac_moves_held: c.mac_moves_held,
            loop_suspicions: c.loop_suspicions,
            drops: DropReason::ALL
                .iter()
                .map(|r| (r.name().to_string(), c.drops(*r)))
                .collect(),
        }
    }
}

impl Counters {
    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }

    /// Drops with a non-zero count, as `reason=n ...` (or `-`).
    pub fn nonzero_drops(&self) -> String {
        let drops: Vec<String> = self
            .drops
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(r, n)| format!("{r}={n}"))
            .collect();
        if drops.is_empty() {
            "-".into()
        } else {
            drops.join(" ")
        }
    }
}

/// A row of `show ports`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortRow {
    pub name: String,
    pub network: String,
    /// "tap", "uplink" or "vxlan".
    pub kind: String,
    /// "up", "down" (the last write found the interface down) or "blocked" (loop
    /// protection).
    pub state: String,
    pub bum_rate: u64,
    /// Times the port was taken out of the poll for flooding far beyond its rate.
    pub storm_rests: u64,
    pub mtu: usize,
    pub offloads: Vec<String>,
    pub created: bool,
    pub capture: Option<String>,
    /// The worker that reads the port (a VXLAN remote: the worker that reads its
    /// endpoint).
    #[serde(default)]
    pub worker: usize,
    pub counters: Counters,
    /// Who is behind the port: a launcher container, a CNI container, a Docker
    /// endpoint, or the host (a gateway's host port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// `observe`: one moment of the whole switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub pid: u32,
    pub version: String,
    /// Milliseconds on the switch's own clock: rates are deltas over this.
    pub now_ms: u64,
    pub ports: Vec<PortRow>,
    pub networks: Vec<NetworkRow>,
    pub vxlan: Vec<EndpointRow>,
    pub cluster: Option<ClusterStatus>,
    pub unattached_drops: u64,
}

/// A row of `show fdb`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FdbRow {
    pub network: String,
    pub mac: String,
    pub port: String,
    pub age_secs: Option<f64>,
    #[serde(rename = "static")]
    pub is_static: bool,
}

/// A row of `network ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRow {
    pub name: String,
    pub subnet: Option<String>,
    pub ports: Vec<String>,
    pub fdb_entries: usize,
    pub fdb_static: usize,
    pub fdb_evictions: u64,
    pub fdb_expired: u64,
}

/// One port's counters in `show stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStats {
    pub name: String,
    pub network: String,
    #[serde(flatten)]
    pub counters: Counters,
}

/// `show stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub ports: Vec<PortStats>,
    pub networks: Vec<NetworkRow>,
    /// Overlay datagrams per endpoint, and what was refused before reaching a remote.
    #[serde(default)]
    pub endpoints: Vec<EndpointStats>,
    /// Frames read from a port in the burst it was detached in.
    #[serde(default)]
    pub unattached_drops: u64,
}

/// One endpoint's counters in `show stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointStats {
    pub endpoint: String,
    pub counters: Counters,
}

/// A remote of a VNI in `show vxlan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRow {
    pub remote: String,
    pub port: Option<String>,
    pub counters: Option<Counters>,
}

/// A VNI of an endpoint in `show vxlan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VniRow {
    pub vni: u32,
    pub network: String,
    pub mtu: usize,
    pub peers: Vec<PeerRow>,
}

/// An endpoint in `show vxlan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRow {
    pub local: String,
    pub port: u16,
    pub underlay: String,
    pub underlay_mtu: usize,
    pub source_ports: Vec<u16>,
    pub udp_gro: bool,
    /// The worker that reads the endpoint's socket.
    #[serde(default)]
    pub worker: usize,
    pub counters: Counters,
    pub segments: Vec<VniRow>,
}

/// `fdb flush`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flushed {
    pub flushed: usize,
}

/// `fdb add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbAdded {
    pub network: String,
    pub mac: String,
    pub port: String,
}

/// `fdb del`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbRemoved {
    pub mac: String,
    pub removed: usize,
}

/// `port add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortAdded {
    pub name: String,
    pub network: String,
    pub created: bool,
    pub mtu: usize,
}

/// `port del`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRemoved {
    pub name: String,
    pub removed_tap: bool,
}

/// `capture` and `capture stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureReply {
    pub port: String,
    pub file: String,
    pub count: Option<u64>,
    /// Frames recorded, once the capture has stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u64>,
}

/// `network create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkCreated {
    pub name: String,
    pub subnet: Option<String>,
    pub vni: Option<u32>,
    pub mtu: Option<usize>,
}

/// `network rm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRemoved {
    pub name: String,
    pub ports: Vec<String>,
}

/// `run`: the container, and the switch's pid (the launcher moves the TAPs out of the
/// switch's namespace, which it finds by pid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerAdded {
    #[serde(flatten)]
    pub container: Container,
    pub switch_pid: u32,
}

/// CNI `DEL`: whether there was such an attachment, and whether its TAP went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniRemoved {
    pub removed: bool,
    pub removed_tap: bool,
}

/// `ping`: the switch is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    pub pid: u32,
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json() {
        let req = Request::PortAdd {
            name: "tap0".into(),
            network: "blue".into(),
            offload: true,
            bum_rate: None,
            persistent: false,
            owner: Some("web".into()),
        };
        let line = serde_json::to_vec(&Envelope::new(req.clone())).unwrap();
        assert_eq!(Envelope::parse(&line), Ok(req));
        let bare = br#"{"cmd":"show_fdb","network":null}"#;
        assert_eq!(
            Envelope::parse(bare),
            Ok(Request::ShowFdb {
                network: None,
                local: false
            })
        );
    }

    #[test]
    fn hostile_requests_get_clear_errors() {
        for (line, needle) in [
            (&br#"{"cmd":"show_ports","v":2}"#[..], "version 1"),
            (br#"{"cmd":"reboot"}"#, "unknown variant"),
            (br#"{"cmd":"port_del"}"#, "missing field"),
            (
                br#"{"cmd":"port_del","name":"a","extra":1}"#,
                "unknown field",
            ),
            (br#"[1,2]"#, "bad request"),
            (b"\xff\xfe", "bad request"),
        ] {
            let err = Envelope::parse(line).unwrap_err();
            assert!(err.contains(needle), "{line:?}: {err}");
        }
    }

    #[test]
    fn counters_keep_their_json_shape() {
        let mut c = PortCounters::default();
        c.rx_frames = 3;
        c.count_drop(DropReason::Runt);
        let v = serde_json::to_value(Counters::from(&c)).unwrap();
        assert_eq!(v["rx_frames"], 3);
        assert_eq!(v["drops"]["runt"], 1);
        assert_eq!(v["drops"]["egress_full"], 0);
        let back: Counters = serde_json::from_value(v).unwrap();
        assert_eq!(back.total_drops(), 1);
        assert_eq!(back.nonzero_drops(), "runt=1");
    }
}
