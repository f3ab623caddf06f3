//! The configuration file (`--config FILE.toml`): everything in it can be said with flags
//! too (`cli::settings` lays the flags over it). Each entry is checked with the same
//! parser as its flag, and an error names the line of the entry that is wrong.
//!
//! ```toml
//! fdb_aging = 300
//! fdb_max = 8192
//! mac_move_hold_down = 3.0
//! workers = 2              # forwarding threads (default: one per CPU, as ports come)
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

use log::LevelFilter;
use serde::Deserialize;
use toml::Spanned;

use super::specs::{HostPortSpec, NetworkSpec, PortSpec, VxlanSpec, DEFAULT_NETWORK};

/// The file as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub fdb_aging: Option<u64>,
    pub fdb_max: Option<Spanned<usize>>,
    pub mac_move_hold_down: Option<Spanned<f64>>,
    pub log_level: Option<Spanned<String>>,
    pub busy_poll: Option<u64>,
    pub workers: Option<Spanned<usize>>,
    pub udp_join: Option<bool>,
    pub arp_suppress: Option<bool>,
    pub bum_rate: Option<u64>,
    pub loop_protect: Option<u64>,
    pub control: Option<PathBuf>,
    pub name: Option<String>,
    pub docker_plugin: Option<String>,
    pub docker_plugin_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    /// `metrics = "127.0.0.1:9469"`, as `--metrics`.
    pub metrics: Option<std::net::SocketAddr>,
    /// `cluster = "etcd=http://...,http://..."`, with `node`, `vtep`, `cluster_ttl`,
    /// `cluster_prefix` as the flags of the same names.
    pub cluster: Option<String>,
    pub node: Option<String>,
    pub vtep: Option<std::net::IpAddr>,
    pub cluster_ttl: Option<u64>,
    pub cluster_prefix: Option<String>,
    #[serde(default)]
    pub network: Vec<FileNetwork>,
    #[serde(default)]
    pub port: Vec<FilePort>,
    #[serde(default)]
    pub capture: Vec<FileCapture>,
    #[serde(default)]
    pub uplink: Vec<FilePort>,
    #[serde(default)]
    pub host_port: Vec<FileHostPort>,
    pub mtu: Option<Spanned<u32>>,
    #[serde(default)]
    pub vxlan: Vec<FileVxlan>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNetwork {
    pub name: Spanned<String>,
    pub subnet: Option<String>,
    pub mtu: Option<u32>,
}

impl FileNetwork {
    pub fn to_spec(&self) -> NetworkSpec {
        NetworkSpec {
            name: self.name.get_ref().clone(),
            subnet: self.subnet.clone(),
            mtu: self.mtu,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileVxlan {
    pub network: Spanned<String>,
    pub vni: u32,
    pub local: String,
    pub remote: Vec<String>,
    pub port: Option<u16>,
    pub mtu: Option<u32>,
}

impl FileVxlan {
    /// The same text --vxlan takes, so the file and the flag share one parser.
    pub fn to_spec(&self) -> Result<VxlanSpec, String> {
        let mut s = format!(
            "{}:vni={},local={}",
            self.network.get_ref(),
            self.vni,
            self.local
        );
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
pub struct FileHostPort {
    pub name: Spanned<String>,
    pub network: String,
    pub address: String,
}

impl FileHostPort {
    pub fn to_spec(&self) -> Result<HostPortSpec, String> {
        HostPortSpec::new(self.name.get_ref(), &self.network, &self.address)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePort {
    pub name: Spanned<String>,
    pub network: Option<String>,
    pub offload: Option<bool>,
    pub bum_rate: Option<u64>,
}

impl FilePort {
    pub fn to_spec(&self) -> Result<PortSpec, String> {
        let network = self.network.as_deref().unwrap_or(DEFAULT_NETWORK);
        let mut spec: PortSpec = format!("{}@{network}", self.name.get_ref()).parse()?;
        spec.offload = self.offload.unwrap_or(true);
        spec.bum_rate = self.bum_rate;
        Ok(spec)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCapture {
    pub port: String,
    pub file: PathBuf,
}

/// `line N, key K` for byte `offset` of `text`.
fn locate(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_no = text[..offset].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    match line.split_once('=') {
        Some((key, _)) => format!("line {line_no}, key {}", key.trim()),
        None => format!("line {line_no} ({line})"),
    }
}

/// Reads and checks the config file at `path`.
pub fn read(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    parse(path, &text)
}

/// Parses and checks `text`, the config file at `path`: every entry with its flag's
/// parser, an error naming the line of the entry.
pub fn parse(path: &Path, text: &str) -> Result<FileConfig, String> {
    let cfg: FileConfig = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| locate(text, s.start))
            .unwrap_or_else(|| "?".into());
        format!("config {}: {at}: {}", path.display(), e.message().trim())
    })?;
    let at = |offset: usize, msg: String| {
        format!("config {}: {}: {msg}", path.display(), locate(text, offset))
    };
    for n in &cfg.network {
        n.to_spec()
            .validate()
            .map_err(|m| at(n.name.span().start, m))?;
    }
    for p in &cfg.port {
        p.to_spec().map_err(|m| at(p.name.span().start, m))?;
    }
    for p in &cfg.uplink {
        p.to_spec()
            .and_then(|s| s.check_uplink())
            .map_err(|m| at(p.name.span().start, m))?;
    }
    for h in &cfg.host_port {
        h.to_spec().map_err(|m| at(h.name.span().start, m))?;
    }
    for v in &cfg.vxlan {
        v.to_spec().map_err(|m| at(v.network.span().start, m))?;
    }
    if let Some(m) = &cfg.mtu {
        if !(68..=65_000).contains(m.get_ref()) {
            return Err(at(
                m.span().start,
                format!("{} is outside 68..=65000", m.get_ref()),
            ));
        }
    }
    if let Some(w) = cfg
        .workers
        .as_ref()
        .filter(|w| !(1..=1024).contains(w.get_ref()))
    {
        return Err(at(
            w.span().start,
            format!(
                "{} workers: give 1 to 1024, or leave workers out for one per CPU",
                w.get_ref()
            ),
        ));
    }
    if let Some(m) = cfg.fdb_max.as_ref().filter(|m| *m.get_ref() == 0) {
        return Err(at(
            m.span().start,
            "the table needs room for at least 1 entry".into(),
        ));
    }
    if let Some(l) = &cfg.log_level {
        l.get_ref().parse::<LevelFilter>().map_err(|_| {
            at(
                l.span().start,
                format!(
                    "'{}' is not off, error, warn, info, debug or trace",
                    l.get_ref()
                ),
            )
        })?;
    }
    if let Some(h) = &cfg.mac_move_hold_down {
        let v = *h.get_ref();
        if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
            return Err(at(
                h.span().start,
                format!("{v} is not between 0 and 86400 seconds"),
            ));
        }
    }
    Ok(cfg)
}
