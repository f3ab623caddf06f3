//! Addresses for a CNI attachment on a cluster network (`"cluster": true`): taken from
//! the cluster by a transaction in etcd, as the launcher and the Docker IPAM driver take
//! theirs, instead of from an IPAM plugin, so no two containers anywhere share one. They
//! hang on the node's lease, and DEL and GC give them back.

use super::spec::{code, CniError, CniResult, IpConfig, NetConf};
use crate::cluster::store;
use crate::control::protocol::{ClusterStatus, Request};

/// The cluster as the switch's agent sees it.
fn status(conf: &NetConf) -> Result<ClusterStatus, CniError> {
    super::ask(conf, Request::ShowCluster)
}

/// Whoever holds an address, as the cluster records it.
fn owner(id: &str, ifname: &str) -> String {
    format!("cni/{id}/{ifname}")
}

/// An address of cluster network `network` for the attachment, as IPAM would give it.
pub fn add(conf: &NetConf, network: &str, id: &str, ifname: &str) -> Result<CniResult, CniError> {
    if conf.ipam.is_some() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "a cluster network's addresses come from the cluster: leave \"ipam\" out of a \
             configuration with \"cluster\": true",
        ));
    }
    let status = status(conf)?;
    let Some(subnet) = status
        .networks
        .iter()
        .find(|n| n.name == network)
        .map(|n| n.subnet.clone())
    else {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!(
                "the cluster has no network {network}; create it with `uswitch network create \
                 {network} --subnet CIDR --vni N --cluster`"
            ),
        ));
    };
    let Some(subnet) = subnet else {
        return Ok(CniResult::default());
    };
    let address = store::allocate(&status, network, &subnet, &owner(id, ifname), None)
        .map_err(|e| CniError::new(code::TRY_AGAIN_LATER, e))?;
    Ok(CniResult {
        cni_version: conf.cni_version.clone(),
        ips: vec![IpConfig {
            address,
            gateway: None,
            interface: None,
        }],
        ..CniResult::default()
    })
}

/// Gives `addresses` (`ADDR/PREFIX`) of `network` back; best effort (they go with the
/// node's lease anyway), so DEL stays idempotent.
pub fn release(conf: &NetConf, network: &str, addresses: &[String]) {
    if addresses.is_empty() {
        return;
    }
    let Ok(status) = status(conf) else {
        return;
    };
    let held: Vec<(String, String)> = addresses
        .iter()
        .map(|a| (network.to_string(), a.clone()))
        .collect();
    if let Err(e) = store::release(&status, &held) {
        log::warn!("giving back {addresses:?} on {network}: {e}");
    }
}
