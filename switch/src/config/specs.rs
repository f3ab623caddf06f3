//! What a port, an uplink, a host port, a network and an overlay are, as the command
//! line, the config file and the control socket all give them: one parser and one set of
//! checks for each, so every front end refuses the same mistakes with the same words.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use packets::vxlan::{IANA_PORT, MAX_VNI, OVERHEAD_V4, OVERHEAD_V6};
use serde::{Deserialize, Serialize};

/// The network a port joins when `--port` names none.
pub const DEFAULT_NETWORK: &str = "default";
/// Linux's `IFNAMSIZ` less the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;

/// Checks a name against the kernel's `dev_valid_name`.
pub fn validate_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(format!(
            "it is {} bytes long; Linux allows at most {MAX_IFNAME_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err("'.' and '..' are not interface names".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "it contains {c:?}; names may not contain '/', ':' or whitespace"
        ));
    }
    Ok(())
}

/// `--cluster etcd=URL,... --node NAME --vtep ADDR`: this switch is a node of a cluster
/// whose state lives in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub endpoints: Vec<String>,
    pub node: String,
    pub vtep: IpAddr,
    /// The VTEP's UDP port.
    pub port: u16,
    pub ttl_secs: u64,
    pub prefix: String,
}

impl ClusterSpec {
    /// `etcd=URL[,URL...]`: the endpoints, each `http://HOST:PORT`.
    pub fn parse_endpoints(s: &str) -> Result<Vec<String>, String> {
        let list = s.strip_prefix("etcd=").ok_or_else(|| {
            format!("'{s}': give etcd=http://HOST:PORT[,http://HOST:PORT...] (the only store uswitch speaks)")
        })?;
        let endpoints: Vec<String> = list.split(',').map(str::to_string).collect();
        for e in &endpoints {
            let rest = e.strip_prefix("http://").ok_or_else(|| {
                format!("etcd endpoint '{e}': give http://HOST:PORT (TLS is not supported)")
            })?;
            let port_ok = rest
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !port_ok {
                return Err(format!("etcd endpoint '{e}': give http://HOST:PORT"));
            }
        }
        Ok(endpoints)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.node.is_empty()
            || !self
                .node
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!(
                "--node '{}': a node name is letters, digits, - _ . (it is a key in etcd)",
                self.node
            ));
        }
        if !(2..=3600).contains(&self.ttl_secs) {
            return Err(format!(
                "--cluster-ttl {}: give 2 to 3600 seconds",
                self.ttl_secs
            ));
        }
        if !self.prefix.starts_with('/') {
            return Err(format!(
                "--cluster-prefix '{}': an etcd prefix starts with /",
                self.prefix
            ));
        }
        if self.vtep.is_unspecified() || self.vtep.is_multicast() {
            return Err(format!(
                "--vtep {}: give this host's unicast underlay address",
                self.vtep
            ));
        }
        Ok(())
    }
}

/// One `--host-port NAME@NETWORK=ADDR/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPortSpec {
    pub port: PortSpec,
    pub address: String,
}

impl HostPortSpec {
    pub fn new(name: &str, network: &str, address: &str) -> Result<HostPortSpec, String> {
        let port: PortSpec = format!("{name}@{network}").parse()?;
        let (addr, prefix) = address.split_once('/').ok_or_else(|| {
            format!("host port address '{address}': give ADDR/PREFIX, such as 198.18.0.254/24")
        })?;
        let ok_prefix = |max: u8| prefix.parse::<u8>().is_ok_and(|p| (1..=max).contains(&p));
        let valid = match addr.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => ok_prefix(32),
            Ok(std::net::IpAddr::V6(_)) => ok_prefix(128),
            Err(_) => false,
        };
        if !valid {
            return Err(format!("host port address '{address}' is not ADDR/PREFIX"));
        }
        Ok(HostPortSpec {
            port,
            address: address.to_string(),
        })
    }
}

pub fn parse_host_port(s: &str) -> Result<HostPortSpec, String> {
    let (spec, address) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': give NAME@NETWORK=ADDR/PREFIX"))?;
    let (name, network) = spec
        .split_once('@')
        .ok_or_else(|| format!("'{s}': give NAME@NETWORK=ADDR/PREFIX (the network is required)"))?;
    HostPortSpec::new(name, network, address)
}

/// One `--network NAME[,subnet=CIDR][,mtu=N]` (or `[[network]]` of the config file).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: Option<String>,
    pub mtu: Option<u32>,
}

impl NetworkSpec {
    pub fn validate(&self) -> Result<(), String> {
        validate_network_name(&self.name)?;
        if let Some(s) = &self.subnet {
            crate::launcher::Subnet::parse(s)?;
        }
        if let Some(m) = self.mtu {
            if !(68..=65_535).contains(&m) {
                return Err(format!(
                    "network {}: mtu {m} is outside 68..65535",
                    self.name
                ));
            }
        }
        Ok(())
    }
}

pub fn parse_network(s: &str) -> Result<NetworkSpec, String> {
    let mut parts = s.split(',');
    let mut spec = NetworkSpec {
        name: parts.next().unwrap_or_default().to_string(),
        ..NetworkSpec::default()
    };
    for part in parts {
        match part.split_once('=') {
            Some(("subnet", v)) => spec.subnet = Some(v.to_string()),
            Some(("mtu", v)) => {
                spec.mtu = Some(
                    v.parse()
                        .map_err(|_| format!("mtu '{v}' is not a number"))?,
                );
            }
            _ => return Err(format!("'{part}': expected subnet=CIDR or mtu=N")),
        }
    }
    spec.validate()?;
    Ok(spec)
}

pub fn parse_instance(s: &str) -> Result<String, String> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || s.starts_with('.')
    {
        return Err(format!(
            "instance name '{s}' must be 1 to 64 letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(s.to_string())
}

pub fn parse_capture(s: &str) -> Result<(String, PathBuf), String> {
    let (port, file) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': give PORT=FILE, such as tap0=/tmp/tap0.pcap"))?;
    validate_ifname(port).map_err(|why| format!("port name '{port}' is not valid: {why}"))?;
    if file.is_empty() {
        return Err(format!("'{s}': the file name is empty"));
    }
    Ok((port.to_string(), PathBuf::from(file)))
}

/// One `--port NAME[@NETWORK]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub name: String,
    pub network: String,
    /// TAP offloads (virtio-net header, checksum and segmentation offload); on unless
    /// `,offload=off`.
    pub offload: bool,
    /// This port's storm-control rate (`,bum-rate=N`), instead of `--bum-rate`.
    pub bum_rate: Option<u64>,
}

impl FromStr for PortSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (head, options) = match s.split_once(',') {
            Some((head, options)) => (head, Some(options)),
            None => (s, None),
        };
        let (name, network) = match head.split_once('@') {
            Some((name, network)) => (name, network),
            None => (head, DEFAULT_NETWORK),
        };
        validate_ifname(name)
            .map_err(|why| format!("interface name '{name}' is not valid: {why}"))?;
        validate_network_name(network)?;
        let mut offload = true;
        let mut bum_rate = None;
        for opt in options.into_iter().flat_map(|o| o.split(',')) {
            match opt.split_once('=') {
                Some(("offload", "on")) => offload = true,
                Some(("offload", "off")) => offload = false,
                Some(("bum-rate", n)) => {
                    let rate = n.parse().map_err(|_| {
                        format!("bum-rate '{n}' is not a whole number of frames per second")
                    })?;
                    bum_rate = Some(rate);
                }
                _ => {
                    return Err(format!(
                        "port option '{opt}': expected offload=on, offload=off or bum-rate=N"
                    ))
                }
            }
        }
        Ok(PortSpec {
            name: name.to_string(),
            network: network.to_string(),
            offload,
            bum_rate,
        })
    }
}

impl PortSpec {
    /// Refuses what does not apply to an uplink: it always reads and writes behind the
    /// virtio-net header (the kernel hands AF_PACKET its GSO and partially checksummed
    /// packets as they are), so `offload=off` cannot be honoured there.
    pub fn check_uplink(&self) -> Result<(), String> {
        if !self.offload {
            return Err(format!(
                "--uplink {}: offload=off applies to TAPs only (an uplink always takes the \
                 kernel's offloads through PACKET_VNET_HDR); drop it",
                self.name
            ));
        }
        Ok(())
    }
}

/// Network names: 1 to 32 bytes of letters, digits, '-', '_' and '.'.
pub fn validate_network_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the network name after '@' is empty".into());
    }
    if name.len() > 32 {
        return Err(format!("network name '{name}' is longer than 32 bytes"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "network name '{name}' may only hold letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

pub fn parse_fdb_max(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("the table needs room for at least 1 entry".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}

pub fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{s}' is not a number of seconds between 0 and 86400"
        )),
    }
}

/// `--vxlan NETWORK:vni=N,local=ADDR,remote=ADDR[,remote=ADDR...][,port=P][,mtu=N]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanSpec {
    pub network: String,
    pub vni: u32,
    pub local: IpAddr,
    pub remotes: Vec<IpAddr>,
    pub port: u16,
    /// The MTU of the network's TAPs; by default the underlay's minus 50 (IPv4) or 70
    /// (IPv6).
    pub mtu: Option<u32>,
}

impl VxlanSpec {
    /// Checks what parsing alone cannot: families agree, remotes are unicast and not the
    /// local address, the VNI fits 24 bits.
    pub fn validate(&self) -> Result<(), String> {
        validate_network_name(&self.network)?;
        if self.vni > MAX_VNI {
            return Err(format!(
                "--vxlan {}: vni {} does not fit 24 bits (at most {MAX_VNI})",
                self.network, self.vni
            ));
        }
        if self.local.is_unspecified() || self.local.is_multicast() {
            return Err(format!(
                "--vxlan {}: local={} must be a unicast address of this host",
                self.network, self.local
            ));
        }
        for (i, r) in self.remotes.iter().enumerate() {
            if self.remotes[..i].contains(r) {
                return Err(format!(
                    "--vxlan {}: remote={r} is given twice; name each remote once",
                    self.network
                ));
            }
            if r.is_ipv4() != self.local.is_ipv4() {
                return Err(format!(
                    "--vxlan {}: remote={r} and local={} are not the same IP version",
                    self.network, self.local
                ));
            }
            if r.is_unspecified() || r.is_multicast() || *r == self.local {
                return Err(format!(
                    "--vxlan {}: remote={r} must be another host's unicast address",
                    self.network
                ));
            }
        }
        if self.port == 0 {
            return Err(format!("--vxlan {}: port must not be 0", self.network));
        }
        if let Some(m) = self.mtu {
            if !(68..=65_000).contains(&m) {
                return Err(format!(
                    "--vxlan {}: mtu={m} is outside 68..=65000",
                    self.network
                ));
            }
        }
        Ok(())
    }

    /// The encapsulation overhead on this spec's underlay.
    pub fn overhead(&self) -> usize {
        if self.local.is_ipv4() {
            OVERHEAD_V4
        } else {
            OVERHEAD_V6
        }
    }
}

impl FromStr for VxlanSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage =
            "expected NETWORK:vni=N,local=ADDR,remote=ADDR[,remote=ADDR...][,port=4789][,mtu=N]";
        let (network, opts) = s
            .split_once(':')
            .ok_or_else(|| format!("--vxlan {s}: {usage}"))?;
        let mut spec = VxlanSpec {
            network: network.to_string(),
            vni: u32::MAX,
            local: IpAddr::from([0, 0, 0, 0]),
            remotes: Vec::new(),
            port: IANA_PORT,
            mtu: None,
        };
        let mut have_local = false;
        for opt in opts.split(',') {
            let (key, value) = opt
                .split_once('=')
                .ok_or_else(|| format!("--vxlan {s}: {opt:?} is not KEY=VALUE; {usage}"))?;
            let bad = |what: &str| format!("--vxlan {s}: {key}={value} is not {what}");
            match key {
                "vni" => spec.vni = value.parse().map_err(|_| bad("a number"))?,
                "local" => {
                    spec.local = value.parse().map_err(|_| bad("an IP address"))?;
                    have_local = true;
                }
                "remote" => spec
                    .remotes
                    .push(value.parse().map_err(|_| bad("an IP address"))?),
                "port" => spec.port = value.parse().map_err(|_| bad("a UDP port"))?,
                "mtu" => spec.mtu = Some(value.parse().map_err(|_| bad("a number"))?),
                _ => {
                    return Err(format!(
                        "--vxlan {s}: unknown key {key:?} (vni, local, remote, port, mtu)"
                    ))
                }
            }
        }
        if spec.vni == u32::MAX {
            return Err(format!("--vxlan {s}: vni=N is missing"));
        }
        if !have_local {
            return Err(format!("--vxlan {s}: local=ADDR is missing"));
        }
        spec.validate()?;
        // A static overlay needs its remotes; a cluster network's come from the cluster
        // (through the control API, not this flag).
        if spec.remotes.is_empty() {
            return Err(format!(
                "--vxlan {}: give at least one remote=ADDR",
                spec.network
            ));
        }
        Ok(spec)
    }
}

/// The inner MTU for a spec on an underlay of `underlay_mtu`.
pub fn inner_mtu(spec: &VxlanSpec, underlay_mtu: usize) -> Result<usize, String> {
    if let Some(m) = spec.mtu {
        return Ok(m as usize);
    }
    underlay_mtu
        .checked_sub(spec.overhead())
        .filter(|&m| m >= 68)
        .ok_or_else(|| {
            format!(
                "--vxlan {}: the underlay MTU {underlay_mtu} leaves no room for the {}-byte encapsulation",
                spec.network,
                spec.overhead()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_interface_names() {
        assert!(validate_ifname("tap0").is_ok());
        assert!(validate_ifname("a23456789012345").is_ok());
        assert!(validate_ifname("a234567890123456")
            .unwrap_err()
            .contains("16 bytes"));
        assert!(validate_ifname("").is_err());
        assert!(validate_ifname("..").is_err());
        assert!(validate_ifname("tap/0").is_err());
        assert!(validate_ifname("tap 0").is_err());
        assert!(validate_ifname("tap:0").is_err());
    }

    #[test]
    fn parses_the_issue_example() {
        let s: VxlanSpec = "default:vni=42,local=198.18.1.1,remote=198.18.1.2,remote=198.18.1.3"
            .parse()
            .unwrap();
        assert_eq!(s.network, "default");
        assert_eq!(s.vni, 42);
        assert_eq!(s.local, IpAddr::from([198, 18, 1, 1]));
        assert_eq!(s.remotes.len(), 2);
        assert_eq!(s.port, 4789);
        assert_eq!(s.overhead(), 50);
        let s: VxlanSpec = "blue:vni=43,local=2001:db8::1,remote=2001:db8::2,port=8472,mtu=1400"
            .parse()
            .unwrap();
        assert_eq!((s.port, s.mtu, s.overhead()), (8472, Some(1400), 70));
        assert_eq!(inner_mtu(&s, 1500), Ok(1400));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, needle) in [
            ("default", "expected NETWORK:"),
            ("default:vni=42,remote=198.18.1.2", "local=ADDR is missing"),
            (
                "default:local=198.18.1.1,remote=198.18.1.2",
                "vni=N is missing",
            ),
            (
                "default:vni=16777216,local=198.18.1.1,remote=198.18.1.2",
                "24 bits",
            ),
            (
                "default:vni=x,local=198.18.1.1,remote=198.18.1.2",
                "not a number",
            ),
            ("default:vni=1,local=198.18.1.1", "at least one remote"),
            (
                "default:vni=1,local=198.18.1.1,remote=2001:db8::2",
                "same IP version",
            ),
            (
                "default:vni=1,local=198.18.1.1,remote=198.18.1.1",
                "another host",
            ),
            (
                "default:vni=1,local=198.18.1.1,remote=239.1.1.1",
                "another host",
            ),
            (
                "default:vni=1,local=198.18.1.1,remote=198.18.1.2,port=0",
                "port",
            ),
            (
                "default:vni=1,local=198.18.1.1,remote=198.18.1.2,port=70000",
                "UDP port",
            ),
            (
                "default:vni=1,local=198.18.1.1,remote=198.18.1.2,mtu=10",
                "68..=65000",
            ),
            (
                "default:vni=1,local=198.18.1.1,remote=198.18.1.2,ttl=3",
                "unknown key",
            ),
            (
                "default:vni=1,local=nowhere,remote=198.18.1.2",
                "an IP address",
            ),
            (
                "bad name:vni=1,local=198.18.1.1,remote=198.18.1.2",
                "network",
            ),
            (
                "default:vni=1,local=198.18.1.1,remote=198.18.1.2,remote=198.18.1.2",
                "given twice",
            ),
        ] {
            let err = spec.parse::<VxlanSpec>().unwrap_err();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn inner_mtu_follows_the_underlay() {
        let s: VxlanSpec = "n:vni=1,local=198.18.1.1,remote=198.18.1.2"
            .parse()
            .unwrap();
        assert_eq!(inner_mtu(&s, 1500), Ok(1450));
        assert_eq!(inner_mtu(&s, 9000), Ok(8950));
        assert!(inner_mtu(&s, 100).is_err());
        let s6: VxlanSpec = "n:vni=1,local=2001:db8::1,remote=2001:db8::2"
            .parse()
            .unwrap();
        assert_eq!(inner_mtu(&s6, 1500), Ok(1430));
    }
}
