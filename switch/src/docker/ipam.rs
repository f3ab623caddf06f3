//! Docker's IPAM plugin protocol (`/IpamDriver.*`, moby's `ipams/remote/api`), answered
//! from the cluster's allocations: a pool is a cluster network's subnet, and every
//! address is taken by a transaction in etcd, so Docker containers on different hosts
//! (and the launcher's and CNI's containers) never share one.
//!
//! `docker network create -d NAME --ipam-driver NAME --ipam-opt uswitch.cluster=blue
//! -o uswitch.cluster=blue blue` names the cluster network; a `--subnet` equal to a
//! cluster network's names it too.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::api::{ReleaseAddress, ReleasePool, RequestAddress, RequestPool};
use crate::cluster::store;
use crate::control::handle::Handle;
use crate::control::protocol::{ClusterStatus, Request};

/// The IPAM option (`--ipam-opt`) naming the cluster network.
pub const CLUSTER_OPTION: &str = "uswitch.cluster";
/// What Docker puts in `RequestAddress`'s options when it asks for a gateway.
const GATEWAY_REQUEST: (&str, &str) = ("RequestAddressType", "com.docker.network.gateway");

type Answer = Result<Value, String>;

pub struct Ipam {
    switch: Handle,
}

impl Ipam {
    pub fn new(switch: Handle) -> Ipam {
        Ipam { switch }
    }

    /// Answers the IPAM request at `path`, or None for a path that is not IPAM's.
    pub fn handle(&self, path: &str, body: &[u8]) -> Option<Answer> {
        fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
            serde_json::from_slice(body)
                .map_err(|e| format!("uswitch could not read the IPAM request: {e}"))
        }
        Some(match path {
            "/IpamDriver.GetCapabilities" => Ok(json!({ "RequiresMACAddress": false })),
            "/IpamDriver.GetDefaultAddressSpaces" => Ok(json!({
                "LocalDefaultAddressSpace": "uswitch",
                "GlobalDefaultAddressSpace": "uswitch",
            })),
            "/IpamDriver.RequestPool" => parse(body).and_then(|r| self.request_pool(r)),
            "/IpamDriver.ReleasePool" => parse::<ReleasePool>(body).map(|_| json!({})),
            "/IpamDriver.RequestAddress" => parse(body).and_then(|r| self.request_address(r)),
            "/IpamDriver.ReleaseAddress" => parse(body).and_then(|r| self.release_address(r)),
            _ => return None,
        })
    }

    /// The cluster as the switch's agent sees it; an error saying how to make this a
    /// cluster node when it is not one.
    fn cluster(&self) -> Result<ClusterStatus, String> {
        let r = self.switch.call(Request::ShowCluster);
        if !r.ok {
            return Err(format!(
                "the uswitch IPAM driver hands out cluster addresses: {}",
                r.error.unwrap_or_default()
            ));
        }
        serde_json::from_value(r.data).map_err(|e| format!("the switch's answer: {e}"))
    }

    /// The subnet of cluster network `name`.
    fn subnet_of(status: &ClusterStatus, name: &str) -> Result<String, String> {
        let net = status
            .networks
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| {
                format!(
                    "the cluster has no network {name}; create it first with `uswitch network \
                     create {name} --subnet CIDR --vni N --cluster`"
                )
            })?;
        net.subnet.clone().ok_or_else(|| {
            format!("cluster network {name} has no subnet: there are no addresses to give")
        })
    }

    fn request_pool(&self, r: RequestPool) -> Answer {
        if r.v6 {
            return Err(
                "the uswitch IPAM driver gives IPv4 cluster addresses; leave out --ipv6 or \
                 use another IPAM driver for IPv6"
                    .into(),
            );
        }
        if !r.sub_pool.is_empty() {
            return Err(
                "the uswitch IPAM driver takes no --ip-range: a cluster network's \
                        whole subnet is its pool"
                    .into(),
            );
        }
        let status = self.cluster()?;
        let named = r
            .options
            .as_ref()
            .and_then(|o| o.get(CLUSTER_OPTION))
            .cloned();
        let network = match named {
            Some(n) => n,
            None if !r.pool.is_empty() => status
                .networks
                .iter()
                .find(|n| n.subnet.as_deref() == Some(r.pool.as_str()))
                .map(|n| n.name.clone())
                .ok_or_else(|| {
                    format!(
                        "no cluster network has the subnet {}; name one with --ipam-opt \
                         {CLUSTER_OPTION}=NAME",
                        r.pool
                    )
                })?,
            None => {
                return Err(format!(
                    "name the cluster network with --ipam-opt {CLUSTER_OPTION}=NAME (or give \
                     its --subnet)"
                ))
            }
        };
        let subnet = Self::subnet_of(&status, &network)?;
        if !r.pool.is_empty() && r.pool != subnet {
            return Err(format!(
                "cluster network {network}'s subnet is {subnet}, not {}; leave --subnet out \
                 or give that one",
                r.pool
            ));
        }
        Ok(json!({ "PoolID": network, "Pool": subnet, "Data": {} }))
    }

    fn request_address(&self, r: RequestAddress) -> Answer {
        let status = self.cluster()?;
        let subnet = Self::subnet_of(&status, &r.pool_id)?;
        let want = match r.address.split('/').next().unwrap_or_default() {
            "" => None,
            a => Some(
                a.parse::<Ipv4Addr>()
                    .map_err(|_| format!("{a} is not an IPv4 address"))?,
            ),
        };
        let gateway = r
            .options
            .as_ref()
            .and_then(|o| o.get(GATEWAY_REQUEST.0))
            .is_some_and(|v| v == GATEWAY_REQUEST.1);
        let owner = if gateway {
            format!("docker-gateway/{}", status.node)
        } else {
            format!("docker/{}", status.node)
        };
        let address = store::allocate(&status, &r.pool_id, &subnet, &owner, want)?;
        Ok(json!({ "Address": address, "Data": {} }))
    }

    fn release_address(&self, r: ReleaseAddress) -> Answer {
        let status = self.cluster()?;
        store::release(&status, &[(r.pool_id, r.address)])?;
        Ok(json!({}))
    }
}
