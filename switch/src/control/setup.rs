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
    }
    for (port, file) in &settings.captures {
        sw.start_capture(port, file, None)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
