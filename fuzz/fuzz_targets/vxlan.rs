//! VXLAN receive classification: any datagram from any of a few senders, at an endpoint
//! with several VNIs. A datagram is admitted exactly when its header is one the kernel
//! accepts, its VNI is bound and its sender is one of that VNI's remotes; every datagram
//! is counted once, every refusal under one reason.
#![no_main]

use std::net::IpAddr;

use arbitrary::Arbitrary;
use forwarder::{FdbConfig, Forwarder};
use libfuzzer_sys::fuzz_target;
use packets::vxlan::parse_header;

#[derive(Arbitrary, Debug)]
struct Input {
    datagrams: Vec<(u8, Vec<u8>)>,
}

const SENDERS: [&str; 4] = [
    "198.18.1.2",
    "198.18.1.3",
    "::ffff:198.18.1.2",
    "198.18.1.9",
];

fuzz_target!(|input: Input| {
    let mut fwd = Forwarder::new(FdbConfig::default());
    let ep = fwd.add_endpoint("198.18.1.1:4789");
    let senders: Vec<IpAddr> = SENDERS.iter().filter_map(|s| s.parse().ok()).collect();
    // VNI 42 has both .2 and .3; VNI 43 only .3.
    fwd.bind_vni(ep, 42, "blue", 1450).expect("vni 42");
    fwd.bind_vni(ep, 43, "green", 1450).expect("vni 43");
    let p42 = [
        fwd.add_remote(ep, 42, senders[0]).expect("remote"),
        fwd.add_remote(ep, 42, senders[1]).expect("remote"),
    ];
    let p43 = fwd.add_remote(ep, 43, senders[1]).expect("remote");
    let mut seen = 0;
    for (who, d) in &input.datagrams {
        let from = senders[*who as usize % senders.len()];
        let verdict = fwd.admit_vxlan(0, ep, d, from);
        seen += 1;
        let expected = match parse_header(d) {
            Ok(42) if from == senders[0] || from == senders[2] => Some(p42[0]),
            Ok(42) if from == senders[1] => Some(p42[1]),
            Ok(43) if from == senders[1] => Some(p43),
            _ => None,
        };
        assert_eq!(verdict.ok(), expected, "{from} {d:02x?}");
    }
    let c = fwd.endpoint(ep).expect("endpoint").counters();
    assert_eq!(c.rx_frames, seen);
    let admitted = seen - c.total_drops();
    assert!(admitted <= seen);
});
