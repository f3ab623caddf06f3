//! The cluster agent: a thread of its own with a current-thread tokio runtime (what
//! etcd-client needs), talking to the loop only through a [`Handle`] (a channel and a
//! waker), so the data plane never waits for etcd.
//!
//! A session: connect, grant the node's lease and keep it alive, write the node record,
//! list the prefix into a [`View`] and watch it from the listing's revision. Four times a
//! second (and within 100 ms of watch events, a burst of them at once) the switch is
//! brought in line with the view — cluster
//! networks declared with their VNI at the node's VTEP, each network's flood list made of
//! the VTEPs of the nodes that have a port on it, advertised MACs of other nodes installed
//! as static FDB entries on their VTEP's remote port — and the node's own records are
//! brought in line with the switch: a membership per cluster network with a local port, an
//! advertisement per MAC learned on a local port.
//!
//! When etcd cannot be reached (or loses quorum) the session ends: the switch keeps
//! forwarding on what it last had (fail static), the failure is logged once and shown by
//! `show cluster`, and the next session watches again from the revision the view knew,
//! catching up on what it missed, deletions included; when etcd has compacted that
//! history away, the watch says so and the session after lists afresh. Each session
//! re-asserts the node's records, on the lease it had if etcd still holds it.
//!
//! The lease's id is kept in the state directory, so a node restarted under the same name
//! within the TTL takes its lease back, with the addresses its containers hold, and its
//! records: those still true are kept, the others deleted. A clean stop withdraws the
//! node's record, memberships and MACs at once (the others stop flooding to it without
//! waiting for the TTL); the addresses stay on the lease for a restart to take back.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};
use log::{info, warn};

use super::records::{Keys, MacRecord, NodeRecord, View};
use crate::config::specs::ClusterSpec;
use crate::control::handle::Handle;
use crate::control::protocol::{
    ClusterNetworkRow, ClusterStatus, FdbRow, Neighbor, NeighborRow, NetworkRow, OverlayRequest,
    PortRow, Request, Response,
};

/// Keys per page of a listing.
const LIST_PAGE: i64 = 5_000;

/// How soon after watch events the switch is brought in line with them.
const SETTLE_EVERY: Duration = Duration::from_millis(100);

/// How often remote MACs are checked against an unchanged view.
const RECHECK_EVERY: Duration = Duration::from_secs(10);

/// How often the node's records and the switch are brought in line.
const SYNC_EVERY: Duration = Duration::from_millis(250);

pub struct Agent {
    spec: ClusterSpec,
    keys: Keys,
    switch: Handle,
    status: Arc<Mutex<ClusterStatus>>,
    /// What this process put into the switch: networks it declared, remotes per
    /// network, static entries per (network, MAC) and the port they point at.
    declared: BTreeSet<String>,
    remotes: BTreeMap<String, BTreeSet<IpAddr>>,
    installed: BTreeMap<(String, String), String>,
    /// The other nodes' addresses last given to the switch, per network (ARP suppression).
    neighbors: BTreeMap<String, Vec<Neighbor>>,
    /// The view's revision when remote MACs and addresses were last brought in line,
    /// and when that was.
    installed_at: Option<i64>,
    installed_checked: Instant,
    /// Conflicting MAC claims already alerted.
    alerted: BTreeSet<(String, String)>,
    /// This session's own keys in etcd, and the value each holds.
    mine: BTreeMap<String, Vec<u8>>,
    /// The node's lease, kept across sessions while etcd still has it: what hangs on it
    /// (the addresses containers hold, above all) must not go because one connection
    /// broke.
    lease: Option<i64>,
    /// Sessions tried: where the next one starts among the endpoints.
    attempts: usize,
    /// The view of the last session, to catch up from (None: list afresh).
    view: Option<View>,
    /// Where the lease's id is kept across restarts.
    lease_file: Option<PathBuf>,
    /// Told when the switch stops cleanly: the node withdraws its records.
    stop: Arc<Notify>,
}

/// What the state directory keeps of the node between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedLease {
    node: String,
    lease: i64,
}

/// Says the agent's thread ended, however it ended.
struct Done(std::sync::mpsc::Sender<()>);

impl Drop for Done {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// The running agent, for the switch to stop it.
pub struct Running {
    stop: Arc<Notify>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Running {
    /// Tells the agent the switch is stopping and waits up to `wait` while it withdraws
    /// the node's records (an unreachable etcd is not waited for longer).
    pub fn stop(self, wait: Duration) {
        self.stop.notify_one();
        let _ = self.done.recv_timeout(wait);
    }
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    /// The switch is going away: the agent stops.
    SwitchGone,
    /// etcd failed: fail static, try again.
    Etcd(String),
}

impl From<etcd_client::Error> for End {
    fn from(e: etcd_client::Error) -> End {
        End::Etcd(e.to_string())
    }
}

impl Agent {
    pub fn new(
        spec: ClusterSpec,
        switch: Handle,
        status: Arc<Mutex<ClusterStatus>>,
        state_dir: Option<PathBuf>,
    ) -> Agent {
        let keys = Keys::new(&spec.prefix);
        let lease_file = state_dir.map(|d| d.join("cluster.json"));
        let saved: Option<SavedLease> = lease_file
            .as_deref()
            .and_then(|f| crate::state_file::read(f, "cluster lease").ok().flatten());
        let lease = saved.filter(|s| s.node == spec.node).map(|s| s.lease);
        Agent {
            spec,
            keys,
            switch,
            status,
            declared: BTreeSet::new(),
            remotes: BTreeMap::new(),
            installed: BTreeMap::new(),
            neighbors: BTreeMap::new(),
            installed_at: None,
            installed_checked: Instant::now(),
            alerted: BTreeSet::new(),
            mine: BTreeMap::new(),
            lease,
            attempts: 0,
            view: None,
            lease_file,
            stop: Arc::new(Notify::new()),
        }
    }

    /// Runs the agent on a thread of its own until the switch goes away.
    pub fn spawn(self) -> std::io::Result<Running> {
        let stop = Arc::clone(&self.stop);
        let (tx, done) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("cluster".into())
            .spawn(move || {
                let _done = Done(tx);
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        log::error!("the cluster agent's runtime: {e}; no cluster");
                        return;
                    }
                };
                rt.block_on(self.run());
            })?;
        Ok(Running { stop, done })
    }

    /// Remembers the lease for a restart under the same name.
    fn save_lease(&self, lease: i64) {
        let Some(f) = &self.lease_file else {
            return;
        };
        let saved = SavedLease {
            node: self.spec.node.clone(),
            lease,
        };
        if let Err(e) = crate::state_file::write(f, &saved) {
            warn!("cluster: keeping the lease in {}: {e}", f.display());
        }
    }

    async fn run(mut self) {
        let mut logged = false;
        loop {
            match self.session().await {
                End::SwitchGone => return,
                End::Etcd(e) => {
                    if !logged {
                        warn!(
                            "cluster: etcd at {} is not reachable ({e}); forwarding goes on \
                             with what the switch has, and uswitch keeps trying",
                            self.spec.endpoints.join(",")
                        );
                        logged = true;
                    }
                    // The lease stays: etcd keeps it (and refreshes it on a new leader),
                    // and the next session takes it back if it is still there.
                    self.set_status(|s| s.etcd = format!("unreachable: {e}"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            if self.status().etcd == "connected" {
                logged = false;
            }
        }
    }

    fn status(&self) -> ClusterStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set_status(&self, f: impl FnOnce(&mut ClusterStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// Asks the switch; `Err(SwitchGone)` once it is shutting down.
    fn ask(&self, req: Request) -> Result<Response, End> {
        let r = self.switch.call(req);
        if !r.ok
            && r.error
                .as_deref()
                .is_some_and(|e| e.contains("shutting down"))
        {
            return Err(End::SwitchGone);
        }
        Ok(r)
    }

    fn ask_data<T: serde::de::DeserializeOwned>(&self, req: Request) -> Result<T, End> {
        let r = self.ask(req)?;
        serde_json::from_value(r.data).map_err(|e| End::Etcd(format!("the switch's answer: {e}")))
    }

    async fn session(&mut self) -> End {
        let mut view = self.view.take();
        let end = match self.try_session(&mut view).await {
            Ok(never) => match never {},
            Err(e) => e,
        };
        self.view = view;
        end
    }

    /// Lists the prefix into a new view, a page at a time at one revision: a
    /// hundred thousand MACs are more than one gRPC message may carry (4 MiB).
    async fn list(&self, client: &mut Client) -> Result<View, End> {
        let prefix = self.keys.prefix();
        let mut end = prefix.clone().into_bytes();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let mut view = View::default();
        let mut from = prefix.into_bytes();
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let page = client.get(from.clone(), Some(options)).await?;
            if revision == 0 {
                revision = page.header().map_or(0, |h| h.revision());
            }
            for kv in page.kvs() {
                view.apply(
                    &self.keys,
                    &String::from_utf8_lossy(kv.key()),
                    Some(kv.value()),
                    kv.mod_revision(),
                );
            }
            match page.kvs().last() {
                Some(kv) if page.more() => {
                    from = kv.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        view.revision = revision;
        Ok(view)
    }

    /// `done`, after withdrawing the node when it says the switch is gone (stopped
    /// while the agent was asking it something).
    async fn unless_gone(&mut self, client: &mut Client, done: Result<(), End>) -> Result<(), End> {
        if let Err(End::SwitchGone) = done {
            self.withdraw(client).await;
        }
        done
    }

    /// Deletes the node's record, memberships and MACs, on a clean stop (a second at
    /// most: an etcd that does not answer lets the TTL do it).
    async fn withdraw(&mut self, client: &mut Client) {
        let mut keys: Vec<String> = std::mem::take(&mut self.mine).into_keys().collect();
        keys.push(self.keys.node(&self.spec.node));
        let deletes = async {
            for k in &keys {
                client.delete(k.as_str(), None).await?;
            }
            Ok::<(), etcd_client::Error>(())
        };
        match tokio::time::timeout(Duration::from_secs(1), deletes).await {
            Ok(Ok(())) => info!(
                "cluster: node {} withdrew its records ({} keys)",
                self.spec.node,
                keys.len()
            ),
            _ => warn!(
                "cluster: node {} could not withdraw its records; they go with its lease",
                self.spec.node
            ),
        }
    }

    async fn try_session(
        &mut self,
        kept_view: &mut Option<View>,
    ) -> Result<std::convert::Infallible, End> {
        self.attempts += 1;
        let mut client = super::connect_any(&self.spec.endpoints, self.attempts).await?;
        let ttl = self.spec.ttl_secs as i64;
        let kept = match self.lease {
            Some(id) => client
                .lease_time_to_live(id, None)
                .await
                .ok()
                .filter(|r| r.ttl() > 0)
                .map(|_| id),
            None => None,
        };
        let lease = match kept {
            Some(id) => id,
            None => client.lease_grant(ttl, None).await?.id(),
        };
        self.lease = Some(lease);
        self.save_lease(lease);
        let (mut keeper, mut alive) = client.lease_keep_alive(lease).await?;
        let node = NodeRecord {
            name: self.spec.node.clone(),
            vtep: self.spec.vtep,
            port: self.spec.port,
        };
        let with_lease = || Some(PutOptions::new().with_lease(lease));
        let value = serde_json::to_vec(&node).map_err(|e| End::Etcd(e.to_string()))?;
        client
            .put(self.keys.node(&self.spec.node), value, with_lease())
            .await?;
        // Catch up from the last view, or list afresh.
        let caught_up = kept_view.take().filter(|v| v.revision > 0);
        let listed = caught_up.is_none();
        let view = match caught_up {
            Some(v) => v,
            None => self.list(&mut client).await?,
        };
        // The records the store holds for this node (written by this process before, or
        // by the one it restarted from): the first advertisement keeps those still true
        // and deletes the rest.
        self.mine = view.records_of(&self.keys, &self.spec.node);
        let view = kept_view.insert(view);
        let mut watch = client
            .watch(
                self.keys.prefix(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(view.revision + 1),
                ),
            )
            .await?;
        info!(
            "cluster: node {} (VTEP {}:{}) joined through etcd at {}, lease {lease:x}, {} revision {}",
            self.spec.node,
            self.spec.vtep,
            self.spec.port,
            self.spec.endpoints.join(","),
            if listed { "listed at" } else { "catching up from" },
            view.revision
        );
        let listed_at = view.revision;
        self.set_status(|s| {
            s.etcd = "connected".into();
            s.lease = Some(lease);
            s.lease_answered_ms = Some(crate::control::protocol::unix_ms());
            s.etcd_revision = s.etcd_revision.max(listed_at);
        });
        let mut tick = tokio::time::interval(SYNC_EVERY);
        let keep_every = Duration::from_secs((self.spec.ttl_secs / 3).max(1));
        let mut kept = Instant::now();
        // When etcd last said the lease lives: a member that stops answering ends the
        // session before the lease would expire unnoticed.
        let mut answered = Instant::now();
        let ttl_dur = Duration::from_secs(self.spec.ttl_secs);
        let stop = Arc::clone(&self.stop);
        let mut settle = tokio::time::interval(SETTLE_EVERY);
        settle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = false;
        loop {
            tokio::select! {
                _ = stop.notified() => {
                    self.withdraw(&mut client).await;
                    return Err(End::SwitchGone);
                }
                msg = watch.message() => {
                    let Some(resp) = msg? else {
                        return Err(End::Etcd("the watch ended".into()));
                    };
                    if resp.canceled() || resp.compact_revision() > 0 {
                        // The history to catch up from is gone: list afresh next time.
                        info!(
                            "cluster: etcd compacted its history past revision {} (at {}); \
                             listing afresh",
                            view.revision,
                            resp.compact_revision()
                        );
                        view.revision = 0;
                        return Err(End::Etcd(format!(
                            "the watch was cancelled (compacted at {}); listing again",
                            resp.compact_revision()
                        )));
                    }
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let key = String::from_utf8_lossy(kv.key()).into_owned();
                        let value = (ev.event_type() == EventType::Put).then(|| kv.value());
                        view.apply(&self.keys, &key, value, kv.mod_revision());
                    }
                    if let Some(h) = resp.header() {
                        view.revision = view.revision.max(h.revision());
                        let heard = h.revision();
                        self.set_status(|s| s.etcd_revision = s.etcd_revision.max(heard));
                    }
                    // Brought in line at the next settle tick: a burst of events (a
                    // thousand nodes' MACs arriving) costs one reconciliation, not one
                    // each.
                    dirty = true;
                }
                _ = settle.tick(), if dirty => {
                    dirty = false;
                    let done = self.reconcile(view);
                    self.unless_gone(&mut client, done).await?;
                }
                _ = tick.tick() => {
                    if answered.elapsed() > ttl_dur {
                        return Err(End::Etcd(format!(
                            "no keep-alive answer for {} s",
                            self.spec.ttl_secs
                        )));
                    }
                    if kept.elapsed() >= keep_every {
                        keeper.keep_alive().await?;
                        kept = Instant::now();
                    }
                    let mut done = self.advertise(&mut client, lease, view).await;
                    if done.is_ok() {
                        done = self.reconcile(view);
                    }
                    self.unless_gone(&mut client, done).await?;
                }
                ka = alive.message() => {
                    match ka? {
                        Some(r) if r.ttl() > 0 => {
                            answered = Instant::now();
                            let heard = r.header().map_or(0, |h| h.revision());
                            self.set_status(|s| {
                                s.lease_answered_ms = Some(crate::control::protocol::unix_ms());
                                s.etcd_revision = s.etcd_revision.max(heard);
                            });
                        }
                        Some(_) => return Err(End::Etcd("the node's lease expired".into())),
                        None => return Err(End::Etcd("the lease keep-alive ended".into())),
                    }
                }
            }
        }
    }

    /// The node's own records in line with the switch: a membership per cluster network
    /// with a local port, an advertisement per MAC learned on one, with the addresses
    /// that MAC was heard claiming (the EVPN type-2 route's MAC and IP).
    async fn advertise(&mut self, client: &mut Client, lease: i64, view: &View) -> Result<(), End> {
        let ports: Vec<PortRow> = self.ask_data(Request::ShowPorts)?;
        let fdb: Vec<FdbRow> = self.ask_data(Request::ShowFdb {
            network: None,
            local: true,
        })?;
        let heard: Vec<NeighborRow> = self.ask_data(Request::ShowNeighbors {
            network: None,
            local: true,
        })?;
        let mut ips: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
        for n in heard.iter().filter(|n| n.origin == "local") {
            ips.entry((n.network.as_str(), n.mac.as_str()))
                .or_default()
                .push(n.ip.to_string());
        }
        let local: BTreeSet<&str> = ports
            .iter()
            .filter(|p| p.kind != "vxlan" && view.networks.contains_key(&p.network))
            .map(|p| p.name.as_str())
            .collect();
        let me = &self.spec.node;
        let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for p in ports.iter().filter(|p| local.contains(p.name.as_str())) {
            want.insert(self.keys.member(&p.network, me), Vec::new());
        }
        for e in fdb.iter().filter(|e| local.contains(e.port.as_str())) {
            let record = MacRecord {
                ips: ips
                    .get(&(e.network.as_str(), e.mac.as_str()))
                    .cloned()
                    .unwrap_or_default(),
            };
            let value = serde_json::to_vec(&record).unwrap_or_default();
            want.insert(self.keys.mac(&e.network, &e.mac, me), value);
        }
        for (key, value) in &want {
            if self.mine.get(key) == Some(value) {
                continue;
            }
            client
                .put(
                    key.as_str(),
                    value.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                )
                .await?;
        }
        for key in self.mine.keys().filter(|k| !want.contains_key(*k)) {
            client.delete(key.as_str(), None).await?;
        }
        let advertised = want.keys().filter(|k| k.contains("/macs/")).count();
        self.mine = want;
        self.set_status(|s| s.advertised_macs = advertised);
        Ok(())
    }

    /// The switch in line with the view.
    fn reconcile(&mut self, view: &View) -> Result<(), End> {
        let me = self.spec.node.clone();
        // Said before any network is declared here: once `network ls` shows a cluster
        // network, `show cluster` has it too, so `uswitch run` takes the container's
        // address from etcd (it once took one of its own in that gap, and two nodes
        // gave their containers the same address).
        let networks = Self::network_rows(view);
        self.set_status(|s| s.networks = networks);
        let local: Vec<NetworkRow> = self.ask_data(Request::NetworkLs)?;
        for (name, net) in &view.networks {
            if self.declared.contains(name) {
                continue;
            }
            if local.iter().any(|n| &n.name == name) {
                // Made before (a restarted agent, or by hand): adopt it as it is.
                self.declared.insert(name.clone());
                continue;
            }
            let r = self.ask(Request::NetworkCreate {
                name: name.clone(),
                subnet: net.subnet.clone(),
                overlay: Some(OverlayRequest {
                    vni: net.vni,
                    remotes: Vec::new(),
                    local: Some(self.spec.vtep),
                    port: Some(self.spec.port),
                    mtu: net.mtu,
                }),
                mtu: net.mtu,
            })?;
            if r.ok {
                info!("cluster: network {name} (vni {}) declared here", net.vni);
                self.declared.insert(name.clone());
            } else {
                warn!("cluster: network {name}: {}", r.error.unwrap_or_default());
            }
        }
        // Flood lists: the VTEPs of the other nodes with a port on the network.
        let declared: Vec<String> = self.declared.iter().cloned().collect();
        for name in &declared {
            let want = view.flood_list(name, &me);
            let have = self.remotes.entry(name.clone()).or_default().clone();
            for gone in have.difference(&want) {
                self.ask(Request::OverlayRemoteDel {
                    network: name.clone(),
                    remote: *gone,
                })?;
                self.remotes.entry(name.clone()).or_default().remove(gone);
            }
            for new in want.difference(&have) {
                let r = self.ask(Request::OverlayRemoteAdd {
                    network: name.clone(),
                    remote: *new,
                })?;
                if r.ok {
                    self.remotes.entry(name.clone()).or_default().insert(*new);
                } else {
                    warn!(
                        "cluster: remote {new} on {name}: {}",
                        r.error.unwrap_or_default()
                    );
                }
            }
        }
        // Remote MACs and addresses, when the view moved on (or every few seconds, to
        // retry what the switch refused): with a hundred thousand MACs, going through
        // them all every second would cost the agent a core.
        let due = self.installed_at != Some(view.revision)
            || self.installed_checked.elapsed() >= RECHECK_EVERY;
        if due {
            self.installed_at = Some(view.revision);
            self.installed_checked = Instant::now();
            // Remote MACs: static entries on their VTEP's remote port.
            let mut want: BTreeMap<(String, String), String> = BTreeMap::new();
            for (net, mac) in view.macs.keys() {
                let (Some(record), Some((owner, contested))) =
                    (view.networks.get(net), view.mac_owner(net, mac))
                else {
                    continue;
                };
                if contested && self.alerted.insert((net.clone(), mac.clone())) {
                    warn!(
                        "cluster: MAC {mac} on {net} is claimed by several nodes; the latest \
                         claim ({owner}) wins"
                    );
                }
                if owner == me {
                    continue;
                }
                let Some(vtep) = view.nodes.get(owner).map(|n| n.vtep) else {
                    continue;
                };
                if self.remotes.get(net).is_some_and(|r| r.contains(&vtep)) {
                    let port = forwarder::remote_port_name(record.vni, vtep);
                    want.insert((net.clone(), mac.clone()), port);
                }
            }
            let stale: Vec<(String, String)> = self
                .installed
                .iter()
                .filter(|(k, port)| want.get(*k) != Some(*port))
                .map(|(k, _)| k.clone())
                .collect();
            for (net, mac) in stale {
                self.ask(Request::FdbDel {
                    mac: mac.clone(),
                    network: Some(net.clone()),
                })?;
                self.installed.remove(&(net, mac));
            }
            for (k, port) in want {
                if self.installed.get(&k) == Some(&port) {
                    continue;
                }
                let r = self.ask(Request::FdbAdd {
                    mac: k.1.clone(),
                    port: port.clone(),
                })?;
                if r.ok {
                    self.installed.insert(k, port);
                }
            }
            // The other nodes' addresses, for ARP suppression.
            for name in &declared {
                let want: Vec<Neighbor> = view
                    .remote_neighbors(name, &me)
                    .into_iter()
                    .map(|(ip, mac)| Neighbor { ip, mac })
                    .collect();
                if self.neighbors.get(name) == Some(&want) {
                    continue;
                }
                let r = self.ask(Request::NeighborSet {
                    network: name.clone(),
                    neighbors: want.clone(),
                })?;
                if r.ok {
                    self.neighbors.insert(name.clone(), want);
                } else {
                    warn!(
                        "cluster: addresses on {name}: {}",
                        r.error.unwrap_or_default()
                    );
                }
            }
        }
        let nodes = view
            .nodes
            .values()
            .map(|n| (n.name.clone(), format!("{}:{}", n.vtep, n.port)))
            .collect();
        let (remote_macs, revision, addresses) =
            (self.installed.len(), view.revision, view.addresses);
        self.set_status(|s| {
            s.nodes = nodes;
            s.networks = Self::network_rows(view);
            s.remote_macs = remote_macs;
            s.revision = revision;
            s.addresses = addresses;
        });
        Ok(())
    }

    /// `show cluster`'s networks: every cluster network of the view, with its members.
    fn network_rows(view: &View) -> Vec<ClusterNetworkRow> {
        view.networks
            .values()
            .map(|n| ClusterNetworkRow {
                name: n.name.clone(),
                vni: n.vni,
                subnet: n.subnet.clone(),
                members: view
                    .members
                    .get(&n.name)
                    .map(|m| m.iter().cloned().collect())
                    .unwrap_or_default(),
            })
            .collect()
    }
}
