//! Overlay networks across many hosts through etcd (`--cluster etcd=URL,...`): each node
//! keeps its membership and MAC records in the store on a lease, learns the others' from a
//! watch, and turns them into flood lists and static FDB entries ([`agent`]); networks and
//! addresses are cluster objects made by transactions ([`store`]); the layout of the keys
//! and the view built from them are in [`records`].

pub mod agent;
pub mod records;
pub mod store;
