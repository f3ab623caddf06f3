//! The cluster's objects as the command line changes them, one transaction each, from
//! the client's own process (a short-lived tokio runtime): a network created only if its
//! name and its VNI are both free, an address taken only if nobody holds it. The switch
//! tells the client where etcd is and the node's lease (`show cluster`), so an address
//! hangs on the node that asked and goes with it.

use std::net::Ipv4Addr;

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};

use super::records::{AddressRecord, Keys, NetworkRecord};
use crate::control::protocol::ClusterStatus;
use crate::launcher::ipam::Subnet;

/// Runs `f` to its end on a runtime of a thread of its own, in the switch's network
/// namespace when it is not ours: etcd is reached from where the switch reaches it.
fn block_on<T: Send + 'static>(
    status: &ClusterStatus,
    f: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    let netns = crate::launcher::netns::switch_netns(Some(status.pid));
    std::thread::spawn(move || {
        if let Some(ns) = netns {
            enter(&ns)?;
        }
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("a runtime for the etcd client: {e}"))?
            .block_on(f)
    })
    .join()
    .map_err(|_| "the etcd client's thread failed".to_string())?
}

/// Moves this thread into the network namespace at `path`.
fn enter(path: &std::path::Path) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: setns(2) on a descriptor we hold open; it changes only the calling thread,
    // which is ours alone and ends with the request.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "entering the switch's namespace {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ))
    }
}

async fn connect(status: &ClusterStatus) -> Result<Client, String> {
    super::connect_any(&status.endpoints, std::process::id() as usize)
        .await
        .map_err(|e| unreachable(status, e))
}

fn unreachable(status: &ClusterStatus, e: etcd_client::Error) -> String {
    format!(
        "etcd at {} did not answer ({e}); the cluster cannot be changed until it does",
        status.endpoints.join(",")
    )
}

/// Creates the cluster network `record`: refused if the name or the VNI is taken.
pub fn create_network(status: &ClusterStatus, record: &NetworkRecord) -> Result<(), String> {
    let keys = Keys::new(&status.prefix);
    let (status, record) = (status.clone(), record.clone());
    block_on(&status.clone(), async move {
        let status = &status;
        let mut client = connect(status).await?;
        let (nk, vk) = (keys.network(&record.name), keys.vni(record.vni));
        let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        let txn = Txn::new()
            .when([
                Compare::create_revision(nk.as_str(), CompareOp::Equal, 0),
                Compare::create_revision(vk.as_str(), CompareOp::Equal, 0),
            ])
            .and_then([
                TxnOp::put(nk.as_str(), value, None),
                TxnOp::put(vk.as_str(), record.name.as_str(), None),
            ]);
        let done = client.txn(txn).await.map_err(|e| unreachable(status, e))?;
        if done.succeeded() {
            return Ok(());
        }
        let holder = client.get(vk.as_str(), None).await.ok().and_then(|r| {
            r.kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
        });
        Err(match holder {
            Some(h) if h != record.name => format!(
                "VNI {} is cluster network {h}'s; pick another --vni",
                record.vni
            ),
            _ => format!(
                "the cluster has a network named {} already; pick another name",
                record.name
            ),
        })
    })
}

/// Takes `want`, or else the first free address of `subnet`, on cluster network
/// `network` for `owner`, on the node's lease; refused when the subnet is full (or `want`
/// is taken or outside it). Two clients racing for one address: one transaction wins,
/// the other takes the next.
pub fn allocate(
    status: &ClusterStatus,
    network: &str,
    subnet: &str,
    owner: &str,
    want: Option<Ipv4Addr>,
) -> Result<String, String> {
    let keys = Keys::new(&status.prefix);
    let sub = Subnet::parse(subnet)?;
    if let Some(a) = want {
        if !sub.hosts().any(|h| h == a) {
            return Err(format!(
                "{a} is not a host address of cluster network {network}'s subnet {subnet}"
            ));
        }
    }
    let (network, subnet, owner) = (network.to_string(), subnet.to_string(), owner.to_string());
    let lease = status.lease.ok_or_else(|| {
        format!(
            "the switch has no lease from etcd ({}); new containers on cluster networks wait \
             until etcd answers",
            status.etcd
        )
    })?;
    let status = status.clone();
    block_on(&status.clone(), async move {
        let status = &status;
        let mut client = connect(status).await?;
        let taken = client
            .get(
                keys.addresses(&network),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
            .map_err(|e| unreachable(status, e))?;
        let mut used: std::collections::BTreeSet<Ipv4Addr> = taken
            .kvs()
            .iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                key.rsplit('/').next()?.parse().ok()
            })
            .collect();
        let record = AddressRecord {
            node: status.node.clone(),
            owner: owner.clone(),
        };
        let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        loop {
            let next = match want {
                Some(a) if used.contains(&a) => {
                    return Err(format!("{a} on cluster network {network} is taken"));
                }
                Some(a) => Some(a),
                None => sub.hosts().find(|a| !used.contains(a)),
            };
            let Some(a) = next else {
                return Err(format!(
                    "cluster network {network}'s subnet {subnet} is full"
                ));
            };
            let key = keys.address(&network, &a.to_string());
            let txn = Txn::new()
                .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.as_str(),
                    value.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            let done = client.txn(txn).await.map_err(|e| unreachable(status, e))?;
            if done.succeeded() {
                return Ok(format!("{a}/{}", sub.prefix));
            }
            used.insert(a);
        }
    })
}

/// Gives back the addresses (`ADDR/PREFIX`) a container held on cluster networks.
pub fn release(status: &ClusterStatus, addresses: &[(String, String)]) -> Result<(), String> {
    let keys = Keys::new(&status.prefix);
    let (status, addresses) = (status.clone(), addresses.to_vec());
    block_on(&status.clone(), async move {
        let status = &status;
        let mut client = connect(status).await?;
        for (network, cidr) in &addresses {
            let ip = cidr.split('/').next().unwrap_or(cidr);
            client
                .delete(keys.address(network, ip), None)
                .await
                .map_err(|e| unreachable(status, e))?;
        }
        Ok(())
    })
}
