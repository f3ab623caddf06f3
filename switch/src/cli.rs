//! The command line.

use std::str::FromStr;

use clap::Parser;
use log::LevelFilter;

use crate::tap::validate_ifname;

/// The network a port joins when `--port` names none.
pub const DEFAULT_NETWORK: &str = "default";

/// uswitch: a userspace Ethernet switch for container and lab networks.
///
/// Each --port is a TAP interface whose frames uswitch switches: it learns source MACs,
/// forwards known unicast to one port and floods broadcast, multicast and unknown unicast
/// to the other ports of the same network. Networks are isolated from each other.
/// Runs until SIGINT or SIGTERM; SIGUSR1 logs the counters.
#[derive(Debug, Parser)]
#[command(name = "uswitch", version, max_term_width = 100)]
pub struct Cli {
    /// Attach the TAP interface NAME (created if missing and removed on exit; an existing
    /// TAP is left in place) to NETWORK (default: "default"). Repeat for every port.
    #[arg(long = "port", value_name = "NAME[@NETWORK]", required = true)]
    pub ports: Vec<PortSpec>,

    /// Forget a learned MAC after SECS without frames from it (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub fdb_aging: u64,

    /// Learned MACs at most per network; when full, the port holding the most entries
    /// loses its oldest one.
    #[arg(long, value_name = "N", default_value_t = 8192, value_parser = parse_fdb_max)]
    pub fdb_max: usize,

    /// A MAC seen on its port within SECS does not move to another port.
    #[arg(long, value_name = "SECS", default_value_t = 3.0, value_parser = parse_secs)]
    pub mac_move_hold_down: f64,

    /// Log level: off, error, warn, info, debug or trace (default info; RUST_LOG also works).
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<LevelFilter>,
}

/// One `--port NAME[@NETWORK]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub name: String,
    pub network: String,
}

impl FromStr for PortSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, network) = match s.split_once('@') {
            Some((name, network)) => (name, network),
            None => (s, DEFAULT_NETWORK),
        };
        validate_ifname(name)
            .map_err(|why| format!("interface name '{name}' is not valid: {why}"))?;
        validate_network_name(network)?;
        Ok(PortSpec {
            name: name.to_string(),
            network: network.to_string(),
        })
    }
}

/// Network names: 1 to 32 bytes of letters, digits, '-', '_' and '.'.
pub fn validate_network_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the network name after '@' is empty".into());
    }
    if name.len() > 32 {
        return Err(format!("network name '{name}' is longer than 32 bytes"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "network name '{name}' may only hold letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

fn parse_fdb_max(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("the table needs room for at least 1 entry".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{s}' is not a number of seconds between 0 and 86400"
        )),
    }
}

impl Cli {
    /// Refuses combinations no single flag can check.
    pub fn validate(&self) -> Result<(), String> {
        for (i, p) in self.ports.iter().enumerate() {
            if self.ports[..i].iter().any(|q| q.name == p.name) {
                return Err(format!(
                    "port {} is given twice; each --port needs its own interface",
                    p.name
                ));
            }
        }
        Ok(())
    }
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
        let cli = parse(&["--port", "tap0", "--port", "tap1@blue"]).unwrap();
        assert_eq!(
            cli.ports,
            vec![
                PortSpec {
                    name: "tap0".into(),
                    network: "default".into()
                },
                PortSpec {
                    name: "tap1".into(),
                    network: "blue".into()
                },
            ]
        );
        assert_eq!(cli.fdb_aging, 300);
        assert_eq!(cli.fdb_max, 8192);
        assert_eq!(cli.mac_move_hold_down, 3.0);
        cli.validate().unwrap();
    }

    #[test]
    fn refuses_bad_arguments_in_one_line() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--port", "tap0", "--bogus"],
                "unexpected argument '--bogus'",
            ),
            (&[], "--port"),
            (&["--port", ""], "empty"),
            (&["--port", "a234567890123456"], "at most 15"),
            (&["--port", "tap0@"], "after '@' is empty"),
            (&["--port", "tap0@bl ue"], "network name"),
            (&["--port", "tap0", "--fdb-max", "0"], "at least 1"),
            (&["--port", "tap0", "--fdb-aging", "soon"], "--fdb-aging"),
            (
                &["--port", "tap0", "--mac-move-hold-down", "nan"],
                "seconds",
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
        let cli = parse(&["--port", "tap0", "--port", "tap0@blue"]).unwrap();
        assert!(cli.validate().unwrap_err().contains("given twice"));
    }
}
