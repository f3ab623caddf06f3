//! Every demo script in demos/ runs, prints PASS and exits 0 (they check themselves).

mod common;

use std::process::Command;

use common::*;

fn demo(script: &str) {
    if !privileged(script) {
        return;
    }
    if Command::new("ping").arg("-V").output().is_err() {
        if std::env::var("USWITCH_REQUIRE_PRIV").as_deref() == Ok("1") {
            panic!("{script}: the demos need ping (apt-get install iputils-ping)");
        }
        eprintln!("!!!!! SKIPPED {script}: no ping binary (apt-get install iputils-ping)");
        return;
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../demos/");
    let out = Command::new("bash")
        .arg(format!("{path}{script}"))
        .env("USWITCH", USWITCH)
        .output()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{script} failed");
    assert!(
        stdout.lines().any(|l| l == "PASS"),
        "{script} did not print PASS"
    );
}

#[test]
fn demo_same_network() {
    demo("same-network.sh");
}

#[test]
fn demo_isolated_networks() {
    demo("isolated-networks.sh");
}

#[test]
fn demo_two_networks() {
    demo("two-networks.sh");
}

#[test]
fn demo_overlay() {
    demo("overlay.sh");
}

#[test]
fn every_demo_script_has_a_test() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../demos");
    let this = include_str!("demos.rs");
    for entry in std::fs::read_dir(dir).expect("demos/") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".sh") && name != "lib.sh" {
            assert!(
                this.contains(&format!("demo(\"{name}\")")),
                "demos/{name} is not run by a test"
            );
        }
    }
}
