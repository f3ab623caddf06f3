//! uswitch-cni's stdin and environment over any bytes: the configuration parser, then
//! every command with hostile `CNI_*` values and no switch to reach. An answer is a
//! result or an error object with a code and a message, never a panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use uswitch::cni::{run, Env};

#[derive(Arbitrary, Debug)]
struct Input {
    command: u8,
    container_id: Option<String>,
    ifname: Option<String>,
    args: Option<String>,
    stdin: Vec<u8>,
}

const COMMANDS: [&str; 7] = ["VERSION", "ADD", "DEL", "CHECK", "STATUS", "GC", "FROB"];

fuzz_target!(|input: Input| {
    if let Err(e) = uswitch::cni::spec::parse_conf(&input.stdin) {
        assert!(e.code > 0 && !e.msg.is_empty(), "{e:?}");
    }
    let env = Env {
        command: Some(COMMANDS[input.command as usize % COMMANDS.len()].to_string()),
        container_id: input.container_id,
        ifname: input.ifname,
        // Nothing here may reach a real namespace, plugin or switch.
        netns: Some("/nonexistent/netns".into()),
        args: input.args,
        path: Some("/nonexistent".into()),
    };
    // Whatever the configuration names, no switch is reachable: one that parses is
    // pointed at a socket that does not exist (one that does not parse never gets as
    // far as asking).
    let mut stdin = input.stdin;
    if let Ok(serde_json::Value::Object(mut conf)) = serde_json::from_slice(&stdin) {
        conf.remove("switch");
        conf.insert("control".into(), "/nonexistent/uswitch.sock".into());
        stdin = serde_json::Value::Object(conf).to_string().into_bytes();
    }
    match run(&env, &stdin) {
        Ok(_) => {}
        Err(e) => assert!(e.code > 0 && !e.msg.is_empty(), "{e:?}"),
    }
});
