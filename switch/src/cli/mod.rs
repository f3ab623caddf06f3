//! The command line: the switch's own options, the client subcommands ([`client`]) and
//! the settings they make with the config file ([`settings`]).

pub mod client;
pub mod rates;
pub mod settings;
pub mod top;
pub mod topology;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use log::LevelFilter;

pub use crate::config::specs::DEFAULT_NETWORK;
use crate::config::specs::{
    parse_capture, parse_fdb_max, parse_host_port, parse_instance, parse_network, parse_secs,
    ClusterSpec, HostPortSpec, NetworkSpec, PortSpec, VxlanSpec,
};

/// uswitch: a userspace Ethernet switch for container and lab networks.
///
/// Without a subcommand, runs a switch: each --port is a TAP interface whose frames uswitch
/// switches. It learns source MACs, forwards known unicast to one port and floods
/// broadcast, multicast and unknown unicast to the other ports of the same network.
/// Networks are isolated from each other. Runs until SIGINT or SIGTERM; SIGUSR1 logs the
/// counters. The subcommands talk to a running switch over its control socket.
#[derive(Debug, Parser)]
#[command(
    name = "uswitch",
    version,
    max_term_width = 100,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub switch: SwitchArgs,
}

/// Options of the switch itself.
#[derive(Debug, Clone, Default, Args)]
pub struct SwitchArgs {
    /// Attach the TAP interface NAME (created if missing and removed on exit; an existing
    /// TAP is left in place) to NETWORK (default: "default"), with offloads unless
    /// ",offload=off". Repeat for every port.
    #[arg(
        long = "port",
        value_name = "NAME[@NETWORK][,offload=off][,bum-rate=N]"
    )]
    pub ports: Vec<PortSpec>,

    /// Forget a learned MAC after SECS without frames from it (0: never) [default: 300]
    #[arg(long, value_name = "SECS")]
    pub fdb_aging: Option<u64>,

    /// Learned MACs at most per network; when full, the port holding the most entries
    /// loses its oldest one [default: 8192]
    #[arg(long, value_name = "N", value_parser = parse_fdb_max)]
    pub fdb_max: Option<usize>,

    /// A MAC seen on its port within SECS does not move to another port [default: 3]
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub mac_move_hold_down: Option<f64>,

    /// Attach the existing interface IFACE (a NIC or a veth end) to NETWORK through a
    /// promiscuous AF_PACKET socket: the network's containers appear on IFACE's LAN with
    /// their own MACs (like Docker's macvlan). Repeatable.
    #[arg(long = "uplink", value_name = "IFACE[@NETWORK][,bum-rate=N]", value_parser = parse_uplink)]
    pub uplinks: Vec<PortSpec>,

    /// A TAP left in uswitch's namespace with address ADDR/PREFIX, so this host reaches
    /// NETWORK's containers (like docker0's address). Repeatable.
    #[arg(long = "host-port", value_name = "NAME@NETWORK=ADDR/PREFIX", value_parser = parse_host_port)]
    pub host_ports: Vec<HostPortSpec>,

    /// Declare a network: its subnet (for `uswitch run` addresses) and the MTU its TAPs
    /// get. Networks named by --port only need no declaration. Repeatable.
    #[arg(long = "network", value_name = "NAME[,subnet=CIDR][,mtu=N]", value_parser = parse_network)]
    pub networks: Vec<NetworkSpec>,

    /// Join NETWORK to a VXLAN overlay (RFC 7348): frames for other hosts are
    /// encapsulated in UDP from local ADDR to each remote (IPv4 or IPv6) under VNI N;
    /// floods go to every remote. P is the UDP port (default 4789; the kernel's own
    /// default is 8472). The network's TAPs get the underlay MTU minus 50 (IPv4) or 70
    /// (IPv6) unless mtu=N or --mtu says otherwise. Repeatable, one per network.
    #[arg(
        long = "vxlan",
        value_name = "NETWORK:vni=N,local=ADDR,remote=ADDR[,remote=ADDR...][,port=P][,mtu=N]"
    )]
    pub vxlans: Vec<VxlanSpec>,

    /// The MTU of the TAPs of every overlay network that names none (default: the
    /// underlay's MTU minus the encapsulation, 50 bytes over IPv4 and 70 over IPv6).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(68..=65000))]
    pub mtu: Option<u32>,

    /// Record what PORT receives and sends into FILE (pcap). Repeatable.
    #[arg(long, value_name = "PORT=FILE", value_parser = parse_capture)]
    pub capture: Vec<(String, PathBuf)>,

    /// Read networks, ports, captures and limits from a TOML file; the command line wins.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Take over the switch running on the same control socket (--name or --control):
    /// receive its TAP, uplink, VXLAN and control socket descriptors over the socket,
    /// restore its state from the state directory, and let it exit. No frame is dropped;
    /// the old switch stays running if anything fails or its version differs.
    #[arg(long)]
    pub take_over: bool,

    /// Log level: off, error, warn, info, debug or trace (default info; RUST_LOG also works).
    #[arg(long, value_name = "LEVEL", value_parser = parse_log_level)]
    pub log_level: Option<LevelFilter>,

    /// Storm control: flooded frames (broadcast, multicast, unknown unicast) per second
    /// each port may send; the excess is dropped and counted. 0: no limit. A port's own
    /// ",bum-rate=N" overrides it [default: 20000]
    #[arg(long, value_name = "PPS")]
    pub bum_rate: Option<u64>,

    /// Loop protection: a port on which a MAC shows up while it lives behind another
    /// port within the move hold-down (frames going round a loop) is blocked for SECS.
    /// Without it, such ports are only reported.
    #[arg(long, value_name = "SECS")]
    pub loop_protect: Option<u64>,

    /// Forwarding threads, each polling its share of the ports and VXLAN endpoints
    /// [default: one per CPU uswitch may run on, started as ports come, at most one per
    /// two ports]
    #[arg(long, value_name = "N", env = "USWITCH_WORKERS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// After each frame, poll without sleeping for USECS microseconds before blocking
    /// again: lower latency for a core's worth of CPU while traffic flows [default: 0]
    #[arg(long, value_name = "USECS")]
    pub busy_poll: Option<u64>,

    /// Write UDP datagrams one by one: never join back-to-back datagrams of one flow
    /// into one UDP GSO frame (netfilter rules in a container then see every datagram)
    #[arg(long)]
    pub no_udp_join: bool,

    /// Flood every ARP request and neighbour solicitation: never answer one in the name
    /// of an address's owner behind a VXLAN remote (ARP suppression is on by default)
    #[arg(long)]
    pub no_arp_suppress: bool,

    /// Control socket path [default: /run/uswitch/uswitch.sock, or /run/uswitch/NAME.sock]
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,

    /// Serve Docker's remote network driver protocol as the plugin NAME
    /// (/run/docker/plugins/NAME.sock): `docker network create -d NAME ...` then makes
    /// uswitch networks, and containers' interfaces are TAPs uswitch holds
    #[arg(long, value_name = "NAME", value_parser = parse_instance)]
    pub docker_plugin: Option<String>,

    /// Where state that outlives the switch is kept (the Docker driver's networks and
    /// endpoints) [default: /var/lib/uswitch/NAME]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Be a node of a cluster whose state lives in etcd: overlay networks, their members
    /// and MACs, and addresses shared by every node (needs --node and --vtep)
    #[arg(long, value_name = "etcd=URL,...", value_parser = parse_cluster)]
    pub cluster: Option<String>,

    /// This node's name in the cluster (unique among the nodes)
    #[arg(long, value_name = "NAME", requires = "cluster")]
    pub node: Option<String>,

    /// This node's VXLAN tunnel endpoint: its underlay address, where the others send
    #[arg(long, value_name = "ADDR", requires = "cluster")]
    pub vtep: Option<std::net::IpAddr>,

    /// Seconds a node's records outlive it when it dies [default: 10]
    #[arg(long, value_name = "SECS", requires = "cluster")]
    pub cluster_ttl: Option<u64>,

    /// Where in etcd the cluster keeps its keys [default: /uswitch/v1]
    #[arg(long, value_name = "PREFIX", requires = "cluster")]
    pub cluster_prefix: Option<String>,

    /// Where the Docker plugin's socket goes [default: /run/docker/plugins]
    #[arg(long, value_name = "DIR", requires = "docker_plugin")]
    pub docker_plugin_dir: Option<PathBuf>,

    /// Serve Prometheus metrics on http://ADDR:PORT/metrics (per port, network, VXLAN
    /// remote, the cluster and the process), from a thread of their own
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,

    /// Instance name: picks the control socket /run/uswitch/NAME.sock, so several
    /// switches can run side by side.
    #[arg(long, value_name = "NAME", value_parser = parse_instance)]
    pub name: Option<String>,
}

/// How a client finds the switch, and how it prints.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientArgs {
    /// The switch's control socket [default: /run/uswitch/uswitch.sock]
    #[arg(long, value_name = "PATH", global = true)]
    pub control: Option<PathBuf>,

    /// The switch, by the --name it was started with (its socket is
    /// /run/uswitch/NAME.sock); --name is an alias
    #[arg(
        long = "switch",
        visible_alias = "name",
        value_name = "NAME",
        global = true,
        value_parser = parse_instance
    )]
    pub switch: Option<String>,

    /// Print JSON instead of a table
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show ports, the forwarding table or the counters
    Show {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        what: ShowWhat,
    },
    /// A live view: ports with their containers, networks and rates, networks with their
    /// FDB, VXLAN remotes, the busiest drop reason; refreshed every second (q quits)
    Top {
        #[command(flatten)]
        client: ClientArgs,
        /// Seconds between refreshes
        #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_interval)]
        interval: f64,
        /// Sort the ports by
        #[arg(long, value_enum, default_value_t = TopSort::Rx)]
        sort: TopSort,
    },
    /// Flush the forwarding table or add a static entry
    Fdb {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        what: FdbWhat,
    },
    /// Attach or detach a TAP port at runtime
    Port {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        what: PortWhat,
    },
    /// List or create networks
    Network {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        what: NetworkWhat,
    },
    /// Record what a port receives and sends (pcapng, with each frame's direction) into
    /// a file, or with FILE "-" stream it to stdout until the capture stops
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Capture {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        stop: Option<CaptureWhat>,
        /// The port
        #[arg(required = true)]
        port: Option<String>,
        /// The file to write, or - for stdout (| tshark -r -, | wireshark -k -i -)
        #[arg(required = true)]
        file: Option<PathBuf>,
        /// Stop after N frames
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Wait until the switch answers on its control socket (for scripts)
    Wait {
        #[command(flatten)]
        client: ClientArgs,
        /// Give up after SECS
        #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = parse_secs)]
        timeout: f64,
    },
    /// Start a container: a network namespace with one interface per network
    Run(RunArgs),
    /// List containers
    Ps {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove containers: their namespaces and their ports
    Rm {
        #[command(flatten)]
        client: ClientArgs,
        /// The containers
        #[arg(value_name = "CONTAINER", required = true)]
        containers: Vec<String>,
    },
    /// Run a command in containers, one after the other (the exit code is the first
    /// failure's)
    Exec {
        #[command(flatten)]
        client: ClientArgs,
        /// The containers
        #[arg(value_name = "CONTAINER", required = true)]
        containers: Vec<String>,
        /// The command and its arguments
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaptureWhat {
    /// End the capture on a port
    Stop {
        #[arg(value_name = "PORT")]
        port: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShowWhat {
    /// Ports: name, network, state, MTU, offloads, counters
    Ports,
    /// The forwarding table: MAC, port, age, static
    Fdb {
        /// Only this network
        #[arg(long, value_name = "NETWORK")]
        network: Option<String>,
    },
    /// Counters per port and per drop reason, and per network
    Stats,
    /// VXLAN endpoints, their VNIs and remotes, with counters and drops by reason
    Vxlan,
    /// The outbound NAT uswitch keeps for its Docker and CNI networks
    Nat,
    /// The containers CNI runtimes attached (uswitch-cni)
    Cni,
    /// The cluster as this node sees it: nodes, networks and members, MACs, etcd's state
    Cluster,
    /// Who holds which address (heard on local ports or advertised by the cluster): what
    /// ARP suppression answers from
    Neighbors {
        /// Only this network
        #[arg(long, value_name = "NETWORK")]
        network: Option<String>,
    },
    /// What is connected to what: networks, ports and the containers behind them, host
    /// ports, uplinks, VXLAN remotes and cluster nodes, with rates on the edges
    Topology {
        /// dot (Graphviz), svg (rendered by Graphviz's dot) or json
        #[arg(long, value_enum, default_value_t = TopologyFormat::Dot)]
        format: TopologyFormat,
        /// Seconds over which the rates are measured (0: no rates, answer at once)
        #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_rate_window)]
        rates_over: f64,
    },
}

/// `show topology --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TopologyFormat {
    Dot,
    Svg,
    Json,
}

/// `top --sort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TopSort {
    Rx,
    Tx,
    Drops,
    Name,
    Network,
}

fn parse_seconds(s: &str, min: f64) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(min..=3600.0).contains(&v) {
        return Err(format!("{v} s is out of range: give {min} to 3600"));
    }
    Ok(v)
}

fn parse_interval(s: &str) -> Result<f64, String> {
    parse_seconds(s, 0.1)
}

fn parse_rate_window(s: &str) -> Result<f64, String> {
    parse_seconds(s, 0.0)
}

#[derive(Debug, Subcommand)]
pub enum FdbWhat {
    /// Forget learned entries (static ones stay)
    Flush {
        /// Only this network
        #[arg(long, value_name = "NETWORK")]
        network: Option<String>,
    },
    /// Add a static entry: never aged or evicted, not counted against the limit
    Add {
        /// The MAC address, such as 02:00:00:00:00:01
        mac: String,
        /// The port it lives behind
        port: String,
    },
    /// Remove the entry (static or learned) of a MAC
    Del {
        /// The MAC address
        mac: String,
        /// Only in this network (default: every network that has it)
        #[arg(long, value_name = "NETWORK")]
        network: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PortWhat {
    /// Attach a TAP (created if missing)
    Add {
        #[arg(value_name = "NAME[@NETWORK]")]
        spec: PortSpec,
        /// Who is behind the port (a VM, a lab host): what show ports, top and the
        /// topology name
        #[arg(long, value_name = "NAME")]
        owner: Option<String>,
    },
    /// Detach a port (a TAP uswitch created disappears)
    Del {
        #[arg(id = "port", value_name = "PORT")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NetworkWhat {
    /// List networks
    Ls,
    /// Create a network, with the subnet containers get addresses from
    Create {
        #[arg(id = "network", value_name = "NETWORK")]
        name: String,
        /// An IPv4 subnet such as 198.18.0.0/24
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
        /// Join the network to a VXLAN overlay with this VNI (with --remote, or --cluster)
        #[arg(long, value_name = "N")]
        vni: Option<u32>,
        /// Make it a cluster network, in etcd: every node of the switch's cluster sees it,
        /// and its members and addresses are the cluster's
        #[arg(long, requires = "vni", conflicts_with_all = ["remotes", "local", "vxlan_port"])]
        cluster: bool,
        /// A remote VTEP of the overlay; repeat for each host
        #[arg(long = "remote", value_name = "ADDR", requires = "vni")]
        remotes: Vec<std::net::IpAddr>,
        /// The local underlay address (default: the switch's only VXLAN endpoint's)
        #[arg(long, value_name = "ADDR", requires = "vni")]
        local: Option<std::net::IpAddr>,
        /// The overlay's UDP port (default: the endpoint's, else 4789)
        #[arg(long = "vxlan-port", value_name = "PORT", requires = "vni")]
        vxlan_port: Option<u16>,
        /// The MTU of the network's TAPs (default: underlay MTU minus 50 or 70)
        #[arg(long, value_name = "N", requires = "vni")]
        mtu: Option<u32>,
    },
    /// Remove a network (its overlay's remotes go with it; other ports must go first)
    Rm {
        #[arg(id = "network", value_name = "NETWORK")]
        name: String,
    },
}

/// `--cluster etcd=URL,...`, checked (and parsed again into the settings).
fn parse_cluster(s: &str) -> Result<String, String> {
    ClusterSpec::parse_endpoints(s).map(|_| s.to_string())
}

/// `uswitch run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The container's name (and its namespace's): 1 to 11 letters, digits, '-' or '_'
    #[arg(long)]
    pub name: String,
    /// A network to join; repeat for several (eth0, eth1, ... in order)
    #[arg(long = "network", value_name = "NETWORK", required = true)]
    pub networks: Vec<String>,
    /// The address of the interface on the network of the same position (default: the
    /// next free address of that network's subnet)
    #[arg(long = "ip", value_name = "ADDR/PREFIX")]
    pub ips: Vec<String>,
    /// The switch's control socket
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// The switch, by its --name (here --name names the container, as in docker run)
    #[arg(long = "switch", value_name = "NAME", value_parser = parse_instance)]
    pub switch: Option<String>,
    /// Print the container as JSON
    #[arg(long)]
    pub json: bool,
    /// A command to run inside once the container is up (in the foreground)
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

impl SwitchArgs {
    /// Refuses combinations no single flag can check.
    pub fn validate(&self) -> Result<(), String> {
        let names: Vec<&str> = self
            .ports
            .iter()
            .chain(&self.uplinks)
            .chain(self.host_ports.iter().map(|h| &h.port))
            .map(|p| p.name.as_str())
            .collect();
        for (i, p) in names.iter().enumerate() {
            if names[..i].contains(p) {
                return Err(format!(
                    "port {p} is given twice; each --port, --uplink and --host-port needs its own interface"
                ));
            }
        }
        for (port, _) in &self.capture {
            if !names.contains(&port.as_str()) {
                return Err(format!(
                    "--capture names port {port}, which no --port attaches"
                ));
            }
        }
        Ok(())
    }
}

/// `--uplink`: a port spec that an uplink can honour.
fn parse_uplink(s: &str) -> Result<PortSpec, String> {
    let spec: PortSpec = s.parse()?;
    spec.check_uplink()?;
    Ok(spec)
}

/// `--log-level`: one of the levels, or an error listing them.
fn parse_log_level(s: &str) -> Result<LevelFilter, String> {
    s.parse().map_err(|_| {
        format!("'{s}' is not a log level: give off, error, warn, info, debug or trace")
    })
}

/// Squeezes a clap error onto one line: what is wrong, then where to read more.
pub fn one_line_error(rendered: &str) -> String {
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() || line.starts_with("tip:") {
            continue;
        }
        parts.push(line);
    }
    format!("{} (see uswitch --help)", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("uswitch").chain(args.iter().copied()))
    }

    #[test]
    fn parses_ports_and_networks() {
        let cli = parse(&[
            "--port",
            "tap0",
            "--port",
            "tap1@blue,offload=off,bum-rate=500",
        ])
        .unwrap()
        .switch;
        assert_eq!(
            cli.ports,
            vec![
                PortSpec {
                    name: "tap0".into(),
                    network: "default".into(),
                    offload: true,
                    bum_rate: None,
                },
                PortSpec {
                    name: "tap1".into(),
                    network: "blue".into(),
                    offload: false,
                    bum_rate: Some(500),
                },
            ]
        );
        assert_eq!(cli.fdb_aging, None);
        cli.validate().unwrap();
    }

    #[test]
    fn refuses_bad_arguments_in_one_line() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--port", "tap0", "--bogus"],
                "unexpected argument '--bogus'",
            ),
            (&["--port", ""], "empty"),
            (&["--port", "a234567890123456"], "at most 15"),
            (&["--port", "tap0@"], "after '@' is empty"),
            (&["--port", "tap0@bl ue"], "network name"),
            (&["--port", "tap0,offload=maybe"], "or bum-rate=N"),
            (&["--port", "tap0,bum-rate=lots"], "whole number"),
            (&["--port", "tap0", "--fdb-max", "0"], "at least 1"),
            (&["--port", "tap0", "--fdb-aging", "soon"], "--fdb-aging"),
            (
                &["--port", "tap0", "--mac-move-hold-down", "nan"],
                "seconds",
            ),
            (
                &["--port", "tap0", "--log-level", "loud"],
                "off, error, warn, info, debug or trace",
            ),
            (
                &["--uplink", "eth1,offload=off"],
                "offload=off applies to TAPs only",
            ),
        ];
        for (args, needle) in cases {
            let err = parse(args).unwrap_err();
            let line = one_line_error(&err.render().to_string());
            assert!(!line.contains('\n'), "{line}");
            assert!(line.contains(needle), "{args:?}: {line}");
        }
    }

    #[test]
    fn refuses_a_port_given_twice() {
        let cli = parse(&["--port", "tap0", "--port", "tap0@blue"])
            .unwrap()
            .switch;
        assert!(cli.validate().unwrap_err().contains("given twice"));
        let cli = parse(&["--port", "tap0", "--capture", "tap1=/tmp/x.pcap"])
            .unwrap()
            .switch;
        assert!(cli.validate().unwrap_err().contains("no --port"));
    }

    #[test]
    fn parses_client_subcommands() {
        let cli = parse(&["show", "ports", "--json", "--name", "lab"]).unwrap();
        match cli.command {
            Some(Command::Show {
                client,
                what: ShowWhat::Ports,
            }) => {
                assert!(client.json);
                assert_eq!(client.switch.as_deref(), Some("lab"));
            }
            other => panic!("{other:?}"),
        }
        let cli = parse(&[
            "run",
            "--name",
            "c1",
            "--network",
            "a",
            "--network",
            "b",
            "--",
            "sleep",
            "1",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Run(r)) => {
                assert_eq!(r.networks, vec!["a", "b"]);
                assert_eq!(r.cmd, vec!["sleep", "1"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["--port", "tap0", "show", "ports"]).is_err());
    }
}
