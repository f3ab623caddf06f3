//! Host ports: TAPs left in uswitch's namespace with addresses, the host's door into a
//! network (a Docker network's gateway, like docker0's address).

use std::process::Command;

use log::info;

use crate::config::specs::HostPortSpec;
use crate::dataplane::Switch;

/// What `show ports` says is behind a host port.
pub const OWNER: &str = "host";

/// Attaches a TAP that stays in uswitch's namespace with an address: the host's own
/// door into the network (like docker0's address).
pub fn add_host_port(sw: &mut Switch, spec: &HostPortSpec) -> Result<(), String> {
    let id = sw
        .add_tap_port(&spec.port.name, &spec.port.network, true)
        .map_err(|e| e.to_string())?;
    if let Err(e) = add_address(spec) {
        sw.remove_port(id);
        return Err(e);
    }
    Ok(())
}

/// Gives the host port of `spec` its address (IPv6 without duplicate address detection:
/// the address is the network's gateway, nobody else's).
pub fn add_address(spec: &HostPortSpec) -> Result<(), String> {
    let mut args = vec!["addr", "replace", &spec.address, "dev", &spec.port.name];
    if spec.address.contains(':') {
        args.push("nodad");
    }
    let out = Command::new("ip").args(&args).output();
    match out {
        Ok(o) if o.status.success() => {
            info!("host port {} has address {}", spec.port.name, spec.address);
            Ok(())
        }
        Ok(o) => Err(format!(
            "giving host port {} the address {}: {}",
            spec.port.name,
            spec.address,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!(
            "running ip (iproute2) for host port {}: {e}",
            spec.port.name
        )),
    }
}
