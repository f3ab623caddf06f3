//! The settings the switch starts with: the config file with the command line laid
//! over it (the flags win).

use std::path::PathBuf;

use forwarder::{FdbConfig, Protection};

use super::SwitchArgs;
use crate::config::file::{self, FileConfig};
use crate::config::specs::{ClusterSpec, HostPortSpec, NetworkSpec, PortSpec};
use crate::config::Settings;

/// The file's entries with the command line's laid over them: an entry of the command
/// line replaces the file's entry with the same key.
fn merge<T: Clone>(mut from_file: Vec<T>, from_flags: &[T], key: impl Fn(&T) -> &str) -> Vec<T> {
    for flag in from_flags {
        from_file.retain(|f| key(f) != key(flag));
        from_file.push(flag.clone());
    }
    from_file
}

fn file_ports(ports: &[file::FilePort]) -> Result<Vec<PortSpec>, String> {
    ports.iter().map(|p| p.to_spec()).collect()
}

impl Settings {
    /// Merges `args` over the file it names (if any).
    pub fn from_args(args: &SwitchArgs) -> Result<Settings, String> {
        let file = match &args.config {
            Some(path) => file::read(path)?,
            None => FileConfig::default(),
        };
        let cluster = cluster_spec(args, &file)?;
        let defaults = FdbConfig::default();
        let hold = args
            .mac_move_hold_down
            .or(file.mac_move_hold_down.as_ref().map(|h| *h.get_ref()));
        let fdb = FdbConfig {
            max_entries: args
                .fdb_max
                .or(file.fdb_max.as_ref().map(|m| *m.get_ref()))
                .unwrap_or(defaults.max_entries),
            aging_ms: args
                .fdb_aging
                .or(file.fdb_aging)
                .map_or(defaults.aging_ms, |s| s.saturating_mul(1000)),
            move_hold_down_ms: hold.map_or(defaults.move_hold_down_ms, |h| (h * 1000.0) as u64),
        };

        let file_networks: Vec<NetworkSpec> = file.network.iter().map(|n| n.to_spec()).collect();
        let networks = merge(file_networks, &args.networks, |n| &n.name);
        let ports = merge(file_ports(&file.port)?, &args.ports, |p| &p.name);
        let uplinks = merge(file_ports(&file.uplink)?, &args.uplinks, |p| &p.name);
        let mut host_ports: Vec<HostPortSpec> = Vec::new();
        for h in &file.host_port {
            host_ports.push(h.to_spec()?);
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
        if let Some(m) = args.mtu.or(file.mtu.as_ref().map(|m| *m.get_ref())) {
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
        let log_level = args.log_level.or_else(|| {
            file.log_level
                .as_ref()
                .and_then(|l| l.get_ref().parse().ok())
        });
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
            workers: args
                .workers
                .map(usize::from)
                .or(file.workers.as_ref().map(|w| *w.get_ref())),
            udp_join: !args.no_udp_join && file.udp_join.unwrap_or(true),
            arp_suppress: !args.no_arp_suppress && file.arp_suppress.unwrap_or(true),
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
            docker_plugin: args.docker_plugin.clone().or(file.docker_plugin),
            docker_plugin_dir: args.docker_plugin_dir.clone().or(file.docker_plugin_dir),
            state_dir: args.state_dir.clone().or(file.state_dir),
            cluster,
            metrics: args.metrics.or(file.metrics),
        })
    }
}

/// `--cluster` with `--node` and `--vtep` (each from the flags or the file), checked.
fn cluster_spec(args: &SwitchArgs, file: &FileConfig) -> Result<Option<ClusterSpec>, String> {
    let Some(given) = args.cluster.as_ref().or(file.cluster.as_ref()) else {
        return Ok(None);
    };
    let endpoints = ClusterSpec::parse_endpoints(given).map_err(|e| format!("cluster: {e}"))?;
    let node = args
        .node
        .clone()
        .or(file.node.clone())
        .ok_or("--cluster needs --node NAME (this host's name among the nodes)")?;
    let vtep = args.vtep.or(file.vtep).ok_or(
        "--cluster needs --vtep ADDR (this host's underlay address, where the others send)",
    )?;
    let spec = ClusterSpec {
        endpoints,
        node,
        vtep,
        port: packets::vxlan::IANA_PORT,
        ttl_secs: args.cluster_ttl.or(file.cluster_ttl).unwrap_or(10),
        prefix: args
            .cluster_prefix
            .clone()
            .or(file.cluster_prefix.clone())
            .unwrap_or_else(|| "/uswitch/v1".into()),
    };
    spec.validate()?;
    Ok(Some(spec))
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
workers = 3
udp_join = false
arp_suppress = false
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
            "--workers",
            "3",
            "--no-udp-join",
            "--no-arp-suppress",
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
        assert_eq!(from_file.workers, Some(3));
        assert!(!from_file.arp_suppress);
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
            ("workers = 0\n", "line 1, key workers"),
            ("log_level = \"loud\"\n", "line 1, key log_level"),
            (
                "[[vxlan]]\nnetwork = \"blue\"\nvni = 1\nlocal = \"198.18.1.1\"\nremote = [\"2001:2::2\"]\n",
                "line 2, key network",
            ),
            ("mtu = 20\n", "line 1, key mtu"),
            // The second entry is wrong, and its name appears earlier in the file.
            (
                "[[capture]]\nport = \"tap/0\"\nfile = \"/tmp/x\"\n[[port]]\nname = \"tap0\"\n[[port]]\nname = \"tap/0\"\n",
                "line 7, key name",
            ),
            (
                "[[uplink]]\nname = \"eth1\"\noffload = false\n",
                "offload=off applies to TAPs only",
            ),
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

    #[test]
    fn a_cluster_needs_a_node_and_a_vtep_from_the_flags_or_the_file() {
        let e = "etcd=http://198.18.100.1:2379,http://198.18.100.2:2379";
        let err = Settings::from_args(&args(&["--cluster", e, "--vtep", "198.18.100.1"]));
        assert!(err.unwrap_err().contains("--node"));
        let s = Settings::from_args(&args(&[
            "--cluster",
            e,
            "--node",
            "h1",
            "--vtep",
            "198.18.100.1",
            "--cluster-ttl",
            "5",
        ]))
        .unwrap();
        let c = s.cluster.unwrap();
        assert_eq!(c.endpoints.len(), 2);
        assert_eq!((c.ttl_secs, c.prefix.as_str()), (5, "/uswitch/v1"));
        let bad = crate::cli::Cli::try_parse_from(["uswitch", "--cluster", "consul=x"]);
        assert!(bad.is_err());
        let dir = std::env::temp_dir().join(format!("uswitch-cl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            format!("cluster = \"{e}\"\nnode = \"h2\"\nvtep = \"198.18.100.2\"\n"),
        )
        .unwrap();
        let s = Settings::from_args(&args(&["--config", file.to_str().unwrap()])).unwrap();
        assert_eq!(s.cluster.unwrap().node, "h2");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
