//! The configuration file (`--config FILE.toml`) and how it merges with the command line:
//! everything in the file can be said with flags too, and the flags win.
//!
//! ```toml
//! fdb_aging = 300
//! fdb_max = 8192
//! mac_move_hold_down = 3.0
//! control = "/run/uswitch/lab.sock"
//!
//! [[network]]
//! name = "blue"
//! subnet = "198.18.1.0/24"
//! mtu = 1400
//!
//! [[port]]
//! name = "tap0"            # network "default"
//! [[port]]
//! name = "tap1"
//! network = "blue"
//!
//! [[capture]]
//! port = "tap0"
//! file = "/tmp/tap0.pcap"
//!
//! [[vxlan]]
//! network = "blue"
//! vni = 43
//! local = "198.18.1.1"
//! remote = ["198.18.1.2"]
//! port = 4789              # optional
//! ```

use std::path::{Path, PathBuf};

use forwarder::{FdbConfig, Protection};
use log::LevelFilter;
use serde::Deserialize;

use crate::cli::{HostPortSpec, NetworkSpec, PortSpec, SwitchArgs, DEFAULT_NETWORK};
use crate::vxlan::VxlanSpec;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    fdb_aging: Option<u64>,
    fdb_max: Option<usize>,
    mac_move_hold_down: Option<f64>,
    log_level: Option<String>,
    busy_poll: Option<u64>,
    udp_join: Option<bool>,
    bum_rate: Option<u64>,
    loop_protect: Option<u64>,
    control: Option<PathBuf>,
    name: Option<String>,
    #[serde(default)]
    network: Vec<NetworkSpec>,
    #[serde(default)]
    port: Vec<FilePort>,
    #[serde(default)]
    capture: Vec<FileCapture>,
    #[serde(default)]
    uplink: Vec<FilePort>,
    #[serde(default)]
    host_port: Vec<FileHostPort>,
    mtu: Option<u32>,
    #[serde(default)]
    vxlan: Vec<FileVxlan>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVxlan {
    network: String,
    vni: u32,
    local: String,
    remote: Vec<String>,
    port: Option<u16>,
    mtu: Option<u32>,
}

impl FileVxlan {
    /// The same text --vxlan takes, so the file and the flag share one parser.
    fn to_spec(&self) -> Result<VxlanSpec, String> {
        let mut s = format!("{}:vni={},local={}", self.network, self.vni, self.local);
        for r in &self.remote {
            s.push_str(&format!(",remote={r}"));
        }
        if let Some(p) = self.port {
            s.push_str(&format!(",port={p}"));
        }
        if let Some(m) = self.mtu {
            s.push_str(&format!(",mtu={m}"));
        }
        s.parse()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHostPort {
    name: String,
    network: String,
    address: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePort {
    name: String,
    network: Option<String>,
    offload: Option<bool>,
    bum_rate: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCapture {
    port: String,
    file: PathBuf,
}

/// Everything the switch starts with, after merging the file and the flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub fdb: FdbConfig,
    pub networks: Vec<NetworkSpec>,
    pub ports: Vec<PortSpec>,
    pub uplinks: Vec<PortSpec>,
    pub host_ports: Vec<HostPortSpec>,
    /// Overlays, with --mtu already applied to those that name no MTU.
    pub vxlans: Vec<VxlanSpec>,
    pub captures: Vec<(String, PathBuf)>,
    pub log_level: Option<LevelFilter>,
    /// Microseconds of busy polling after each frame (0: none).
    pub busy_poll_us: u64,
    /// Whether runs of UDP datagrams are joined into UDP GSO frames.
    pub udp_join: bool,
    pub protection: Protection,
    pub control: Option<PathBuf>,
    pub name: Option<String>,
}

/// `line N, key K: message` for an error at byte `offset` of `text`.
fn locate(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_no = text[..offset].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    match line.split_once('=') {
        Some((key, _)) => format!("line {line_no}, key {}", key.trim()),
        None => format!("line {line_no} ({line})"),
    }
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, String> {
    let cfg: FileConfig = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| locate(text, s.start))
            .unwrap_or_else(|| "?".into());
        format!("config {}: {at}: {}", path.display(), e.message().trim())
    })?;
    let key_err = |key: &str, msg: String| {
        let offset = text.find(key).unwrap_or(0);
        format!("config {}: {}: {msg}", path.display(), locate(text, offset))
    };
    for n in &cfg.network {
        n.validate()
            .map_err(|m| key_err(&format!("\"{}\"", n.name), m))?;
    }
    for p in cfg.port.iter().chain(&cfg.uplink) {
        let network = p.network.as_deref().unwrap_or(DEFAULT_NETWORK);
        format!("{}@{network}", p.name)
            .parse::<PortSpec>()
            .map_err(|m| key_err(&format!("\"{}\"", p.name), m))?;
    }
    for h in &cfg.host_port {
        HostPortSpec::new(&h.name, &h.network, &h.address)
            .map_err(|m| key_err(&format!("\"{}\"", h.name), m))?;
    }
    for v in &cfg.vxlan {
        v.to_spec()
            .map_err(|m| key_err(&format!("\"{}\"", v.network), m))?;
    }
    if let Some(m) = cfg.mtu {
        if !(68..=65_000).contains(&m) {
            return Err(key_err("mtu", format!("{m} is outside 68..=65000")));
        }
    }
    if cfg.fdb_max == Some(0) {
        return Err(key_err(
            "fdb_max",
            "the table needs room for at least 1 entry".into(),
        ));
    }
    if let Some(l) = &cfg.log_level {
        l.parse::<LevelFilter>().map_err(|_| {
            key_err(
                "log_level",
                format!("'{l}' is not off, error, warn, info, debug or trace"),
            )
        })?;
    }
    if let Some(h) = cfg.mac_move_hold_down {
        if !(h.is_finite() && (0.0..=86_400.0).contains(&h)) {
            return Err(key_err(
                "mac_move_hold_down",
                format!("{h} is not between 0 and 86400 seconds"),
            ));
        }
    }
    Ok(cfg)
}

/// The file's entries with the command line's laid over them: an entry of the command
/// line replaces the file's entry with the same key.
fn merge<T: Clone>(mut from_file: Vec<T>, from_flags: &[T], key: impl Fn(&T) -> &str) -> Vec<T> {
    for flag in from_flags {
        from_file.retain(|f| key(f) != key(flag));
        from_file.push(flag.clone());
    }
    from_file
}

fn file_ports(ports: Vec<FilePort>) -> Vec<PortSpec> {
    ports
        .into_iter()
        .map(|p| PortSpec {
            name: p.name,
            network: p.network.unwrap_or_else(|| DEFAULT_NETWORK.to_string()),
            offload: p.offload.unwrap_or(true),
            bum_rate: p.bum_rate,
        })
        .collect()
}

impl Settings {
    /// Merges `args` over the file it names (if any).
    pub fn from_args(args: &SwitchArgs) -> Result<Settings, String> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
                parse_file(path, &text)?
            }
            None => FileConfig::default(),
        };
        let defaults = FdbConfig::default();
        let hold = args.mac_move_hold_down.or(file.mac_move_hold_down);
        let fdb = FdbConfig {
            max_entries: args
                .fdb_max
                .or(file.fdb_max)
                .unwrap_or(defaults.max_entries),
            aging_ms: args
                .fdb_aging
                .or(file.fdb_aging)
                .map_or(defaults.aging_ms, |s| s.saturating_mul(1000)),
            move_hold_down_ms: hold.map_or(defaults.move_hold_down_ms, |h| (h * 1000.0) as u64),
        };

        let networks = merge(file.network, &args.networks, |n| &n.name);
        let ports = merge(file_ports(file.port), &args.ports, |p| &p.name);
        let uplinks = merge(file_ports(file.uplink), &args.uplinks, |p| &p.name);
        let mut host_ports: Vec<HostPortSpec> = Vec::new();
        for h in &file.host_port {
            host_ports.push(HostPortSpec::new(&h.name, &h.network, &h.address)?);
        }
        for h in &args.host_ports {
            host_ports.retain(|f| f.port.name != h.port.name);
            host_ports.push(h.clone());
        }
        let mut vxlans = Vec::new();
        for v in &file.vxlan {
            vxlans.push(v.to_spec()?);
        }
        let mut vxlans = merge(vxlans, &args.vxlans, |v| &v.network);
        if let Some(m) = args.mtu.or(file.mtu) {
            for v in &mut vxlans {
                v.mtu.get_or_insert(m);
            }
        }
        let mut captures: Vec<(String, PathBuf)> =
            file.capture.into_iter().map(|c| (c.port, c.file)).collect();
        for c in &args.capture {
            captures.retain(|f| f.0 != c.0);
            captures.push(c.clone());
        }
        for (port, _) in &captures {
            let attached = ports
                .iter()
                .chain(&uplinks)
                .chain(host_ports.iter().map(|h| &h.port));
            if !attached.map(|p| &p.name).any(|n| n == port) {
                return Err(format!(
                    "a capture names port {port}, which no port attaches"
                ));
            }
        }
        let log_level = args
            .log_level
            .or_else(|| file.log_level.as_deref().and_then(|l| l.parse().ok()));
        Ok(Settings {
            fdb,
            networks,
            ports,
            uplinks,
            host_ports,
            vxlans,
            captures,
            log_level,
            busy_poll_us: args.busy_poll.or(file.busy_poll).unwrap_or(0),
            udp_join: !args.no_udp_join && file.udp_join.unwrap_or(true),
            protection: Protection {
                bum_rate: args
                    .bum_rate
                    .or(file.bum_rate)
                    .unwrap_or(Protection::default().bum_rate),
                loop_block_ms: args
                    .loop_protect
                    .or(file.loop_protect)
                    .map(|s| s.saturating_mul(1000)),
            },
            control: args.control.clone().or(file.control),
            name: args.name.clone().or(file.name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(a: &[&str]) -> SwitchArgs {
        crate::cli::Cli::try_parse_from(std::iter::once("uswitch").chain(a.iter().copied()))
            .unwrap()
            .switch
    }

    fn write(text: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "uswitch-cfg-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&p, text).unwrap();
        p
    }

    const FILE: &str = r#"
fdb_aging = 60
fdb_max = 100
busy_poll = 50
udp_join = false
bum_rate = 5000
loop_protect = 30

[[network]]
name = "blue"
subnet = "198.18.1.0/24"
mtu = 1400

[[port]]
name = "tap0"

[[port]]
name = "tap1"
network = "blue"
bum_rate = 100

[[capture]]
port = "tap0"
file = "/tmp/tap0.pcap"

[[uplink]]
name = "eth1"
network = "blue"

[[host_port]]
name = "host0"
network = "blue"
address = "198.18.1.254/24"

[[vxlan]]
network = "blue"
vni = 43
local = "198.18.1.1"
remote = ["198.18.1.2", "198.18.1.3"]
port = 8472
"#;

    #[test]
    fn a_file_equals_its_command_line() {
        let path = write(FILE);
        let from_file = Settings::from_args(&args(&["--config", path.to_str().unwrap()])).unwrap();
        let from_flags = Settings::from_args(&args(&[
            "--fdb-aging",
            "60",
            "--fdb-max",
            "100",
            "--busy-poll",
            "50",
            "--no-udp-join",
            "--bum-rate",
            "5000",
            "--loop-protect",
            "30",
            "--network",
            "blue,subnet=198.18.1.0/24,mtu=1400",
            "--port",
            "tap0",
            "--port",
            "tap1@blue,bum-rate=100",
            "--capture",
            "tap0=/tmp/tap0.pcap",
            "--uplink",
            "eth1@blue",
            "--host-port",
            "host0@blue=198.18.1.254/24",
            "--vxlan",
            "blue:vni=43,local=198.18.1.1,remote=198.18.1.2,remote=198.18.1.3,port=8472",
        ]))
        .unwrap();
        assert_eq!(from_file, from_flags);
        assert_eq!(from_file.vxlans[0].remotes.len(), 2);
        assert_eq!(from_file.fdb.aging_ms, 60_000);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn the_command_line_wins() {
        let path = write(FILE);
        let s = Settings::from_args(&args(&[
            "--config",
            path.to_str().unwrap(),
            "--fdb-max",
            "7",
            "--port",
            "tap1@red",
            "--mtu",
            "1400",
        ]))
        .unwrap();
        assert_eq!(
            s.vxlans[0].mtu,
            Some(1400),
            "--mtu reaches overlays naming none"
        );
        assert_eq!(s.fdb.max_entries, 7);
        assert_eq!(s.fdb.aging_ms, 60_000);
        let tap1: Vec<_> = s.ports.iter().filter(|p| p.name == "tap1").collect();
        assert_eq!(tap1.len(), 1);
        assert_eq!(tap1[0].network, "red");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let cases = [
            (
                "fdb_aging = 60\nfdb_max = \"lots\"\n",
                "line 2, key fdb_max",
            ),
            ("fdb_aging = 60\n\nfdb_maxx = 3\n", "line 3, key fdb_maxx"),
            (
                "[[port]]\nname = \"a234567890123456\"\n",
                "line 2, key name",
            ),
            (
                "[[network]]\nname = \"blue\"\nsubnet = \"nope\"\n",
                "line 2, key name",
            ),
            ("fdb_max = 0\n", "line 1, key fdb_max"),
            ("log_level = \"loud\"\n", "line 1, key log_level"),
            (
                "[[vxlan]]\nnetwork = \"blue\"\nvni = 1\nlocal = \"198.18.1.1\"\nremote = [\"2001:2::2\"]\n",
                "line 2, key network",
            ),
            ("mtu = 20\n", "line 1, key mtu"),
        ];
        for (text, needle) in cases {
            let path = write(text);
            let err =
                Settings::from_args(&args(&["--config", path.to_str().unwrap()])).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
            std::fs::remove_file(path).unwrap();
        }
        let err = Settings::from_args(&args(&["--config", "/nonexistent/x.toml"])).unwrap_err();
        assert!(err.contains("cannot read config"));
    }
}
