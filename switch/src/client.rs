//! The client subcommands: they ask the running switch over its control socket and print
//! a table (or `--json`). The launcher's namespace work happens here too.

use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};

use serde_json::Value;

use crate::cli::{ClientArgs, Command, FdbWhat, NetworkWhat, PortWhat, RunArgs, ShowWhat};
use crate::control::{call, socket_path, OverlayRequest, Request};
use crate::launcher::Container;

/// A failed client command: one line for stderr.
type Failure = String;

fn path_of(client: &ClientArgs) -> PathBuf {
    socket_path(client.control.as_deref(), client.name.as_deref())
}

/// Sends `req` and returns the response's data, or its error as a failure line.
fn ask(path: &Path, req: &Request) -> Result<Value, Failure> {
    let resp = call(path, req)?;
    if resp.ok {
        Ok(resp.data)
    } else {
        Err(resp
            .error
            .unwrap_or_else(|| "the switch refused without saying why".into()))
    }
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

fn dispatch(cmd: Command) -> Result<ExitCode, Failure> {
    let (client, req, render): (ClientArgs, Request, fn(&Value)) = match cmd {
        Command::Show { client, what } => match what {
            ShowWhat::Ports => (client, Request::ShowPorts, print_ports),
            ShowWhat::Fdb { network } => (client, Request::ShowFdb { network }, print_fdb),
            ShowWhat::Stats => (client, Request::ShowStats, print_stats),
            ShowWhat::Vxlan => (client, Request::ShowVxlan, print_vxlan),
        },
        Command::Fdb { client, what } => match what {
            FdbWhat::Flush { network } => (client, Request::FdbFlush { network }, print_done),
            FdbWhat::Add { mac, port } => (client, Request::FdbAdd { mac, port }, print_done),
            FdbWhat::Del { mac, network } => (client, Request::FdbDel { mac, network }, print_done),
        },
        Command::Port { client, what } => match what {
            PortWhat::Add { spec } => (
                client,
                Request::PortAdd {
                    name: spec.name,
                    network: spec.network,
                    offload: spec.offload,
                    bum_rate: spec.bum_rate,
                },
                print_done,
            ),
            PortWhat::Del { name } => (client, Request::PortDel { name }, print_done),
        },
        Command::Network { client, what } => match what {
            NetworkWhat::Ls => (client, Request::NetworkLs, print_networks),
            NetworkWhat::Create {
                name,
                subnet,
                vni,
                remotes,
                local,
                vxlan_port,
                mtu,
            } => {
                let overlay = vni.map(|vni| OverlayRequest {
                    vni,
                    remotes,
                    local,
                    port: vxlan_port,
                    mtu,
                });
                (
                    client,
                    Request::NetworkCreate {
                        name,
                        subnet,
                        overlay,
                    },
                    print_done,
                )
            }
        },
        Command::Capture {
            client,
            port,
            file,
            count,
        } => {
            // The switch writes the file: hand it an absolute path.
            let file =
                std::path::absolute(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let file = file.to_string_lossy().into_owned();
            (client, Request::Capture { port, file, count }, print_done)
        }
        Command::Ps { client } => (client, Request::ContainerLs, print_containers),
        Command::Rm { client, name } => return rm(&client, &name),
        Command::Exec { client, name, cmd } => return exec(&client, &name, &cmd),
        Command::Run(args) => return launch(args),
    };
    let data = ask(&path_of(&client), &req)?;
    if client.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&data).unwrap_or_default()
        );
    } else {
        render(&data);
    }
    Ok(ExitCode::SUCCESS)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
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

fn drops_total(counters: &Value) -> u64 {
    counters["drops"]
        .as_object()
        .map_or(0, |d| d.values().filter_map(Value::as_u64).sum())
}

fn print_ports(data: &Value) {
    let rows: Vec<Vec<String>> = data
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let c = &p["counters"];
            vec![
                text(&p["name"]),
                text(&p["network"]),
                text(&p["kind"]),
                text(&p["state"]),
                text(&p["mtu"]),
                text(&p["offloads"]),
                text(&c["rx_frames"]),
                text(&c["tx_frames"]),
                drops_total(c).to_string(),
                text(&p["capture"]),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "NETWORK", "KIND", "STATE", "MTU", "OFFLOADS", "RX", "TX", "DROPS", "CAPTURE",
        ],
        &rows,
    );
}

fn print_fdb(data: &Value) {
    let rows: Vec<Vec<String>> = data
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let age = e["age_secs"]
                .as_f64()
                .map_or("-".into(), |a| format!("{a:.1}"));
            vec![
                text(&e["network"]),
                text(&e["mac"]),
                text(&e["port"]),
                age,
                if e["static"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
            ]
        })
        .collect();
    table(&["NETWORK", "MAC", "PORT", "AGE", "STATIC"], &rows);
}

/// Drops with a non-zero count, as `reason=n ...` (or `-`).
fn nonzero_drops(counters: &Value) -> String {
    let drops: Vec<String> = counters["drops"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
        .map(|(r, n)| format!("{r}={n}"))
        .collect();
    if drops.is_empty() {
        "-".into()
    } else {
        drops.join(" ")
    }
}

fn print_vxlan(data: &Value) {
    let endpoints = data.as_array().cloned().unwrap_or_default();
    let mut rows = Vec::new();
    for ep in &endpoints {
        for seg in ep["segments"].as_array().into_iter().flatten() {
            for peer in seg["peers"].as_array().into_iter().flatten() {
                let c = &peer["counters"];
                rows.push(vec![
                    format!("{}:{}", text(&ep["local"]), text(&ep["port"])),
                    text(&seg["vni"]),
                    text(&seg["network"]),
                    text(&peer["remote"]),
                    text(&c["rx_frames"]),
                    text(&c["rx_bytes"]),
                    text(&c["tx_frames"]),
                    text(&c["tx_bytes"]),
                    nonzero_drops(c),
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
                format!("{}:{}", text(&ep["local"]), text(&ep["port"])),
                format!(
                    "{} (mtu {})",
                    text(&ep["underlay"]),
                    text(&ep["underlay_mtu"])
                ),
                text(&ep["counters"]["rx_frames"]),
                nonzero_drops(&ep["counters"]),
            ]
        })
        .collect();
    println!();
    table(&["ENDPOINT", "UNDERLAY", "DATAGRAMS", "REFUSED"], &rows);
}

fn print_stats(data: &Value) {
    let ports = data["ports"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| {
            vec![
                text(&p["name"]),
                text(&p["network"]),
                text(&p["rx_frames"]),
                text(&p["rx_bytes"]),
                text(&p["tx_frames"]),
                text(&p["tx_bytes"]),
                text(&p["floods"]),
                text(&p["mac_moves"]),
                nonzero_drops(p),
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
    print_networks(&data["networks"]);
}

fn print_networks(data: &Value) {
    let rows: Vec<Vec<String>> = data
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            vec![
                text(&n["name"]),
                text(&n["subnet"]),
                text(&n["ports"]),
                text(&n["fdb_entries"]),
                text(&n["fdb_static"]),
                text(&n["fdb_evictions"]),
            ]
        })
        .collect();
    table(
        &["NETWORK", "SUBNET", "PORTS", "FDB", "STATIC", "EVICTIONS"],
        &rows,
    );
}

fn print_containers(data: &Value) {
    let rows: Vec<Vec<String>> = data
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let ifaces = c["interfaces"].as_array().cloned().unwrap_or_default();
            let nets: Vec<String> = ifaces
                .iter()
                .map(|i| format!("{}:{}", text(&i["ifname"]), text(&i["network"])))
                .collect();
            let addrs: Vec<String> = ifaces.iter().map(|i| text(&i["address"])).collect();
            vec![
                text(&c["name"]),
                text(&c["netns"]),
                nets.join(" "),
                addrs.join(" "),
            ]
        })
        .collect();
    table(&["NAME", "NETNS", "NETWORKS", "ADDRESSES"], &rows);
}

fn print_done(data: &Value) {
    let fields: Vec<String> = data
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| format!("{k}={}", text(v)))
        .collect();
    println!("ok {}", fields.join(" "));
}

/// Runs `ip ARGS...`, turning a failure into one line.
fn ip(args: &[&str]) -> Result<(), Failure> {
    ip_in(None, args)
}

/// Runs `ip ARGS`, inside the network namespace `netns` (a `/proc/PID/ns/net` path) when
/// given; the mount namespace, and so the names in /run/netns, stay the caller's.
fn ip_in(netns: Option<&Path>, args: &[&str]) -> Result<(), Failure> {
    let mut cmd = Process::new("ip");
    cmd.args(args);
    if let Some(ns) = netns {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let file = std::fs::File::open(ns).map_err(|e| format!("{}: {e}", ns.display()))?;
        // SAFETY: between fork and exec the child only calls setns(2), which is
        // async-signal-safe, on a descriptor the parent keeps open until the child runs.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("running ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn launch(args: RunArgs) -> Result<ExitCode, Failure> {
    let path = socket_path(args.control.as_deref(), args.switch.as_deref());
    if args.ips.len() > args.networks.len() {
        return Err("more --ip than --network: give at most one address per network".into());
    }
    let mut ips: Vec<Option<String>> = args.ips.iter().cloned().map(Some).collect();
    ips.resize(args.networks.len(), None);
    let req = Request::ContainerAdd {
        name: args.name.clone(),
        networks: args.networks.clone(),
        ips,
    };
    let data = ask(&path, &req)?;
    let switch_pid = data["switch_pid"].as_u64();
    let c: Container =
        serde_json::from_value(data).map_err(|e| format!("unexpected answer: {e}"))?;
    if let Err(e) = set_up_namespace(&c, switch_pid) {
        let _ = ip(&["netns", "del", &c.netns]);
        let _ = ask(
            &path,
            &Request::ContainerRm {
                name: c.name.clone(),
            },
        );
        return Err(e);
    }
    for i in &c.interfaces {
        eprintln!(
            "{}: {} on {} {}",
            c.name,
            i.ifname,
            i.network,
            i.address.as_deref().unwrap_or("(no address)")
        );
    }
    if args.cmd.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    exec_in(&c.netns, &args.cmd)
}

/// The switch's network namespace when it is not ours (a switch started with `ip netns
/// exec HOST`, standing for another host): the TAPs it made live there.
fn switch_netns(pid: Option<u64>) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let theirs = PathBuf::from(format!("/proc/{}/ns/net", pid?));
    let ino = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let (a, b) = (ino(&theirs)?, ino(Path::new("/proc/self/ns/net"))?);
    (a != b).then_some(theirs)
}

fn set_up_namespace(c: &Container, switch_pid: Option<u64>) -> Result<(), Failure> {
    let from = switch_netns(switch_pid);
    ip(&["netns", "add", &c.netns])?;
    ip(&["-n", &c.netns, "link", "set", "lo", "up"])?;
    for i in &c.interfaces {
        ip_in(
            from.as_deref(),
            &["link", "set", "dev", &i.tap, "netns", &c.netns],
        )?;
        ip(&[
            "-n", &c.netns, "link", "set", "dev", &i.tap, "name", &i.ifname,
        ])?;
        if let Some(a) = &i.address {
            ip(&["-n", &c.netns, "addr", "add", a, "dev", &i.ifname])?;
        }
        ip(&["-n", &c.netns, "link", "set", "dev", &i.ifname, "up"])?;
    }
    Ok(())
}

fn rm(client: &ClientArgs, name: &str) -> Result<ExitCode, Failure> {
    let data = ask(
        &path_of(client),
        &Request::ContainerRm {
            name: name.to_string(),
        },
    )?;
    let c: Container =
        serde_json::from_value(data.clone()).map_err(|e| format!("unexpected answer: {e}"))?;
    ip(&["netns", "del", &c.netns])?;
    if client.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&data).unwrap_or_default()
        );
    } else {
        println!("removed {}", c.name);
    }
    Ok(ExitCode::SUCCESS)
}

fn exec(client: &ClientArgs, name: &str, cmd: &[String]) -> Result<ExitCode, Failure> {
    let list = ask(&path_of(client), &Request::ContainerLs)?;
    let containers: Vec<Container> =
        serde_json::from_value(list).map_err(|e| format!("unexpected answer: {e}"))?;
    let c = containers
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| format!("no container named {name} (uswitch ps lists them)"))?;
    exec_in(&c.netns, cmd)
}

/// Runs `cmd` in the namespace `netns` in the foreground; its exit code becomes ours.
fn exec_in(netns: &str, cmd: &[String]) -> Result<ExitCode, Failure> {
    let status = Process::new("ip")
        .args(["netns", "exec", netns])
        .args(cmd)
        .status()
        .map_err(|e| format!("running {}: {e}", cmd.join(" ")))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(c.clamp(1, 255) as u8),
        None => ExitCode::FAILURE,
    })
}
