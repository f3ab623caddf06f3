//! The command line's failures: each exits non-zero with one line saying what is wrong.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use common::*;

fn run(args: &[&str]) -> Output {
    Command::new(USWITCH)
        .args(args)
        .args(["--control", &control_path()])
        .env_remove("RUST_LOG")
        .output()
        .expect("running uswitch")
}

fn assert_one_line_failure(out: &Output, needle: &str) {
    one_line_failure(out, needle);
}

#[test]
fn bad_arguments_fail_with_one_clear_line() {
    let long = "a234567890123456";
    let cases: &[(&[&str], &str)] = &[
        (
            &["--port", "tap0", "--frobnicate"],
            "unexpected argument '--frobnicate'",
        ),
        (&["--port", ""], "empty"),
        (&["--port", long], "at most 15"),
        (&["--port", "tap0", "--fdb-max", "zero"], "whole number"),
        (&["--port", "tap0", "--port", "tap0"], "given twice"),
        (&["--vxlan", "blue"], "expected NETWORK:vni=N"),
        (
            &["--vxlan", "blue:vni=1,local=198.18.1.1,remote=198.18.1.1"],
            "another host's unicast address",
        ),
        (
            &[
                "--vxlan",
                "blue:vni=99999999,local=198.18.1.1,remote=198.18.1.2",
            ],
            "does not fit 24 bits",
        ),
        (&["--mtu", "10"], "not in 68..=65000"),
    ];
    for (args, needle) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_one_line_failure(&out, needle);
    }
}

/// An overlay whose local address is on no interface is refused at start, in one line
/// that says how to fix it (no privilege needed: it fails before any socket is bound).
#[test]
fn a_vxlan_local_address_must_be_ours() {
    let out = run(&[
        "--vxlan",
        "blue:vni=1,local=198.19.255.254,remote=198.18.1.2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_failure(
        &out,
        "local=198.19.255.254 is not an address of any interface",
    );
}

#[test]
fn help_and_version_succeed() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("--port <NAME[@NETWORK][,offload=off][,bum-rate=N]>"));
    assert!(run(&["--version"]).status.success());
}

#[test]
fn an_interface_that_is_not_a_tap_is_refused() {
    // Every namespace has a loopback called lo: no privilege needed to be refused.
    let out = run(&["--port", "lo"]);
    assert_one_line_failure(&out, "lo exists but is not a TUN/TAP device");
    assert_one_line_failure(&out, "--uplink lo@NETWORK");
}

/// A veth end given as --port: the error says --uplink is what attaches it.
#[test]
fn a_veth_given_as_a_port_suggests_an_uplink() {
    if !privileged("a_veth_given_as_a_port_suggests_an_uplink") {
        return;
    }
    let (a, b) = (unique("uv"), unique("uv"));
    sh(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
    let out = run(&["--port", &a]);
    sh_ok(&["ip", "link", "del", &a]);
    assert_one_line_failure(&out, &format!("attach it with --uplink {a}@NETWORK"));
}

#[test]
fn client_mistakes_are_caught_before_the_switch_is_asked() {
    // No switch runs at this control path: each must fail on its own words, not on the
    // missing switch.
    let cases: &[(&[&str], &str)] = &[
        (&["fdb", "add", "02:00:00:00:00:zz", "tap0"], "MAC"),
        (
            &["fdb", "add", "ff:ff:ff:ff:ff:ff", "tap0"],
            "group or zero address",
        ),
        (&["fdb", "del", "nonsense"], "MAC"),
        (
            &["--port", "tap0", "--log-level", "loud"],
            "off, error, warn, info, debug or trace",
        ),
        (
            &["--uplink", "eth9,offload=off"],
            "offload=off applies to TAPs only",
        ),
    ];
    for (args, needle) in cases {
        let out = run(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("cannot reach"),
            "{args:?} asked the switch: {err}"
        );
        assert_one_line_failure(&out, needle);
    }
}

/// `uswitch wait` returns once the switch answers, and says so when it never does.
#[test]
fn wait_returns_when_the_switch_answers() {
    let out = run(&["wait", "--timeout", "0.3"]);
    assert!(!out.status.success());
    assert_one_line_failure(&out, "no answer within 0.3 s");
    if !privileged("wait_returns_when_the_switch_answers") {
        return;
    }
    let control = control_path();
    let mut child = Command::new(USWITCH)
        .args(["--port", &unique("ut"), "--control", &control])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting uswitch");
    let out = Command::new(USWITCH)
        .args(["wait", "--control", &control, "--json"])
        .output()
        .expect("uswitch wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pong: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(pong["pid"], child.id());
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

#[test]
fn a_tun_device_is_refused() {
    if !privileged("a_tun_device_is_refused") {
        return;
    }
    let name = unique("utn");
    sh(&["ip", "tuntap", "add", "mode", "tun", "name", &name]);
    let out = run(&["--port", &name]);
    sh_ok(&["ip", "link", "del", &name]);
    assert_one_line_failure(&out, "is a TUN (layer 3) device");
}

#[test]
fn a_tap_held_by_another_switch_is_refused() {
    if !privileged("a_tap_held_by_another_switch_is_refused") {
        return;
    }
    let tap = unique("ut");
    let mut first = Uswitch::start(&["--port", &tap]);
    let out = run(&["--port", &tap]);
    assert_one_line_failure(&out, "in use by another process");
    assert!(first.stop().success());
}

#[test]
fn no_permission_is_explained() {
    if !privileged("no_permission_is_explained") {
        return;
    }
    // Run as nobody: creating a TAP needs CAP_NET_ADMIN.
    let out = Command::new(USWITCH)
        .args(["--port", &unique("ut"), "--control", &control_path()])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("running uswitch as nobody");
    assert_one_line_failure(&out, "CAP_NET_ADMIN");
}
