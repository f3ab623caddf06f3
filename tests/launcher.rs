//! The namespace launcher: `uswitch network create`, `run`, `ps`, `exec`, `rm` against a
//! running switch, as the Docker-like demos use them.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

fn container<'a>(ps: &'a Value, name: &str) -> &'a Value {
    ps.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {ps}"))
}

#[test]
fn containers_on_networks_talk_within_and_stay_apart_across() {
    if !privileged("containers_on_networks_talk_within_and_stay_apart_across") {
        return;
    }
    let sw = Uswitch::start(&[]);
    sw.json(&["network", "create", "front", "--subnet", "198.18.10.0/24"]);
    sw.json(&["network", "create", "back", "--subnet", "198.18.11.0/24"]);
    let (web, db, app) = (short_unique("w"), short_unique("d"), short_unique("a"));
    let _guards = [Netns::guard(&web), Netns::guard(&db), Netns::guard(&app)];
    let run = |name: &str, nets: &[&str], extra: &[&str]| {
        let mut args = vec!["run", "--name", name];
        for n in nets {
            args.extend_from_slice(&["--network", n]);
        }
        args.extend_from_slice(extra);
        let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        full.push("--control".into());
        full.push(sw.control.clone());
        let out = std::process::Command::new(USWITCH)
            .args(&full)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "run {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&web, &["front"], &[]);
    run(&db, &["back"], &["--ip", "198.18.11.50/24"]);
    run(&app, &["front", "back"], &[]);

    let ps = sw.json(&["ps"]);
    assert_eq!(ps.as_array().unwrap().len(), 3);
    let web_addr = container(&ps, &web)["interfaces"][0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(web_addr, "198.18.10.1/24", "the first free address");
    let app_if = &container(&ps, &app)["interfaces"];
    assert_eq!(app_if[0]["ifname"], "eth0");
    assert_eq!(app_if[1]["ifname"], "eth1");
    assert_eq!(app_if[0]["address"], "198.18.10.2/24");
    assert_eq!(app_if[1]["address"], "198.18.11.1/24");
    assert_eq!(
        container(&ps, &db)["interfaces"][0]["address"],
        "198.18.11.50/24"
    );

    // app is on both networks and reaches both; web and db are on one each.
    let (web_ns, db_ns, app_ns) = (Netns::named(&web), Netns::named(&db), Netns::named(&app));
    assert!(web_ns.ping("198.18.10.2"), "web cannot reach app on front");
    assert!(db_ns.ping("198.18.11.1"), "db cannot reach app on back");
    assert!(app_ns.ping("198.18.10.1") && app_ns.ping("198.18.11.50"));
    // Even told that back's subnet is on its link, web cannot reach db: the networks
    // are separate broadcast domains.
    sh(&[
        "ip",
        "-n",
        &web,
        "route",
        "add",
        "198.18.11.0/24",
        "dev",
        "eth0",
    ]);
    assert!(
        !web_ns.ping("198.18.11.50"),
        "web reached db across networks"
    );

    // exec runs inside and passes the exit code through.
    let out = sw.client(&["exec", &app, "--", "ip", "-br", "addr", "show", "eth1"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("198.18.11.1/24"));
    assert_eq!(
        sw.client(&["exec", &app, "--", "false"]).status.code(),
        Some(1)
    );
    assert!(!sw
        .client(&["exec", "nosuch", "--", "true"])
        .status
        .success());

    // A container's port goes with the container, not on its own.
    let out = sw.client(&["port", "del", &format!("{web}-e0")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("uswitch rm {web}")));

    // The human table.
    let table = String::from_utf8_lossy(&sw.client(&["ps"]).stdout).to_string();
    assert!(
        table.contains(&web) && table.contains("eth0:front"),
        "{table}"
    );

    // rm removes the namespace and the ports, and frees the address.
    let out = sw.client(&["rm", &web]);
    assert!(out.status.success());
    assert!(
        !sh_ok(&["ip", "netns", "exec", &web, "true"]),
        "the namespace outlived rm"
    );
    assert_eq!(sw.json(&["ps"]).as_array().unwrap().len(), 2);
    let ports = sw.json(&["show", "ports"]);
    assert_eq!(ports.as_array().unwrap().len(), 3);
    let again = short_unique("w");
    let _g = Netns::guard(&again);
    run(&again, &["front"], &[]);
    let ps = sw.json(&["ps"]);
    assert_eq!(
        container(&ps, &again)["interfaces"][0]["address"],
        "198.18.10.1/24"
    );
}

#[test]
fn launcher_errors_are_one_line() {
    if !privileged("launcher_errors_are_one_line") {
        return;
    }
    let sw = Uswitch::start(&[]);
    sw.json(&["network", "create", "n1", "--subnet", "198.18.0.0/30"]);
    let name = short_unique("e");
    let _g = Netns::guard(&name);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["network".into(), "create".into(), "n1".into()],
            "exists already",
        ),
        (
            vec![
                "network".into(),
                "create".into(),
                "n2".into(),
                "--subnet".into(),
                "bad".into(),
            ],
            "not an IPv4 subnet",
        ),
        (
            vec![
                "run".into(),
                "--name".into(),
                name.clone(),
                "--network".into(),
                "nonet".into(),
            ],
            "no network named nonet",
        ),
        (
            vec![
                "run".into(),
                "--name".into(),
                "bad name".into(),
                "--network".into(),
                "n1".into(),
            ],
            "container name",
        ),
        (
            vec![
                "run".into(),
                "--name".into(),
                name.clone(),
                "--network".into(),
                "n1".into(),
                "--ip".into(),
                "198.18.5.1/24".into(),
            ],
            "outside",
        ),
        (
            vec!["rm".into(), "nosuch".into()],
            "no container named nosuch",
        ),
    ];
    for (args, needle) in cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        one_line_failure(&sw.client(&refs), needle);
    }
    // A failed run leaves nothing behind: no ports, no namespace.
    assert_eq!(sw.json(&["show", "ports"]).as_array().unwrap().len(), 0);
    assert!(!sh_ok(&["ip", "netns", "exec", &name, "true"]));
}

/// A run that fails because a namespace of that name exists leaves that namespace alone
/// (it is someone else's) and leaves no port behind.
#[test]
fn a_failed_run_never_deletes_a_namespace_it_did_not_create() {
    if !privileged("a_failed_run_never_deletes_a_namespace_it_did_not_create") {
        return;
    }
    let sw = Uswitch::start(&[]);
    sw.json(&["network", "create", "n1", "--subnet", "198.18.20.0/24"]);
    let name = short_unique("x");
    let theirs = Netns::named(&name);
    sh(&["ip", "netns", "add", &name]);
    let _g = Netns::guard(&name);
    let out = sw.client(&["run", "--name", &name, "--network", "n1"]);
    one_line_failure(&out, "exists already");
    assert!(
        theirs.exec_ok(&["true"]),
        "the namespace that was there before must still be there"
    );
    assert_eq!(sw.json(&["show", "ports"]).as_array().unwrap().len(), 0);
    assert_eq!(sw.json(&["ps"]).as_array().unwrap().len(), 0);
}

/// The launcher as a Docker user meets it: `--switch` names the switch everywhere (and
/// `--name` still works where it always named it), `run --name` names the container,
/// `run --json`, exec and rm of several containers, exit codes 127 and 126 for commands
/// that are not there or cannot run, `network rm`.
#[test]
fn the_launcher_speaks_like_docker() {
    if !privileged("the_launcher_speaks_like_docker") {
        return;
    }
    let sw = Uswitch::start(&[]);
    sw.json(&["network", "create", "n1", "--subnet", "198.18.21.0/24"]);
    let (c1, c2) = (short_unique("p"), short_unique("q"));
    let _g = [Netns::guard(&c1), Netns::guard(&c2)];
    let ran = sw.json(&["run", "--name", &c1, "--network", "n1"]);
    assert_eq!(ran["name"], c1.as_str());
    assert_eq!(ran["interfaces"][0]["ifname"], "eth0");
    sw.json(&["run", "--name", &c2, "--network", "n1"]);
    // A command that is not there exits 127, as `docker run IMAGE nosuchcmd` does.
    let out = sw.client(&["exec", &c1, "--", "no-such-command-anywhere"]);
    assert_eq!(out.status.code(), Some(127));
    let out = sw.client(&["exec", &c1, "--", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126));
    // Exec in two containers; the exit code is the first failure's.
    let out = sw.client(&["exec", &c1, &c2, "--", "ip", "-o", "link", "show", "eth0"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let out = sw.client(&["exec", &c1, &c2, "--", "false"]);
    assert_eq!(out.status.code(), Some(1));
    // --switch and its alias --name find the same switch by name... here by path, and
    // both spellings parse as the switch's.
    for flag in ["--switch", "--name"] {
        let out = std::process::Command::new(USWITCH)
            .args(["ps", flag, "no-such-switch"])
            .output()
            .unwrap();
        one_line_failure(&out, "/run/uswitch/no-such-switch.sock");
    }
    // A network with containers on it is not removed; once they are gone, it is.
    one_line_failure(&sw.client(&["network", "rm", "n1"]), "still has ports");
    let gone = sw.json(&["rm", &c1, &c2]);
    assert_eq!(gone.as_array().unwrap().len(), 2);
    assert!(!sh_ok(&["ip", "netns", "exec", &c1, "true"]));
    sw.json(&["network", "rm", "n1"]);
    assert_eq!(sw.json(&["network", "ls"]).as_array().unwrap().len(), 0);
    // And it can be made again.
    sw.json(&["network", "create", "n1", "--subnet", "198.18.21.0/24"]);
}

/// The launcher's containers outlive their switch: after a `kill -9` and after a clean
/// stop, a new uswitch with the same socket and state directory takes them back (their
/// TAPs stayed in the containers), with their addresses and the runtime network they
/// are on, and traffic between them resumes; `rm` works on them afterwards.
#[test]
fn launcher_containers_survive_a_kill_9_and_a_clean_restart() {
    let test = "launcher_containers_survive_a_kill_9_and_a_clean_restart";
    if !privileged(test) {
        return;
    }
    let state = std::env::temp_dir().join(unique("ulst"));
    let state_arg = state.display().to_string();
    let control = control_path();
    let args = ["--state-dir", state_arg.as_str()];
    let sw = Uswitch::start_at(&control, &args);
    sw.json(&["network", "create", "blue", "--subnet", "198.18.12.0/24"]);
    let (c1, c2) = (short_unique("r"), short_unique("r"));
    let _guards = [Netns::guard(&c1), Netns::guard(&c2)];
    for c in [&c1, &c2] {
        let out = sw.client(&["run", "--name", c, "--network", "blue"]);
        assert!(out.status.success(), "run {c}");
    }
    let ps_before = sw.json(&["ps"]);
    assert!(Netns::named(&c1).ping("198.18.12.2"), "before the restart");
    let resumes = |sw: &Uswitch, how: &str| {
        let started = std::time::Instant::now();
        while !Netns::named(&c1).ping("198.18.12.2") {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "traffic did not resume after {how}"
            );
        }
        eprintln!("traffic resumed {:?} after {how}", started.elapsed());
        assert_eq!(
            sw.json(&["ps"]),
            ps_before,
            "the containers changed across {how}"
        );
        let nets = sw.json(&["network", "ls"]);
        assert!(nets.to_string().contains("\"blue\""), "{nets}");
    };
    sw.signal(libc::SIGKILL);
    drop(sw);
    let mut sw = Uswitch::start_at(&control, &args);
    resumes(&sw, "a kill -9");
    sw.stop();
    drop(sw);
    let sw = Uswitch::start_at(&control, &args);
    resumes(&sw, "a clean stop");
    let out = sw.client(&["rm", &c1]);
    assert!(out.status.success(), "rm after the restart");
    assert_eq!(sw.json(&["ps"]).as_array().map(Vec::len), Some(1));
    let _ = std::fs::remove_dir_all(&state);
}
