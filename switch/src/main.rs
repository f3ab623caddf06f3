use std::process::ExitCode;

use clap::Parser;
use log::{error, info, LevelFilter};
use uswitch::cli::{one_line_error, Cli};
use uswitch::config::Settings;
use uswitch::control::socket_path;
use uswitch::event_loop::Switch;

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
        return uswitch::client::run(cmd);
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
    init_logging(settings.log_level);
    run_switch(&settings)
}

fn run_switch(settings: &Settings) -> ExitCode {
    let control = socket_path(settings.control.as_deref(), settings.name.as_deref());
    let mut switch = match Switch::new(settings.fdb, settings.protection, Some(&control)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("uswitch: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    switch.set_busy_poll(std::time::Duration::from_micros(settings.busy_poll_us));
    switch.set_udp_join(settings.udp_join);
    if let Err(e) = set_up(&mut switch, settings) {
        eprintln!("uswitch: error: {e}");
        // Dropping the switch closes the TAPs attached so far (created ones vanish).
        return ExitCode::FAILURE;
    }
    let nets = switch.forwarder().networks().count();
    info!(
        "uswitch running: {} port(s) in {nets} network(s) (fdb max {}, aging {} s), control socket {}",
        settings.ports.len() + settings.uplinks.len() + settings.host_ports.len(),
        settings.fdb.max_entries,
        settings.fdb.aging_ms / 1000,
        control.display()
    );
    let result = switch.run();
    switch.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Networks, overlays, ports and captures, in that order (an overlay sets the MTU its
/// network's TAPs get).
fn set_up(switch: &mut Switch, settings: &Settings) -> Result<(), String> {
    for n in &settings.networks {
        switch.declare_network(n)?;
    }
    for v in &settings.vxlans {
        switch.add_vxlan(v)?;
    }
    for port in &settings.ports {
        let id = switch
            .add_tap_port(&port.name, &port.network, port.offload)
            .map_err(|e| e.to_string())?;
        if let Some(rate) = port.bum_rate {
            switch.set_bum_rate(id, rate);
        }
    }
    for up in &settings.uplinks {
        switch
            .add_uplink_port(&up.name, &up.network)
            .map_err(|e| e.to_string())?;
    }
    for h in &settings.host_ports {
        switch.add_host_port(h)?;
    }
    for (port, file) in &settings.captures {
        switch.start_capture(port, file, None)?;
    }
    Ok(())
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
