//! The Docker plugin API (network driver and IPAM) over hostile requests: any path, any
//! body, in any order, against a switch that says yes to everything it can. An answer is
//! a JSON value or an error with a message Docker can show, never a panic; nothing here
//! touches nftables, iptables, a state file or etcd.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use uswitch::control::handle::{pair, Handle};
use uswitch::control::protocol::{Request, Response};
use uswitch::docker::driver::Driver;
use uswitch::firewall::Firewall;

const PATHS: [&str; 20] = [
    "/Plugin.Activate",
    "/NetworkDriver.GetCapabilities",
    "/NetworkDriver.CreateNetwork",
    "/NetworkDriver.DeleteNetwork",
    "/NetworkDriver.CreateEndpoint",
    "/NetworkDriver.DeleteEndpoint",
    "/NetworkDriver.EndpointOperInfo",
    "/NetworkDriver.Join",
    "/NetworkDriver.Leave",
    "/NetworkDriver.ProgramExternalConnectivity",
    "/NetworkDriver.RevokeExternalConnectivity",
    "/NetworkDriver.DiscoverNew",
    "/IpamDriver.GetCapabilities",
    "/IpamDriver.GetDefaultAddressSpaces",
    "/IpamDriver.RequestPool",
    "/IpamDriver.ReleasePool",
    "/IpamDriver.RequestAddress",
    "/IpamDriver.ReleaseAddress",
    "/IpamDriver.Frob",
    "/../../etc/passwd",
];

#[derive(Arbitrary, Debug)]
struct Call {
    path: u8,
    body: Vec<u8>,
}

/// A switch stand-in on a thread of its own: every request is answered yes (with no
/// data), but for the cluster's status, which says this is no cluster node.
fn switch() -> Handle {
    static HANDLE: OnceLock<Handle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let poll = mio::Poll::new().expect("a poll");
            let (handle, inbox) = pair(poll.registry()).expect("a handle");
            std::thread::spawn(move || {
                let _poll = poll;
                loop {
                    inbox.drain(|req| match req {
                        Request::ShowCluster => Response::err("not a cluster node"),
                        Request::NetworkLs => Response::ok(Vec::<u8>::new()),
                        _ => Response::ok(serde_json::Value::Null),
                    });
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
            });
            handle
        })
        .clone()
}

fuzz_target!(|calls: Vec<Call>| {
    let mut driver = Driver::new(switch(), Firewall::inert("fuzz"), None);
    for c in calls.iter().take(32) {
        let path = PATHS[c.path as usize % PATHS.len()];
        match driver.handle(path, &c.body) {
            Ok(v) => assert!(!v.is_null(), "{path}: a null answer"),
            Err(e) => assert!(!e.is_empty(), "{path}: an error without a message"),
        }
    }
});
