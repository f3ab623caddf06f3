//! Overlay networks across many hosts through etcd (`--cluster etcd=URL,...`): each node
//! keeps its membership and MAC records in the store on a lease, learns the others' from a
//! watch, and turns them into flood lists and static FDB entries ([`agent`]); networks and
//! addresses are cluster objects made by transactions ([`store`]); the layout of the keys
//! and the view built from them are in [`records`].

pub mod agent;
pub mod records;
pub mod store;

use std::time::Duration;

/// A client of the first of `endpoints` that answers (starting at `start`, so that
/// retries go round). One endpoint per client: a client given several sends some
/// requests to a member that is down and fails them, where one healthy member would do.
pub async fn connect_any(
    endpoints: &[String],
    start: usize,
) -> Result<etcd_client::Client, etcd_client::Error> {
    // HTTP/2 pings find a member that went silent (a partition sends no reset) within
    // seconds, whether or not a request is under way.
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    let mut last = None;
    for k in 0..endpoints.len().max(1) {
        let Some(e) = endpoints.get((start + k) % endpoints.len().max(1)) else {
            break;
        };
        match etcd_client::Client::connect([e], Some(options.clone())).await {
            Ok(mut c) => match c.status().await {
                Ok(_) => return Ok(c),
                Err(err) => last = Some(err),
            },
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| etcd_client::Error::InvalidArgs("no etcd endpoint given".into())))
}
