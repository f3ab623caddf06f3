//! The client subcommands: they ask the running switch over its control socket and print
//! a table (or `--json`); the launcher's subcommands also set up namespaces
//! (`launcher::netns`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::topology::{render_svg, Topology};
use super::{
    top, CaptureWhat, ClientArgs, Command, FdbWhat, NetworkWhat, PortWhat, RunArgs, ShowWhat,
    TopologyFormat,
};
use crate::control::client::{ask, call};
use crate::control::protocol::*;
use crate::control::socket_path;
use crate::launcher::netns;

/// A failed client command: one line for stderr.
type Failure = String;

fn path_of(client: &ClientArgs) -> PathBuf {
    socket_path(client.control.as_deref(), client.switch.as_deref())
}

/// Runs a client subcommand; errors are printed as one line.
pub fn run(cmd: Command) -> ExitCode {
    match dispatch(cmd) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("uswitch: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Asks, then prints the reply as JSON or through `render`.
fn show<T: DeserializeOwned + Serialize>(
    client: &ClientArgs,
    req: Request,
    render: fn(&T),
) -> Result<ExitCode, Failure> {
    let reply: T = ask(&path_of(client), &req)?;
    if client.json {
        print_json(&reply);
    } else {
        render(&reply);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_json(v: &impl Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("uswitch: error: printing the answer: {e}"),
    }
}

/// `ok key=value ...` for a reply's fields.
fn print_done<T: Serialize>(reply: &T) {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(reply) else {
        println!("ok");
        return;
    };
    let fields: Vec<String> = fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    println!("ok {}", fields.join(" "));
}

fn dispatch(cmd: Command) -> Result<ExitCode, Failure> {
    match cmd {
        Command::Show { client, what } => match what {
            ShowWhat::Topology { format, rates_over } => topology(&client, format, rates_over),
            ShowWhat::Ports => show(&client, Request::ShowPorts, |p: &Vec<_>| print_ports(p)),
            ShowWhat::Fdb { network } => {
                let req = Request::ShowFdb {
                    network,
                    local: false,
                };
                show(&client, req, |f: &Vec<_>| print_fdb(f))
            }
            ShowWhat::Stats => show(&client, Request::ShowStats, print_stats),
            ShowWhat::Vxlan => show(&client, Request::ShowVxlan, |v: &Vec<_>| print_vxlan(v)),
            ShowWhat::Nat => show(&client, Request::ShowNat, |n: &Vec<_>| print_nat(n)),
            ShowWhat::Cni => show(&client, Request::CniLs, |a: &Vec<_>| print_cni(a)),
            ShowWhat::Cluster => show(&client, Request::ShowCluster, print_cluster),
            ShowWhat::Neighbors { network } => {
                let req = Request::ShowNeighbors {
                    network,
                    local: false,
                };
                show(&client, req, |n: &Vec<_>| print_neighbors(n))
            }
        },
        Command::Fdb { client, what } => match what {
            FdbWhat::Flush { network } => {
                show::<Flushed>(&client, Request::FdbFlush { network }, print_done)
            }
            FdbWhat::Add { mac, port } => {
                // Refuse a bad address before bothering the switch.
                let parsed: packets::MacAddr = mac.parse().map_err(|e| format!("{e}"))?;
                if !parsed.is_valid_source() {
                    return Err(format!(
                        "{parsed} is a group or zero address; a static entry needs a unicast MAC"
                    ));
                }
                show::<FdbAdded>(&client, Request::FdbAdd { mac, port }, print_done)
            }
            FdbWhat::Del { mac, network } => {
                mac.parse::<packets::MacAddr>()
                    .map_err(|e| format!("{e}"))?;
                show::<FdbRemoved>(&client, Request::FdbDel { mac, network }, print_done)
            }
        },
        Command::Port { client, what } => match what {
            PortWhat::Add { spec, owner } => show::<PortAdded>(
                &client,
                Request::PortAdd {
                    name: spec.name,
                    network: spec.network,
                    offload: spec.offload,
                    bum_rate: spec.bum_rate,
                    persistent: false,
                    owner,
                },
                print_done,
            ),
            PortWhat::Del { name } => {
                show::<PortRemoved>(&client, Request::PortDel { name }, print_done)
            }
        },
        Command::Network { client, what } => match what {
            NetworkWhat::Ls => show(&client, Request::NetworkLs, |n: &Vec<_>| print_networks(n)),
            NetworkWhat::Create {
                name,
                subnet,
                vni: Some(vni),
                cluster: true,
                mtu,
                ..
            } => cluster_network(&client, name, subnet, vni, mtu),
            NetworkWhat::Create {
                vni: Some(_),
                remotes,
                ..
            } if remotes.is_empty() => Err(
                "--vni needs the overlay's --remote ADDR (one per host), or --cluster to take \
                 them from the cluster"
                    .into(),
            ),
            NetworkWhat::Create {
                name,
                subnet,
                vni,
                remotes,
                local,
                vxlan_port,
                mtu,
                ..
            } => {
                let overlay = vni.map(|vni| OverlayRequest {
                    vni,
                    remotes,
                    local,
                    port: vxlan_port,
                    mtu,
                });
                let req = Request::NetworkCreate {
                    name,
                    subnet,
                    overlay,
                    mtu: None,
                };
                show::<NetworkCreated>(&client, req, print_done)
            }
            NetworkWhat::Rm { name } => {
                show::<NetworkRemoved>(&client, Request::NetworkRm { name }, print_done)
            }
        },
        Command::Capture {
            client,
            stop: Some(CaptureWhat::Stop { port }),
            ..
        } => show::<CaptureReply>(&client, Request::CaptureStop { port }, print_done),
        Command::Capture {
            client,
            port: Some(port),
            file: Some(file),
            count,
            ..
        } => {
            if file == Path::new("-") {
                return stream_capture(&client, port, count);
            }
            // The switch writes the file: hand it an absolute path.
            let file =
                std::path::absolute(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let file = file.to_string_lossy().into_owned();
            show::<CaptureReply>(&client, Request::Capture { port, file, count }, print_done)
        }
        Command::Capture { .. } => Err("give PORT FILE, or stop PORT".into()),
        Command::Wait { client, timeout } => wait(&client, timeout),
        Command::Ps { client } => show(&client, Request::ContainerLs, |c: &Vec<_>| {
            print_containers(c)
        }),
        Command::Rm { client, containers } => rm(&client, &containers),
        Command::Exec {
            client,
            containers,
            cmd,
        } => exec(&client, &containers, &cmd),
        Command::Run(args) => launch(args),
        Command::Top {
            client,
            interval,
            sort,
        } => {
            top::run(&path_of(&client), Duration::from_secs_f64(interval), sort)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `show topology`: two observations `rates_over` apart (one when 0), drawn.
fn topology(
    client: &ClientArgs,
    format: TopologyFormat,
    rates_over: f64,
) -> Result<ExitCode, Failure> {
    let path = path_of(client);
    let first: Observation = ask(&path, &Request::Observe)?;
    let (before, now) = if rates_over > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(rates_over));
        let now: Observation = ask(&path, &Request::Observe)?;
        // A switch that restarted in between has counters of its own: no rates.
        (Some(first).filter(|f| f.pid == now.pid), now)
    } else {
        (None, first)
    };
    let t = Topology::of(&now, before.as_ref());
    match (format, client.json) {
        (TopologyFormat::Json, _) | (_, true) => print_json(&t),
        (TopologyFormat::Dot, false) => print!("{}", t.to_dot()),
        (TopologyFormat::Svg, false) => print!("{}", render_svg(&t.to_dot())?),
    }
    Ok(ExitCode::SUCCESS)
}

/// `uswitch wait`: asks until the switch answers, or the time is up.
fn wait(client: &ClientArgs, timeout: f64) -> Result<ExitCode, Failure> {
    let path = path_of(client);
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    loop {
        match ask::<Pong>(&path, &Request::Ping) {
            Ok(pong) => {
                if client.json {
                    print_json(&pong);
                }
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("no answer within {timeout} s: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// `uswitch capture PORT -`: the switch writes into a FIFO of ours, which is copied to
/// stdout until the capture ends (its count reached, `capture stop`, the port gone) or
/// stdout's reader goes away.
fn stream_capture(
    client: &ClientArgs,
    port: String,
    count: Option<u64>,
) -> Result<ExitCode, Failure> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = std::env::temp_dir().join(format!("uswitch-capture-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let fifo = dir.join("pcapng");
    let result = (|| {
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes())
            .map_err(|e| e.to_string())?;
        // SAFETY: mkfifo reads the NUL-terminated path, which outlives the call.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(format!(
                "mkfifo {}: {}",
                fifo.display(),
                std::io::Error::last_os_error()
            ));
        }
        // Open our end first (without waiting for a writer), so the switch can open its.
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(|e| format!("{}: {e}", fifo.display()))?;
        let file = fifo.to_string_lossy().into_owned();
        let _: CaptureReply = ask(&path_of(client), &Request::Capture { port, file, count })?;
        // The switch holds the other end now: read it blocking until it closes.
        set_blocking(&reader)?;
        let mut out = std::io::stdout().lock();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    if out
                        .write_all(&chunk[..n])
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        // Our reader went away: closing the FIFO ends the capture.
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("reading the capture: {e}")),
            }
        }
    })();
    let _ = std::fs::remove_file(&fifo);
    let _ = std::fs::remove_dir(&dir);
    result.map(|()| ExitCode::SUCCESS)
}

fn set_blocking(file: &std::fs::File) -> Result<(), Failure> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own, with plain integer arguments.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(format!("fcntl: {}", std::io::Error::last_os_error()))
    }
}

fn text<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

/// Prints rows under headers, columns padded to their widest cell.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn print_ports(ports: &[PortRow]) {
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.network.clone(),
                p.kind.clone(),
                p.state.clone(),
                p.mtu.to_string(),
                p.worker.to_string(),
                list(&p.offloads),
                p.counters.rx_frames.to_string(),
                p.counters.tx_frames.to_string(),
                p.counters.total_drops().to_string(),
                text(p.capture.as_ref()),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "NETWORK", "KIND", "STATE", "MTU", "WORKER", "OFFLOADS", "RX", "TX", "DROPS",
            "CAPTURE",
        ],
        &rows,
    );
}

fn print_nat(rules: &[NatRule]) {
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            vec![
                r.network.clone(),
                r.subnet.clone(),
                format!("masquerade, out of any interface but {}", r.gateway_port),
            ]
        })
        .collect();
    table(&["NETWORK", "SUBNET", "RULE"], &rows);
}

fn print_cluster(s: &ClusterStatus) {
    println!(
        "node {} (VTEP {}), etcd {} at {}, prefix {}, lease {}, revision {}",
        s.node,
        s.vtep,
        s.etcd,
        s.endpoints.join(","),
        s.prefix,
        s.lease.map_or("-".into(), |l| format!("{l:x}")),
        s.revision
    );
    println!(
        "MACs advertised {}, remote MACs installed {}, addresses held {}",
        s.advertised_macs, s.remote_macs, s.addresses
    );
    let nodes: Vec<Vec<String>> = s
        .nodes
        .iter()
        .map(|(n, v)| vec![n.clone(), v.clone()])
        .collect();
    table(&["NODE", "VTEP"], &nodes);
    let nets: Vec<Vec<String>> = s
        .networks
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.vni.to_string(),
                n.subnet.clone().unwrap_or_else(|| "-".into()),
                n.members.join(","),
            ]
        })
        .collect();
    table(&["NETWORK", "VNI", "SUBNET", "MEMBERS"], &nets);
}

/// `network create NAME --vni N --cluster`: the network made in etcd (a transaction
/// that refuses a name or a VNI already taken), then waited for until this node's agent
/// has declared it here.
fn cluster_network(
    client: &ClientArgs,
    name: String,
    subnet: Option<String>,
    vni: u32,
    mtu: Option<u32>,
) -> Result<ExitCode, Failure> {
    crate::config::specs::validate_network_name(&name)?;
    if vni == 0 || vni > packets::vxlan::MAX_VNI {
        return Err(format!(
            "--vni {vni} does not fit 24 bits (1 to {})",
            packets::vxlan::MAX_VNI
        ));
    }
    if let Some(s) = &subnet {
        crate::launcher::ipam::Subnet::parse(s)?;
    }
    let path = path_of(client);
    let status: ClusterStatus = ask(&path, &Request::ShowCluster)?;
    let record = crate::cluster::records::NetworkRecord {
        name: name.clone(),
        vni,
        subnet: subnet.clone(),
        mtu,
    };
    crate::cluster::store::create_network(&status, &record)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let nets: Vec<NetworkRow> = ask(&path, &Request::NetworkLs)?;
        if nets.iter().any(|n| n.name == name) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "cluster network {name} is in etcd, but this switch has not declared it yet \
                 (uswitch show cluster says why)"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if client.json {
        print_json(&record);
    } else {
        print_done(&record);
    }
    Ok(ExitCode::SUCCESS)
}

/// The cluster as the switch sees it, when it is a node of one.
fn cluster_of(path: &Path) -> Option<ClusterStatus> {
    ask(path, &Request::ShowCluster).ok()
}

fn print_cni(attachments: &[CniAttachment]) {
    let rows: Vec<Vec<String>> = attachments
        .iter()
        .map(|a| {
            vec![
                a.container_id.chars().take(12).collect(),
                a.ifname.clone(),
                a.network.clone(),
                a.port.clone(),
                a.mac.clone(),
                a.ips.join(","),
                a.netns.clone(),
            ]
        })
        .collect();
    table(
        &[
            "CONTAINER",
            "IFNAME",
            "NETWORK",
            "PORT",
            "MAC",
            "ADDRESSES",
            "NETNS",
        ],
        &rows,
    );
}

fn print_fdb(entries: &[FdbRow]) {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.network.clone(),
                e.mac.clone(),
                e.port.clone(),
                e.age_secs.map_or("-".into(), |a| format!("{a:.1}")),
                if e.is_static { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    table(&["NETWORK", "MAC", "PORT", "AGE", "STATIC"], &rows);
}

fn print_neighbors(entries: &[NeighborRow]) {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|n| {
            vec![
                n.network.clone(),
                n.ip.to_string(),
                n.mac.clone(),
                n.origin.clone(),
                n.port.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(&["NETWORK", "ADDRESS", "MAC", "ORIGIN", "PORT"], &rows);
}

fn print_vxlan(endpoints: &[EndpointRow]) {
    let mut rows = Vec::new();
    for ep in endpoints {
        for seg in &ep.segments {
            for peer in &seg.peers {
                let c = peer.counters.clone().unwrap_or_default();
                rows.push(vec![
                    format!("{}:{}", ep.local, ep.port),
                    seg.vni.to_string(),
                    seg.network.clone(),
                    peer.remote.clone(),
                    c.rx_frames.to_string(),
                    c.rx_bytes.to_string(),
                    c.tx_frames.to_string(),
                    c.tx_bytes.to_string(),
                    c.nonzero_drops(),
                ]);
            }
        }
    }
    table(
        &[
            "ENDPOINT",
            "VNI",
            "NETWORK",
            "REMOTE",
            "RX_FRAMES",
            "RX_BYTES",
            "TX_FRAMES",
            "TX_BYTES",
            "DROPS",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = endpoints
        .iter()
        .map(|ep| {
            vec![
                format!("{}:{}", ep.local, ep.port),
                format!("{} (mtu {})", ep.underlay, ep.underlay_mtu),
                ep.counters.rx_frames.to_string(),
                ep.counters.nonzero_drops(),
            ]
        })
        .collect();
    println!();
    table(&["ENDPOINT", "UNDERLAY", "DATAGRAMS", "REFUSED"], &rows);
}

fn print_stats(stats: &Stats) {
    let rows: Vec<Vec<String>> = stats
        .ports
        .iter()
        .map(|p| {
            let c = &p.counters;
            vec![
                p.name.clone(),
                p.network.clone(),
                c.rx_frames.to_string(),
                c.rx_bytes.to_string(),
                c.tx_frames.to_string(),
                c.tx_bytes.to_string(),
                c.floods.to_string(),
                c.mac_moves.to_string(),
                c.nonzero_drops(),
            ]
        })
        .collect();
    table(
        &[
            "PORT",
            "NETWORK",
            "RX_FRAMES",
            "RX_BYTES",
            "TX_FRAMES",
            "TX_BYTES",
            "FLOODS",
            "MOVES",
            "DROPS",
        ],
        &rows,
    );
    println!();
    print_networks(&stats.networks);
    if !stats.endpoints.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = stats
            .endpoints
            .iter()
            .map(|e| {
                vec![
                    e.endpoint.clone(),
                    e.counters.rx_frames.to_string(),
                    e.counters.nonzero_drops(),
                ]
            })
            .collect();
        table(&["ENDPOINT", "DATAGRAMS", "REFUSED"], &rows);
    }
}

fn print_networks(networks: &[NetworkRow]) {
    let rows: Vec<Vec<String>> = networks
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                text(n.subnet.as_ref()),
                list(&n.ports),
                n.fdb_entries.to_string(),
                n.fdb_static.to_string(),
                n.fdb_evictions.to_string(),
            ]
        })
        .collect();
    table(
        &["NETWORK", "SUBNET", "PORTS", "FDB", "STATIC", "EVICTIONS"],
        &rows,
    );
}

fn print_containers(containers: &[Container]) {
    let rows: Vec<Vec<String>> = containers
        .iter()
        .map(|c| {
            let nets: Vec<String> = c
                .interfaces
                .iter()
                .map(|i| format!("{}:{}", i.ifname, i.network))
                .collect();
            let addrs: Vec<String> = c
                .interfaces
                .iter()
                .map(|i| text(i.address.as_ref()))
                .collect();
            vec![
                c.name.clone(),
                c.netns.clone(),
                nets.join(" "),
                addrs.join(" "),
            ]
        })
        .collect();
    table(&["NAME", "NETNS", "NETWORKS", "ADDRESSES"], &rows);
}

fn launch(args: RunArgs) -> Result<ExitCode, Failure> {
    let path = socket_path(args.control.as_deref(), args.switch.as_deref());
    if args.ips.len() > args.networks.len() {
        return Err("more --ip than --network: give at most one address per network".into());
    }
    if netns::exists(&args.name) {
        return Err(format!(
            "a network namespace named {0} exists already (uswitch rm {0}, or ip netns del {0} \
             if it is nobody's)",
            args.name
        ));
    }
    let mut ips: Vec<Option<String>> = args.ips.iter().cloned().map(Some).collect();
    ips.resize(args.networks.len(), None);
    // On a cluster network the address is the cluster's: taken in etcd first.
    let cluster = cluster_of(&path);
    let mut taken = Vec::new();
    if let Some(status) = &cluster {
        for (net, ip) in args.networks.iter().zip(ips.iter_mut()) {
            let Some(subnet) = status
                .networks
                .iter()
                .find(|n| &n.name == net)
                .and_then(|n| n.subnet.clone())
            else {
                continue;
            };
            if ip.is_none() {
                let got = crate::cluster::store::allocate(status, net, &subnet, &args.name, None);
                let got = match got {
                    Ok(a) => a,
                    Err(e) => {
                        let _ = crate::cluster::store::release(status, &taken);
                        return Err(e);
                    }
                };
                taken.push((net.clone(), got.clone()));
                *ip = Some(got);
            }
        }
    }
    let req = Request::ContainerAdd {
        name: args.name.clone(),
        networks: args.networks.clone(),
        ips,
    };
    let added: ContainerAdded = match ask(&path, &req) {
        Ok(a) => a,
        Err(e) => {
            if let Some(status) = &cluster {
                let _ = crate::cluster::store::release(status, &taken);
            }
            return Err(e);
        }
    };
    let c = added.container;
    if let Err(e) = netns::set_up(&c, Some(added.switch_pid)) {
        // set_up undid what it did; the switch forgets the container and its TAPs.
        let _ = call(
            &path,
            &Request::ContainerRm {
                name: c.name.clone(),
            },
        );
        return Err(e);
    }
    if args.json {
        print_json(&c);
    } else {
        for i in &c.interfaces {
            eprintln!(
                "{}: {} on {} {}",
                c.name,
                i.ifname,
                i.network,
                i.address.as_deref().unwrap_or("(no address)")
            );
        }
    }
    if args.cmd.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    netns::exec_in(&c.netns, &args.cmd)
}

/// Gives the container's addresses on cluster networks back to the cluster.
fn release_cluster_addresses(path: &Path, c: &Container) {
    let Some(status) = cluster_of(path) else {
        return;
    };
    let held: Vec<(String, String)> = c
        .interfaces
        .iter()
        .filter(|i| status.networks.iter().any(|n| n.name == i.network))
        .filter_map(|i| Some((i.network.clone(), i.address.clone()?)))
        .collect();
    if let Err(e) = crate::cluster::store::release(&status, &held) {
        eprintln!(
            "uswitch: warning: {}: {e}; its addresses go with this node's lease",
            c.name
        );
    }
}

/// `uswitch rm C...`: each container's ports and namespace; the first failure is
/// reported after the others were tried.
fn rm(client: &ClientArgs, names: &[String]) -> Result<ExitCode, Failure> {
    let mut first_error = None;
    let mut removed = Vec::new();
    for name in names {
        let req = Request::ContainerRm {
            name: name.to_string(),
        };
        let result = match crate::control::client::call(&path_of(client), &req) {
            // The switch went away mid-request: it may or may not have forgotten the
            // container. Its namespace goes either way (a TAP in it goes with it), so
            // nothing is left behind; the switch forgets a container whose namespace
            // is gone when it next starts.
            Err(e) => {
                let gone = netns::exists(name) && netns::ip(&["netns", "del", name]).is_ok();
                Err(if gone {
                    format!("{e}; the container's namespace {name} is removed all the same")
                } else {
                    e
                })
            }
            Ok(resp) if !resp.ok => Err(resp.error.unwrap_or_else(|| "refused".into())),
            Ok(resp) => serde_json::from_value::<Container>(resp.data)
                .map_err(|e| format!("the switch's answer: {e}")),
        }
        .and_then(|c| {
            if netns::exists(&c.netns) {
                netns::ip(&["netns", "del", &c.netns])?;
            }
            release_cluster_addresses(&path_of(client), &c);
            Ok(c)
        });
        match result {
            Ok(c) => {
                if !client.json {
                    println!("removed {}", c.name);
                }
                removed.push(c);
            }
            Err(e) => {
                eprintln!("uswitch: error: {name}: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    if client.json {
        print_json(&removed);
    }
    Ok(if first_error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `uswitch exec C... -- CMD`: runs CMD in each container in turn.
fn exec(client: &ClientArgs, names: &[String], cmd: &[String]) -> Result<ExitCode, Failure> {
    let containers: Vec<Container> = ask(&path_of(client), &Request::ContainerLs)?;
    let mut found = Vec::new();
    for name in names {
        let c = containers
            .iter()
            .find(|c| &c.name == name)
            .ok_or_else(|| format!("no container named {name} (uswitch ps lists them)"))?;
        found.push(c);
    }
    let mut code = ExitCode::SUCCESS;
    for c in found {
        let this = netns::exec_in(&c.netns, cmd)?;
        if code == ExitCode::SUCCESS {
            code = this;
        }
    }
    Ok(code)
}
