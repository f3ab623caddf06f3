//! Restarts and upgrades: what the control socket changed at runtime comes back after a
//! `kill -9` and a clean stop, a corrupt record is refused whole and kept aside, and a
//! new binary takes a running switch over (`--take-over`) with its descriptors.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// The runtime record in `state` (there is one per control socket).
fn runtime_file(state: &std::path::Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(state)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            n.starts_with("runtime-") && n.ends_with(".json")
        })
}

fn port_names(sw: &Uswitch) -> Vec<(String, String)> {
    let ports = sw.json(&["show", "ports"]);
    ports
        .as_array()
        .expect("a list of ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["network"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Networks, ports and static entries made through the control socket come back after a
/// `kill -9` and after a clean stop, and a removal of a configured port stays removed;
/// what was undone at runtime does not come back.
#[test]
fn runtime_changes_survive_a_kill_9_and_a_clean_restart() {
    let test = "runtime_changes_survive_a_kill_9_and_a_clean_restart";
    if !privileged(test) {
        return;
    }
    let state = std::env::temp_dir().join(unique("urst"));
    let state_arg = state.display().to_string();
    let control = control_path();
    let (p1, p2, p3) = (short_unique("rc"), short_unique("rd"), short_unique("re"));
    let args = ["--state-dir", state_arg.as_str(), "--port", p1.as_str()];
    let sw = Uswitch::start_at(&control, &args);
    sw.json(&["network", "create", "green", "--subnet", "198.18.14.0/24"]);
    sw.json(&["port", "add", &format!("{p2}@green")]);
    sw.json(&["port", "add", &format!("{p3}@green")]);
    sw.json(&["port", "del", &p3]);
    sw.json(&["fdb", "add", "02:00:00:00:00:42", &p2]);
    sw.json(&["fdb", "add", "02:00:00:00:00:43", &p2]);
    sw.json(&["fdb", "del", "02:00:00:00:00:43"]);
    sw.json(&["port", "del", &p1]);
    let record = runtime_file(&state).expect("a runtime record in the state directory");
    let expect = |sw: &Uswitch, how: &str| {
        let ports = port_names(sw);
        assert!(
            ports.contains(&(p2.clone(), "green".into())),
            "{how}: {ports:?}"
        );
        assert!(
            !ports.iter().any(|(n, _)| n == &p1 || n == &p3),
            "{how}: {ports:?}"
        );
        let fdb = sw.json(&["show", "fdb", "--network", "green"]);
        let statics: Vec<&Value> = fdb
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["static"] == true)
            .collect();
        assert_eq!(statics.len(), 1, "{how}: {fdb}");
        assert_eq!(statics[0]["mac"], "02:00:00:00:00:42", "{how}");
        assert_eq!(statics[0]["port"], p2.as_str(), "{how}");
        let nets = sw.json(&["network", "ls"]).to_string();
        assert!(
            nets.contains("\"green\"") && nets.contains("198.18.14.0/24"),
            "{how}: {nets}"
        );
    };
    expect(&sw, "before the restart");
    sw.signal(libc::SIGKILL);
    drop(sw);
    let mut sw = Uswitch::start_at(&control, &args);
    expect(&sw, "after a kill -9");
    sw.stop();
    drop(sw);
    let mut sw = Uswitch::start_at(&control, &args);
    expect(&sw, "after a clean stop");
    // Undone at runtime, gone from the record: the network with its port and entry.
    sw.json(&["port", "del", &p2]);
    sw.json(&["network", "rm", "green"]);
    let left: Value = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    assert!(
        !left.to_string().contains("green"),
        "the record still holds the removed network: {left}"
    );
    sw.stop();
    drop(sw);

    // A torn record is refused whole, named, and kept aside; the switch starts from its
    // configuration alone.
    std::fs::write(&record, b"[{\"cmd\":\"network_create\",\"name\":\"torn").unwrap();
    let mut sw = Uswitch::start_at(&control, &args);
    let line = sw.wait_for_log("runtime changes", Duration::from_secs(5));
    assert!(
        line.contains(&record.display().to_string()) && line.contains(".json.bad"),
        "the refusal names neither the file nor where it went: {line}"
    );
    let ports = port_names(&sw);
    assert_eq!(
        ports,
        vec![(p1.clone(), "default".to_string())],
        "{ports:?}"
    );
    assert!(record.with_extension("json.bad").exists());
    sw.stop();
    let _ = std::fs::remove_dir_all(&state);
}
