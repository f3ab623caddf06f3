//! Configuration: the specs every front end shares ([`specs`]) and the TOML file laid
//! under the command line ([`file`]).

pub mod file;
pub mod specs;

use std::path::PathBuf;

use forwarder::{FdbConfig, Protection};
use log::LevelFilter;

use specs::{ClusterSpec, HostPortSpec, NetworkSpec, PortSpec, VxlanSpec};

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
    /// Forwarding threads; None: one per CPU, as ports come.
    pub workers: Option<usize>,
    /// Whether runs of UDP datagrams are joined into UDP GSO frames.
    pub udp_join: bool,
    /// Whether ARP requests and neighbour solicitations for owners behind a VXLAN remote
    /// are answered locally.
    pub arp_suppress: bool,
    pub protection: Protection,
    pub control: Option<PathBuf>,
    pub name: Option<String>,
    /// Serve Docker's network driver protocol as this plugin, its socket in this dir.
    pub docker_plugin: Option<String>,
    pub docker_plugin_dir: Option<PathBuf>,
    /// Where state that outlives the switch is kept.
    pub state_dir: Option<PathBuf>,
    /// This switch as a node of an etcd cluster.
    pub cluster: Option<ClusterSpec>,
    /// Where Prometheus scrapes `/metrics`.
    pub metrics: Option<std::net::SocketAddr>,
}
