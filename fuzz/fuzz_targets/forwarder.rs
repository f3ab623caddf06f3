//! The forwarder driven by a sequence of (port, frame, time) events over a fixed lab:
//! two networks, a VXLAN endpoint whose two remotes share a split horizon, a small FDB.
//! After every event: nothing goes back out of its ingress, nothing crosses networks,
//! nothing from a horizon goes to its horizon, every FDB stays within its limit, only an
//! answer (ARP suppression) goes back to the asker, and for every port `rx_frames =
//! forwarded + floods + answered + rx drops`. The same events go to a second forwarder
//! whose ports are read by two workers (port `i` by worker `i % 2`, each with its own
//! caches of the shared tables and its own noted refreshes): its plans and its tables
//! must be exactly the first one's, as the workers promise.
#![no_main]

use std::net::IpAddr;

use arbitrary::Arbitrary;
use forwarder::{Delivery, DropReason, EgressCaps, FdbConfig, Forwarder, Plan, PortId, PortKind};
use libfuzzer_sys::fuzz_target;
use packets::offload::Offload;
use packets::{write_header, EtherType, MacAddr};

#[derive(Arbitrary, Debug)]
struct Event {
    port: u8,
    dst: u8,
    src: u8,
    len: u16,
    advance_ms: u16,
    gso: Option<u16>,
    raw: Option<Vec<u8>>,
    /// An ARP request for 198.18.0.N instead.
    arp: Option<u8>,
}

const MAX_ENTRIES: usize = 8;

fn mac(n: u8) -> MacAddr {
    match n % 16 {
        0 => MacAddr::BROADCAST,
        1 => MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]),
        2 => MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]),
        3 => MacAddr([0; 6]),
        k => MacAddr([2, 0, 0, 0, 0, k]),
    }
}

/// The lab every run starts from: its forwarder and its ports.
fn lab() -> (Forwarder, Vec<PortId>) {
    let mut fwd = Forwarder::new(FdbConfig {
        max_entries: MAX_ENTRIES,
        aging_ms: 5_000,
        move_hold_down_ms: 1_000,
    });
    let tap = EgressCaps {
        kind: PortKind::Tap,
        vnet_hdr: true,
        udp_gso: true,
    };
    let mut ports: Vec<PortId> = Vec::new();
    for (name, net, mtu) in [
        ("a", "blue", 1500),
        ("b", "blue", 1400),
        ("c", "green", 1500),
    ] {
        ports.push(fwd.attach(name, net, mtu, tap, 0).expect("a port"));
    }
    ports.push(fwd.add_port("d", "green", 9000).expect("a plain port"));
    let ep = fwd.add_endpoint("198.18.1.1:4789");
    fwd.bind_vni(ep, 42, "blue", 1450).expect("a vni");
    for r in ["198.18.1.2", "198.18.1.3"] {
        let r: IpAddr = r.parse().expect("an address");
        ports.push(fwd.add_remote(ep, 42, r).expect("a remote"));
    }
    // A MAC behind the first remote whose address the cluster advertised: questions for
    // it are answered.
    fwd.add_static(mac(5), ports[4]);
    if let Some(blue) = fwd.network_id("blue") {
        fwd.set_cluster_neighbors(blue, &[(IpAddr::from([198, 18, 0, 5]), mac(5))]);
    }
    (fwd, ports)
}

fuzz_target!(|events: Vec<Event>| {
    let (fwd, ports) = lab();
    let (mut duo, _) = lab();
    duo.set_workers(2);
    let mut lanes = [Plan::for_worker(0), Plan::for_worker(1)];
    let mut plan = Plan::default();
    let mut now = 0u64;
    for e in events.iter().take(512) {
        now += e.advance_ms as u64;
        let ingress = ports[e.port as usize % ports.len()];
        let frame = match (&e.raw, e.arp) {
            (_, Some(n)) => {
                let src = mac(e.src);
                let mut f = vec![0u8; 42];
                let _ = write_header(&mut f, MacAddr::BROADCAST, src, EtherType::ARP);
                f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
                f[22..28].copy_from_slice(&src.0);
                f[28..32].copy_from_slice(&[198, 18, 0, e.dst]);
                f[38..42].copy_from_slice(&[198, 18, 0, n % 8]);
                f
            }
            (Some(raw), None) => raw.clone(),
            (None, None) => {
                let mut f = vec![0u8; (e.len as usize % 10_000).max(14)];
                let _ = write_header(&mut f, mac(e.dst), mac(e.src), EtherType::IPV4);
                f
            }
        };
        let offload = match e.gso {
            Some(size) => Offload::Segment {
                tcp: true,
                size: size as usize,
            },
            None => Offload::None,
        };
        if now / 1_000 != (now - e.advance_ms as u64) / 1_000 {
            // The shell's sweep, once a second.
            assert_eq!(fwd.expire(now), duo.expire(now), "swept differently");
        }
        fwd.plan(ingress, &frame, offload, now, &mut plan);
        let lane = &mut lanes[e.port as usize % ports.len() % 2];
        duo.plan(ingress, &frame, offload, now, lane);
        assert_eq!(
            plan.egresses, lane.egresses,
            "two workers planned otherwise"
        );
        assert_eq!(plan.finish_checksum, lane.finish_checksum);
        for ((_, one), (_, two)) in fwd.networks().zip(duo.networks()) {
            // Sorted: static entries come in a hash map's order, which differs per table.
            let (a, b) = (one.fdb().sorted_entries(), two.fdb().sorted_entries());
            assert_eq!(a, b, "two workers' table differs");
        }
        let net = fwd.port(ingress).expect("attached").network();
        let horizon = fwd.port(ingress).expect("attached").horizon();
        for &(egress, delivery) in &plan.egresses {
            if let Delivery::Reply { with_header } = delivery {
                assert_eq!(egress, ingress, "an answer goes back to the asker");
                assert_eq!(plan.egresses.len(), 1, "an answer goes alone");
                let reply = plan.reply_bytes(with_header);
                assert!(!reply.is_empty());
                continue;
            }
            assert_ne!(egress, ingress, "hairpin");
            let out = fwd.port(egress).expect("an attached egress");
            assert_eq!(out.network(), net, "crossed networks");
            assert!(
                horizon == 0 || out.horizon() != horizon,
                "split horizon broken"
            );
        }
        for (_, n) in fwd.networks() {
            assert!(n.fdb().len() <= MAX_ENTRIES, "fdb over its limit");
        }
        for (_, p) in fwd.ports() {
            let c = p.counters();
            assert_eq!(
                c.rx_frames,
                c.forwarded + c.floods + c.answered + c.rx_drops(),
                "port {}: {c}",
                p.name()
            );
            let _ = c.drops(DropReason::EgressTooBig);
        }
    }
});
