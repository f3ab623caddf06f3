//! TAP offloads: frames cross the fd behind a virtio-net header, so 64 KiB GSO frames and
//! partial checksums pass between offloaded TAPs untouched, and are segmented and
//! checksummed in software for a TAP without offloads. TCP bulk data, checked byte for
//! byte, is the test: ping alone passes with a broken offload setup.

mod common;

use common::*;
use serde_json::Value;

fn average_frame(p: &Value, dir: &str) -> u64 {
    let c = &p["counters"];
    c[format!("{dir}_bytes")].as_u64().unwrap()
        / c[format!("{dir}_frames")].as_u64().unwrap().max(1)
}

#[test]
fn offloaded_taps_pass_gso_frames_through() {
    if !privileged("offloaded_taps_pass_gso_frames_through") {
        return;
    }
    let (sw, [a, b], ha, hb) = two_hosts();
    tcp_exchange(&ha, &hb, "198.18.0.2", 5300, 64 << 20);
    let ports = sw.json(&["show", "ports"]);
    for name in [&a, &b] {
        let offloads = port(&ports, name)["offloads"].as_array().unwrap().clone();
        for want in ["csum", "tso4", "tso6"] {
            assert!(
                offloads.iter().any(|o| o == want),
                "{name} lacks {want}: {offloads:?}"
            );
        }
    }
    // Far more than an MTU per frame on average: GSO frames crossed whole.
    let avg = average_frame(port(&ports, &a), "rx");
    assert!(avg > 3000, "average frame from {a} is {avg} bytes: no GSO");
}

#[test]
fn tcp_between_an_offloaded_tap_and_a_plain_one() {
    if !privileged("tcp_between_an_offloaded_tap_and_a_plain_one") {
        return;
    }
    let (a, b) = (unique("ut"), unique("ut"));
    let sw = Uswitch::start(&["--port", &a, "--port", &format!("{b},offload=off")]);
    let (ha, hb) = (Netns::new(), Netns::new());
    ha.adopt(&a, "02:00:00:00:00:01", "198.18.0.1/24");
    hb.adopt(&b, "02:00:00:00:00:02", "198.18.0.2/24");
    tcp_exchange(&ha, &hb, "198.18.0.2", 5301, 64 << 20);
    let ports = sw.json(&["show", "ports"]);
    assert_eq!(port(&ports, &b)["offloads"], serde_json::json!([]));
    // The offloaded side sent GSO frames; the plain side only ever got MTU-sized ones,
    // so uswitch segmented (and checksummed) them in software.
    assert!(average_frame(port(&ports, &a), "rx") > 3000);
    let plain = &port(&ports, &b)["counters"];
    assert!(average_frame(port(&ports, &b), "tx") <= 1514, "{plain}");
    assert_eq!(plain["drops"]["egress_too_big"], 0, "{plain}");
    assert_eq!(plain["drops"]["bad_offload"], 0, "{plain}");
}

#[test]
fn a_stale_offload_mask_is_reset_on_a_reused_tap() {
    if !privileged("a_stale_offload_mask_is_reset_on_a_reused_tap") {
        return;
    }
    // A persistent TAP first used with offloads, then attached without: the mask is
    // device-wide and outlives the first user, so it must be cleared explicitly or the
    // kernel keeps handing over GSO frames that a plain reader cannot take.
    let tap = PersistentTap::new();
    let other = unique("ut");
    {
        let mut first = Uswitch::start(&["--port", &tap.name]);
        assert!(first.stop().success());
    }
    let sw = Uswitch::start(&[
        "--port",
        &format!("{},offload=off", tap.name),
        "--port",
        &other,
    ]);
    let (ha, hb) = (Netns::new(), Netns::new());
    ha.adopt(&tap.name, "02:00:00:00:00:01", "198.18.0.1/24");
    hb.adopt(&other, "02:00:00:00:00:02", "198.18.0.2/24");
    tcp_exchange(&ha, &hb, "198.18.0.2", 5302, 16 << 20);
    let ports = sw.json(&["show", "ports"]);
    let c = &port(&ports, &tap.name)["counters"];
    assert_eq!(c["drops"]["oversized"], 0, "{c}");
    // Put it back where the guard can delete it.
    sh(&["ip", "-n", &ha.name, "link", "set", &tap.name, "netns", "1"]);
}
