//! Setting a switch up from its settings at start: networks, overlays, ports, uplinks,
//! host ports and captures, in that order (an overlay sets the MTU its network's TAPs
//! get), through the same handlers and data-plane calls as runtime requests.

use super::handlers::{declare_network, ControlState};
use super::host::add_host_port;
use crate::config::Settings;
use crate::dataplane::Switch;

/// Applies `settings` to a new switch; the first failure stops it, with its message.
pub fn apply(sw: &mut Switch, state: &mut ControlState, settings: &Settings) -> Result<(), String> {
    for n in &settings.networks {
        declare_network(sw, state, n)?;
    }
    for v in &settings.vxlans {
        sw.add_vxlan(v).map_err(|e| e.to_string())?;
    }
    for port in &settings.ports {
        let id = sw
            .add_tap_port(&port.name, &port.network, port.offload)
            .map_err(|e| e.to_string())?;
        if let Some(rate) = port.bum_rate {
            sw.forwarder_mut().set_bum_rate(id, rate);
        }
    }
    for up in &settings.uplinks {
        let id = sw
            .add_uplink_port(&up.name, &up.network)
            .map_err(|e| e.to_string())?;
        if let Some(rate) = up.bum_rate {
            sw.forwarder_mut().set_bum_rate(id, rate);
        }
    }
    for h in &settings.host_ports {
        add_host_port(sw, h)?;
        state.note_owner(&h.port.name, Some(super::host::OWNER.into()));
    }
    for (port, file) in &settings.captures {
        sw.start_capture(port, file, None)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What a reload changed, for the log.
#[derive(Debug, Default)]
pub struct Changes {
    pub applied: Vec<String>,
    /// Changes that only a restart applies (the socket, the cluster, overlays, ...).
    pub at_restart: Vec<String>,
}

/// Brings a running switch from `old` to `new` (SIGHUP): networks, ports, uplinks and
/// host ports added or removed, storm-control rates, FDB limits, UDP joining, ARP
/// suppression and busy polling. Whatever is not in the difference is not touched. If an
/// addition fails, the additions made so far are undone and nothing is removed: a file
/// is applied whole or not at all.
pub fn apply_changes(
    sw: &mut Switch,
    state: &mut ControlState,
    old: &Settings,
    new: &Settings,
) -> Result<Changes, String> {
    let mut ch = Changes::default();
    let fixed = [
        ("control", old.control != new.control),
        ("name", old.name != new.name),
        ("docker_plugin", old.docker_plugin != new.docker_plugin),
        ("state_dir", old.state_dir != new.state_dir),
        ("cluster", old.cluster != new.cluster),
        ("metrics", old.metrics != new.metrics),
        ("vxlan", old.vxlans != new.vxlans),
        ("capture", old.captures != new.captures),
        ("log_level", old.log_level != new.log_level),
    ];
    ch.at_restart = fixed
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(what, _)| what.to_string())
        .collect();
    let mut added_ports = Vec::new();
    let mut added_networks = Vec::new();
    let result = add_new(
        sw,
        state,
        old,
        new,
        &mut added_ports,
        &mut added_networks,
        &mut ch,
    );
    if let Err(e) = result {
        for id in added_ports {
            sw.remove_port(id);
        }
        for name in added_networks {
            let id = sw.forwarder().network_id(&name);
            if let Some(id) = id {
                let _ = sw.forwarder_mut().remove_network(id);
            }
            state.subnets.remove(&name);
        }
        return Err(e);
    }
    // Removals, once every addition stood.
    let gone = |list_old: &[String], list_new: &[String]| -> Vec<String> {
        list_old
            .iter()
            .filter(|n| !list_new.contains(n))
            .cloned()
            .collect()
    };
    let names = |p: &[crate::config::specs::PortSpec]| -> Vec<String> {
        p.iter().map(|p| p.name.clone()).collect()
    };
    let host_names = |h: &[crate::config::specs::HostPortSpec]| -> Vec<String> {
        h.iter().map(|h| h.port.name.clone()).collect()
    };
    let removed: Vec<String> = gone(&names(&old.ports), &names(&new.ports))
        .into_iter()
        .chain(gone(&names(&old.uplinks), &names(&new.uplinks)))
        .chain(gone(
            &host_names(&old.host_ports),
            &host_names(&new.host_ports),
        ))
        .collect();
    for name in removed {
        let id = sw.forwarder().port_named(&name);
        if let Some(id) = id {
            sw.remove_port(id);
            ch.applied.push(format!("port {name} removed"));
        }
    }
    // Limits.
    if old.fdb != new.fdb {
        sw.forwarder_mut().set_fdb_config(new.fdb);
        ch.applied.push(format!(
            "fdb limit {}, aging {} s, move hold-down {} ms",
            new.fdb.max_entries,
            new.fdb.aging_ms / 1000,
            new.fdb.move_hold_down_ms
        ));
    }
    if old.protection != new.protection {
        sw.forwarder_mut().set_protection(new.protection);
        ch.applied.push(format!(
            "storm control {} frames/s",
            new.protection.bum_rate
        ));
    }
    for p in new.ports.iter().chain(&new.uplinks) {
        let was = old
            .ports
            .iter()
            .chain(&old.uplinks)
            .find(|o| o.name == p.name);
        let rate = p.bum_rate.unwrap_or(new.protection.bum_rate);
        let old_rate = was.map(|o| o.bum_rate.unwrap_or(old.protection.bum_rate));
        if was.is_some() && old_rate != Some(rate) {
            let id = sw.forwarder().port_named(&p.name);
            if let Some(id) = id {
                sw.forwarder_mut().set_bum_rate(id, rate);
                ch.applied
                    .push(format!("port {} storm control {rate}", p.name));
            }
        }
    }
    if old.udp_join != new.udp_join {
        sw.set_udp_join(new.udp_join);
        ch.applied.push(format!("udp_join {}", new.udp_join));
    }
    if old.arp_suppress != new.arp_suppress {
        sw.forwarder_mut().set_arp_suppress(new.arp_suppress);
        ch.applied
            .push(format!("arp_suppress {}", new.arp_suppress));
    }
    if old.workers != new.workers {
        let workers = new.workers.map_or_else(
            crate::dataplane::Workers::auto,
            crate::dataplane::Workers::Fixed,
        );
        let running = sw.running_workers();
        match sw.set_workers(workers) {
            Ok(()) if workers.max() < running => ch.applied.push(format!(
                "workers: at most {} for new ports; the {running} running keep running until \
                 uswitch restarts",
                workers.max()
            )),
            Ok(()) => ch.applied.push(format!("workers {}", workers.max())),
            Err(e) => log::warn!("starting workers: {e}"),
        }
    }
    if old.busy_poll_us != new.busy_poll_us {
        sw.set_busy_poll(std::time::Duration::from_micros(new.busy_poll_us));
        ch.applied
            .push(format!("busy_poll {} us", new.busy_poll_us));
    }
    Ok(ch)
}

/// The additions of a reload, each recorded so that a failure can undo them.
fn add_new(
    sw: &mut Switch,
    state: &mut ControlState,
    old: &Settings,
    new: &Settings,
    added_ports: &mut Vec<forwarder::PortId>,
    added_networks: &mut Vec<String>,
    ch: &mut Changes,
) -> Result<(), String> {
    for n in &new.networks {
        match old.networks.iter().find(|o| o.name == n.name) {
            None => {
                declare_network(sw, state, n)?;
                added_networks.push(n.name.clone());
                ch.applied.push(format!("network {} added", n.name));
            }
            Some(o) if o != n => ch.at_restart.push(format!("network {}", n.name)),
            Some(_) => {}
        }
    }
    let is_new =
        |list: &[crate::config::specs::PortSpec], name: &str| !list.iter().any(|o| o.name == name);
    for port in &new.ports {
        if !is_new(&old.ports, &port.name) {
            continue;
        }
        let id = sw
            .add_tap_port(&port.name, &port.network, port.offload)
            .map_err(|e| format!("port {}: {e}", port.name))?;
        added_ports.push(id);
        sw.forwarder_mut()
            .set_bum_rate(id, port.bum_rate.unwrap_or(new.protection.bum_rate));
        ch.applied.push(format!("port {} added", port.name));
    }
    for up in &new.uplinks {
        if !is_new(&old.uplinks, &up.name) {
            continue;
        }
        let id = sw
            .add_uplink_port(&up.name, &up.network)
            .map_err(|e| format!("uplink {}: {e}", up.name))?;
        added_ports.push(id);
        sw.forwarder_mut()
            .set_bum_rate(id, up.bum_rate.unwrap_or(new.protection.bum_rate));
        ch.applied.push(format!("uplink {} added", up.name));
    }
    for h in &new.host_ports {
        if old.host_ports.iter().any(|o| o.port.name == h.port.name) {
            continue;
        }
        add_host_port(sw, h).map_err(|e| format!("host port {}: {e}", h.port.name))?;
        state.note_owner(&h.port.name, Some(super::host::OWNER.into()));
        if let Some(id) = sw.forwarder().port_named(&h.port.name) {
            added_ports.push(id);
        }
        ch.applied.push(format!("host port {} added", h.port.name));
    }
    Ok(())
}
