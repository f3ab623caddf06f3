use std::process::ExitCode;

use clap::Parser;
use forwarder::FdbConfig;
use log::{error, info, LevelFilter};
use uswitch::cli::{one_line_error, Cli};
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
    if let Err(msg) = cli.validate() {
        eprintln!("error: {msg} (see uswitch --help)");
        return ExitCode::from(2);
    }
    init_logging(cli.log_level);

    let fdb = FdbConfig {
        max_entries: cli.fdb_max,
        aging_ms: cli.fdb_aging.saturating_mul(1000),
        move_hold_down_ms: (cli.mac_move_hold_down * 1000.0) as u64,
    };
    let mut switch = match Switch::new(fdb) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("uswitch: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for port in &cli.ports {
        if let Err(e) = switch.add_tap_port(&port.name, &port.network) {
            eprintln!("uswitch: error: {e}");
            // Dropping the switch closes the TAPs attached so far (created ones vanish).
            return ExitCode::FAILURE;
        }
    }
    let nets = switch.forwarder().networks().count();
    info!(
        "uswitch running: {} port(s) in {nets} network(s) (fdb max {}, aging {} s)",
        cli.ports.len(),
        cli.fdb_max,
        cli.fdb_aging
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
