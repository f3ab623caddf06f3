use std::process::ExitCode;

use clap::Parser;
use log::{error, info, warn, LevelFilter};
use uswitch::cli::{one_line_error, Cli};
use uswitch::cluster::agent::Agent;
use uswitch::config::Settings;
use uswitch::control::cni::CniRegistry;
use uswitch::control::protocol::ClusterStatus;
use uswitch::control::{handlers, setup, socket_path, takeover, Control};
use uswitch::dataplane::{Switch, Workers};
use uswitch::docker::Plugin;
use uswitch::metrics::MetricsServer;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line_error(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    if let Some(cmd) = cli.command {
        return uswitch::cli::client::run(cmd);
    }
    if let Err(msg) = cli.switch.validate() {
        eprintln!("error: {msg} (see uswitch --help)");
        return ExitCode::from(2);
    }
    let settings = match Settings::from_args(&cli.switch) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("uswitch: error: {msg}");
            return ExitCode::from(2);
        }
    };
    if !has_net_admin() {
        eprintln!(
            "uswitch: error: the switch needs CAP_NET_ADMIN to attach TAPs and interfaces: \
             run it as root (sudo uswitch ...) or give the binary the capability \
             (setcap cap_net_admin+ep)"
        );
        return ExitCode::from(2);
    }
    init_logging(settings.log_level);
    let args = cli.switch.clone();
    let load: uswitch::control::Load = Box::new(move || Settings::from_args(&args));
    run_switch(&settings, load, cli.switch.take_over)
}

/// Whether this process holds CAP_NET_ADMIN (bit 12 of the effective set).
fn has_net_admin() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true; // Cannot tell: let the kernel say.
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_none_or(|caps| caps & (1 << 12) != 0)
}

fn run_switch(settings: &Settings, load: uswitch::control::Load, take_over: bool) -> ExitCode {
    let path = socket_path(settings.control.as_deref(), settings.name.as_deref());
    let mut switch = match Switch::new(settings.fdb, settings.protection) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("uswitch: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let workers = settings.workers.map_or_else(Workers::auto, Workers::Fixed);
    if let Err(e) = switch.set_workers(workers) {
        eprintln!("uswitch: error: starting {} workers: {e}", workers.max());
        return ExitCode::FAILURE;
    }
    switch.set_busy_poll(std::time::Duration::from_micros(settings.busy_poll_us));
    switch.set_udp_join(settings.udp_join);
    switch
        .forwarder_mut()
        .set_arp_suppress(settings.arp_suppress);
    // A take-over receives the running switch's descriptors first; everything below
    // then uses them before opening anything anew.
    let mut handover = None;
    let bound = if take_over {
        match takeover::take(&path) {
            Ok(taken) => {
                info!(
                    "take-over: pid {} (uswitch {}) handed over {} port(s), {} VXLAN endpoint(s) and its control socket",
                    taken.header.pid,
                    taken.header.release,
                    taken.header.ports.len(),
                    taken.header.endpoints.len()
                );
                switch.inherit(taken.bank);
                handover = Some((taken.stream, taken.header.pid));
                Control::adopt(taken.listener, &path, &switch)
            }
            Err(e) => {
                eprintln!("uswitch: error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        Control::bind(&path, &switch)
    };
    let mut control = match bound {
        Ok(c) => c,
        Err(e) => {
            eprintln!("uswitch: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = setup::apply(&mut switch, &mut control.state, settings) {
        eprintln!("uswitch: error: {e}");
        // Dropping the switch closes the TAPs attached so far (created ones vanish).
        return ExitCode::FAILURE;
    }
    control.set_reloader(load, settings.clone());
    let state_dir = settings.state_dir.clone().unwrap_or_else(|| {
        std::path::Path::new("/var/lib/uswitch").join(settings.name.as_deref().unwrap_or("uswitch"))
    });
    let socket_tag =
        uswitch::control::cni::hex_hash(path.as_os_str().as_encoded_bytes())[..8].to_string();
    // What was changed through the control socket comes back first, after the file.
    control.state.runtime = uswitch::control::runtime_state::RuntimeBook::new(Some(
        state_dir.join(format!("runtime-{socket_tag}.json")),
    ));
    handlers::restore_runtime(&mut switch, &mut control.state);
    // The CNI plugin's attachments come back before anything new is asked.
    // The NAT table is named by the switch's name, or its socket's when it has none.
    let owner = settings.name.clone().unwrap_or_else(|| {
        uswitch::control::cni::hex_hash(path.as_os_str().as_encoded_bytes())[..8].to_string()
    });
    control.state.cni = CniRegistry::new(Some(state_dir.join("cni.json")), &owner);
    handlers::restore_cni(&mut switch, &mut control.state);
    // One record per control socket: two switches sharing a state directory (no --name,
    // no --state-dir) never take each other's containers.
    let book = format!("launcher-{socket_tag}.json");
    control.state.launcher =
        uswitch::control::launcher_state::LauncherBook::new(Some(state_dir.join(book)));
    handlers::restore_launcher(&mut switch, &mut control.state);
    if let Some((stream, old_pid)) = handover {
        // Set up: the old switch may go (its Docker socket and cluster lease with it).
        if let Err(e) = takeover::confirm(stream, old_pid) {
            warn!("{e}");
        }
        control.own_socket();
        info!("take-over: the old switch has exited; forwarding");
        if switch.inherits() {
            control.release_inherited_after(std::time::Duration::from_secs(10));
        }
    }
    // The cluster agent, on a thread of its own; it reaches the loop through a handle.
    let mut agent = None;
    if let Some(spec) = &settings.cluster {
        let status = std::sync::Arc::new(std::sync::Mutex::new(ClusterStatus {
            node: spec.node.clone(),
            pid: std::process::id(),
            vtep: format!("{}:{}", spec.vtep, spec.port),
            endpoints: spec.endpoints.clone(),
            prefix: spec.prefix.clone(),
            etcd: "connecting".into(),
            ..ClusterStatus::default()
        }));
        control.state.cluster = Some(status.clone());
        let started = control
            .handle(&switch)
            .and_then(|h| Agent::new(spec.clone(), h, status, Some(state_dir.clone())).spawn());
        match started {
            Ok(running) => agent = Some(running),
            Err(e) => {
                eprintln!("uswitch: error: starting the cluster agent: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let plugin = match &settings.docker_plugin {
        Some(name) => {
            let served = control
                .handle(&switch)
                .map_err(|e| format!("the Docker plugin's waker: {e}"))
                .and_then(|h| {
                    Plugin::serve(name, settings.docker_plugin_dir.as_deref(), &state_dir, h)
                        .map_err(|e| e.to_string())
                });
            match served {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!("uswitch: error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    // Prometheus's endpoint, on a thread of its own; it reaches the loop through a handle.
    let metrics = match settings.metrics {
        Some(addr) => {
            let served = control
                .handle(&switch)
                .map_err(|e| format!("the metrics server's waker: {e}"))
                .and_then(|h| MetricsServer::serve(addr, h).map_err(|e| e.to_string()));
            match served {
                Ok(m) => Some(m),
                Err(e) => {
                    eprintln!("uswitch: error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    let nets = switch.forwarder().networks().count();
    info!(
        "uswitch running: {} port(s) in {nets} network(s) (fdb max {}, aging {} s), control socket {}",
        switch.forwarder().ports().count(),
        settings.fdb.max_entries,
        settings.fdb.aging_ms / 1000,
        path.display()
    );
    let result = switch.run(&mut control);
    switch.shutdown();
    // The control plane first: a Docker request still waiting on the loop is answered
    // "shutting down" as its inbox goes, so the plugin's thread can stop.
    drop(control);
    // The node withdraws from the cluster: its records go at once, not with its lease.
    if let Some(agent) = agent {
        agent.stop(std::time::Duration::from_secs(2));
    }
    drop(plugin);
    drop(metrics);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: Option<LevelFilter>) {
    let mut builder = env_logger::Builder::new();
    match level {
        Some(level) => {
            builder.filter_level(level);
        }
        None => match std::env::var("RUST_LOG") {
            Ok(spec) => {
                builder.parse_filters(&spec);
            }
            Err(_) => {
                builder.filter_level(LevelFilter::Info);
            }
        },
    }
    builder
        .format_target(false)
        .format_timestamp_millis()
        .init();
}
