//! Ports beyond plain TAPs: an uplink (AF_PACKET on an existing interface) and a host
//! port (a TAP with an address in the switch's own namespace). The switch runs in a
//! namespace of its own so nothing touches the machine's root namespace.

mod common;

use common::*;

/// A veth from the switch's namespace (its end left down, to be the uplink) to a LAN
/// host at 198.18.0.100/24; the uplink's name, and a name for the container's TAP.
fn lan_link(swns: &Netns, lan: &Netns) -> (String, String) {
    let (up, peer, tap) = (unique("uv"), unique("uv"), unique("ut"));
    sh(&[
        "ip", "-n", &swns.name, "link", "add", &up, "type", "veth", "peer", "name", &peer, "netns",
        &lan.name,
    ]);
    sh(&[
        "ip",
        "-n",
        &lan.name,
        "addr",
        "add",
        "198.18.0.100/24",
        "dev",
        &peer,
    ]);
    sh(&["ip", "-n", &lan.name, "link", "set", &peer, "up"]);
    (up, tap)
}

#[test]
fn an_uplink_puts_containers_on_the_lan_with_their_own_macs() {
    if !privileged("an_uplink_puts_containers_on_the_lan_with_their_own_macs") {
        return;
    }
    let (swns, lan, c1) = (Netns::new(), Netns::new(), Netns::new());
    let (up, tap) = lan_link(&swns, &lan);
    sh(&["ip", "-n", &swns.name, "link", "set", &up, "up"]);

    // The uplink's own storm-control rate is honoured (it was once parsed and ignored).
    let up_spec = format!("{up},bum-rate=4321");
    let mut sw = Uswitch::start_in(&swns, &["--port", &tap, "--uplink", &up_spec]);
    c1.adopt_from(&swns, &tap, "02:00:00:00:00:01", "198.18.0.1/24");
    assert!(
        c1.ping("198.18.0.100"),
        "the container cannot reach the LAN host"
    );
    assert!(
        lan.ping("198.18.0.1"),
        "the LAN host cannot reach the container"
    );
    // The LAN sees the container's own MAC, not the uplink's.
    let neigh = sh(&["ip", "-n", &lan.name, "neigh", "show", "198.18.0.1"]);
    assert!(neigh.contains("02:00:00:00:00:01"), "{neigh}");
    tcp_exchange(&c1, &lan, "198.18.0.100", 5200, 4 << 20);

    let ports = sw.json(&["show", "ports"]);
    let uplink = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == up.as_str())
        .unwrap();
    assert_eq!(uplink["kind"], "uplink");
    assert_eq!(uplink["bum_rate"], 4321);
    // The LAN host's half of the exchange came in through the uplink. (Counted in bytes:
    // the uplink takes the kernel's GRO frames, so 4 MiB may be as few as 64 frames.)
    let rx_bytes = uplink["counters"]["rx_bytes"].as_u64().unwrap_or(0);
    assert!(rx_bytes >= 4 << 20, "the uplink received {rx_bytes} bytes");
    assert!(sw.stop().success());
    // The uplink itself is left in place.
    assert!(link_exists(Some(&swns.name), &up));
}

/// The state `show ports` gives the port `name`, or None once it is detached.
fn port_state(sw: &Uswitch, name: &str) -> Option<String> {
    let ports = sw.json(&["show", "ports"]);
    let port = ports.as_array()?.iter().find(|p| p["name"] == name)?;
    Some(port["state"].as_str().unwrap_or("?").to_string())
}

/// Waits up to five seconds for `port_state` to be `want`.
fn wait_for_state(sw: &Uswitch, name: &str, want: Option<&str>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let state = port_state(sw, name);
        if state.as_deref() == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "uplink {name}: state {state:?}, expected {want:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// An uplink whose link is down, at start or later, stays attached (as a bridge port
/// does) and forwards once the link is up again; only deleting the interface detaches
/// it. (It was once detached on the first read, which says ENETDOWN.)
#[test]
fn an_uplink_whose_link_is_down_stays_attached_and_forwards_once_up() {
    if !privileged("an_uplink_whose_link_is_down_stays_attached_and_forwards_once_up") {
        return;
    }
    let (swns, lan, c1) = (Netns::new(), Netns::new(), Netns::new());
    let (up, tap) = lan_link(&swns, &lan);
    let link = |state: &str| sh(&["ip", "-n", &swns.name, "link", "set", &up, state]);
    // Down when the switch attaches it.
    let mut sw = Uswitch::start_in(&swns, &["--port", &tap, "--uplink", &up]);
    c1.adopt_from(&swns, &tap, "02:00:00:00:00:01", "198.18.0.1/24");
    wait_for_state(&sw, &up, Some("down"));
    link("up");
    assert!(
        c1.ping("198.18.0.100"),
        "the container cannot reach the LAN once the uplink is up"
    );
    wait_for_state(&sw, &up, Some("up"));
    // Down and up again while it forwards.
    link("down");
    wait_for_state(&sw, &up, Some("down"));
    link("up");
    assert!(
        c1.ping("198.18.0.100"),
        "the container cannot reach the LAN after the uplink came back"
    );
    assert!(
        sw.log().iter().all(|l| !l.contains("detached port")),
        "a down link detached the uplink"
    );
    sw.wait_for_log("its link is down", std::time::Duration::from_secs(1));
    // Deleted: now it goes.
    sh(&["ip", "-n", &swns.name, "link", "del", &up]);
    wait_for_state(&sw, &up, None);
    assert!(sw.stop().success());
}

#[test]
fn a_host_port_lets_the_switch_host_reach_its_containers() {
    if !privileged("a_host_port_lets_the_switch_host_reach_its_containers") {
        return;
    }
    let (swns, c1) = (Netns::new(), Netns::new());
    let (tap, host) = (unique("ut"), unique("uh"));
    let mut sw = Uswitch::start_in(
        &swns,
        &[
            "--port",
            &tap,
            "--host-port",
            &format!("{host}@default=198.18.0.254/24"),
        ],
    );
    c1.adopt_from(&swns, &tap, "02:00:00:00:00:01", "198.18.0.1/24");
    assert!(
        c1.ping("198.18.0.254"),
        "the container cannot reach the host port"
    );
    assert!(
        swns.ping("198.18.0.1"),
        "the host cannot reach the container"
    );
    tcp_exchange(&swns, &c1, "198.18.0.1", 5201, 4 << 20);
    let addr = sh(&["ip", "-n", &swns.name, "-br", "addr", "show", "dev", &host]);
    assert!(addr.contains("198.18.0.254/24"), "{addr}");
    assert!(sw.stop().success());
    assert!(
        !link_exists(Some(&swns.name), &host),
        "the host port outlived the switch"
    );
}

#[test]
fn a_missing_uplink_is_one_clear_line() {
    if !privileged("a_missing_uplink_is_one_clear_line") {
        return;
    }
    let out = std::process::Command::new(USWITCH)
        .args(["--uplink", "nosuchif0", "--control", &control_path()])
        .output()
        .unwrap();
    let err = one_line_failure(&out, "nosuchif0");
    assert!(err.contains("no such interface"), "{err}");
}
