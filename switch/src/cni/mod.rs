//! `uswitch-cni`: a CNI plugin (specification 1.0.0 and 1.1.0) that attaches a
//! container to a network of a running uswitch. The runtime runs it with `CNI_*` in the
//! environment and the network configuration on stdin; it asks the switch, over the
//! control socket, for a persistent TAP (`CniAdd`), delegates addresses to the IPAM
//! plugin, and wires the TAP inside the container's namespace. The switch remembers the
//! attachment, so that a restarted uswitch reopens it.
//!
//! Every failure is a CNI error object with the specification's code; nothing panics on
//! any input.

pub mod cluster;
pub mod ipam;
pub mod link;
pub mod spec;

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

use crate::control::client;
use crate::control::cni::hex_hash;
use crate::control::protocol::{CniAttachment, CniRemoved, Pong, PortAdded, Request};
use spec::{code, CniError, CniResult, IpConfig, NetConf, Route};

/// The `CNI_*` variables, as the runtime set them.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub command: Option<String>,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: Option<String>,
    pub path: Option<String>,
}

impl Env {
    pub fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Env {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: var("CNI_ARGS"),
            path: var("CNI_PATH"),
        }
    }
}

fn bad_env(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_ENVIRONMENT, msg)
}

/// The plugin's entry point: reads stdin and the environment, prints a result or an
/// error object.
pub fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let read = std::io::stdin()
        .take(spec::MAX_STDIN as u64 + 1)
        .read_to_end(&mut stdin);
    let outcome = match read {
        Ok(_) => run(&Env::from_process(), &stdin),
        Err(e) => Err(CniError::new(
            code::IO_FAILURE,
            format!("reading stdin: {e}"),
        )),
    };
    match outcome {
        Ok(Some(out)) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(mut e) => {
            // In the configuration's version, when it names one this plugin speaks.
            if let Some(v) = asked_version(&stdin) {
                e.cni_version = v;
            }
            println!(
                "{}",
                serde_json::to_string(&e).unwrap_or_else(|_| "{}".into())
            );
            ExitCode::FAILURE
        }
    }
}

/// Carries out one command; what to print on success.
pub fn run(env: &Env, stdin: &[u8]) -> Result<Option<String>, CniError> {
    let command = env.command.as_deref().ok_or_else(|| {
        bad_env("CNI_COMMAND is not set: this is a CNI plugin, run by a container runtime")
    })?;
    match command {
        "VERSION" => Ok(Some(version(stdin))),
        "ADD" => add(env, stdin).map(Some),
        "DEL" => del(env, stdin).map(|()| None),
        "CHECK" => check(env, stdin).map(|()| None),
        "STATUS" => status(env, stdin).map(|()| None),
        "GC" => gc(env, stdin).map(|()| None),
        other => Err(bad_env(format!(
            "CNI_COMMAND={other} is not a CNI command (ADD, DEL, CHECK, VERSION, STATUS, GC)"
        ))),
    }
}

/// The `cniVersion` of stdin, if it is one this plugin speaks.
fn asked_version(stdin: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(str::to_string))
        .filter(|v| spec::SUPPORTED_VERSIONS.contains(&v.as_str()))
}

fn version(stdin: &[u8]) -> String {
    let asked = asked_version(stdin).unwrap_or_else(|| "1.1.0".into());
    json!({"cniVersion": asked, "supportedVersions": spec::SUPPORTED_VERSIONS}).to_string()
}

/// A command that only a 1.1.0 configuration may ask for.
fn needs_gc_version(conf: &NetConf, command: &str) -> Result<(), CniError> {
    if spec::VERSIONS_WITH_GC.contains(&conf.cni_version.as_str()) {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "{command} is a CNI 1.1.0 command; this configuration says cniVersion {}",
                conf.cni_version
            ),
        ))
    }
}

/// `CNI_CONTAINERID` as the specification allows it.
fn container_id(env: &Env) -> Result<&str, CniError> {
    let id = env
        .container_id
        .as_deref()
        .ok_or_else(|| bad_env("CNI_CONTAINERID is not set"))?;
    let ok = id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(id)
    } else {
        Err(bad_env(format!(
            "CNI_CONTAINERID '{id}' is not a container id (letters, digits, _ . - only)"
        )))
    }
}

fn ifname(env: &Env) -> Result<&str, CniError> {
    let name = env
        .ifname
        .as_deref()
        .ok_or_else(|| bad_env("CNI_IFNAME is not set"))?;
    crate::config::specs::validate_ifname(name).map_err(|e| bad_env(format!("CNI_IFNAME: {e}")))?;
    Ok(name)
}

/// `CNI_NETNS`, which must be a network namespace.
fn netns(env: &Env) -> Result<PathBuf, CniError> {
    let path = env
        .netns
        .as_deref()
        .ok_or_else(|| bad_env("CNI_NETNS is not set"))?;
    let p = PathBuf::from(path);
    if !link::is_netns(&p) {
        return Err(bad_env(format!(
            "CNI_NETNS {path} is not a network namespace (a /run/netns/NAME or /proc/PID/ns/net)"
        )));
    }
    Ok(p)
}

fn cni_path(env: &Env) -> Result<&str, CniError> {
    env.path
        .as_deref()
        .ok_or_else(|| bad_env("CNI_PATH is not set (where the IPAM plugin is found)"))
}

/// The switch's control socket.
fn socket(conf: &NetConf) -> PathBuf {
    crate::control::socket_path(
        conf.control.as_deref().map(Path::new),
        conf.switch.as_deref(),
    )
}

fn network(conf: &NetConf) -> &str {
    conf.network.as_deref().unwrap_or(&conf.name)
}

/// Asks the switch; an unreachable switch is "try again later" (11), a refusal an
/// invalid configuration (7) with the switch's words.
fn ask<T: serde::de::DeserializeOwned>(conf: &NetConf, req: Request) -> Result<T, CniError> {
    let path = socket(conf);
    let resp = client::call(&path, &req).map_err(|e| {
        CniError::new(
            code::TRY_AGAIN_LATER,
            format!(
                "uswitch is not reachable at {}: start it (uswitch --name NAME) or fix \
                 \"switch\"/\"control\" in the configuration",
                path.display()
            ),
        )
        .details(e)
    })?;
    if !resp.ok {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            resp.error
                .unwrap_or_else(|| "uswitch refused without saying why".into()),
        ));
    }
    serde_json::from_value(resp.data).map_err(|e| {
        CniError::new(
            code::DECODING_FAILURE,
            format!("uswitch's answer is not one this plugin reads (same release?): {e}"),
        )
    })
}

/// The MAC: the `mac` capability, else `MAC=` in CNI_ARGS, else a stable locally
/// administered one from the container id and interface.
fn mac_for(conf: &NetConf, env: &Env, id: &str, ifname: &str) -> Result<String, CniError> {
    let from_args = env.args.as_deref().and_then(|args| {
        args.split(';')
            .find_map(|kv| kv.strip_prefix("MAC="))
            .map(str::to_string)
    });
    match conf.runtime_config.mac.clone().or(from_args) {
        Some(m) => {
            let mac: packets::MacAddr = m.parse().map_err(|e| {
                CniError::new(code::INVALID_CONFIG, format!("the MAC asked for: {e}"))
            })?;
            if !mac.is_valid_source() {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    format!("the MAC asked for, {mac}, is a group or zero address"),
                ));
            }
            Ok(mac.to_string())
        }
        None => {
            let h = hex_hash(format!("{id}/{ifname}").as_bytes());
            Ok(format!(
                "02:{}:{}:{}:{}:{}",
                &h[0..2],
                &h[2..4],
                &h[4..6],
                &h[6..8],
                &h[8..10]
            ))
        }
    }
}

/// The TAP's name on the switch's side: `uk` and 13 hex digits of a hash of the switch's
/// socket and the attachment's key (one container may be on two switches).
fn port_name(socket: &Path, id: &str, ifname: &str) -> String {
    let key = format!("{}/{id}/{ifname}", socket.display());
    format!("uk{}", &hex_hash(key.as_bytes())[..13])
}

/// `ADDR/PREFIX` → the address and the prefix length.
fn split_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = cidr.split_once('/')?;
    Some((a.parse().ok()?, p.parse().ok()?))
}

/// The IPv4 subnet an address is in (`198.18.70.5/24` → `198.18.70.0/24`).
fn subnet_of(cidr: &str) -> Option<String> {
    match split_cidr(cidr)? {
        (IpAddr::V4(a), p) if p <= 32 => {
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            Some(format!(
                "{}/{p}",
                std::net::Ipv4Addr::from(u32::from(a) & mask)
            ))
        }
        _ => None,
    }
}

/// Releases what IPAM gave (DEL to the IPAM plugin), when a later step of ADD fails.
fn release(conf: &NetConf, env: &Env, stdin: &[u8]) {
    if let (Some(ipam), Some(path)) = (&conf.ipam, env.path.as_deref()) {
        let _ = ipam::delegate(&ipam.plugin_type, path, "DEL", &[], stdin);
    }
}

fn add(env: &Env, stdin: &[u8]) -> Result<String, CniError> {
    let conf = spec::parse_conf(stdin)?;
    let id = container_id(env)?;
    let ifname = ifname(env)?;
    let netns = netns(env)?;
    let pong: Pong = ask(&conf, Request::Ping)?;
    if link::exists(&netns, ifname) {
        return Err(CniError::new(
            code::INTERFACE_EXISTS,
            format!(
                "{} has an interface {ifname} already: pick another CNI_IFNAME",
                netns.display()
            ),
        ));
    }
    let mac = mac_for(&conf, env, id, ifname)?;
    let ipam = match &conf.ipam {
        _ if conf.cluster => cluster::add(&conf, network(&conf), id, ifname)?,
        Some(i) => ipam::add(&i.plugin_type, cni_path(env)?, stdin)?,
        None => CniResult::default(),
    };
    match attach(&conf, &ipam, &pong, id, ifname, &netns, &mac) {
        Ok(out) => Ok(out),
        Err(e) => {
            if conf.cluster {
                let held: Vec<String> = ipam.ips.iter().map(|i| i.address.clone()).collect();
                cluster::release(&conf, network(&conf), &held);
            }
            release(&conf, env, stdin);
            Err(e)
        }
    }
}

/// ADD after IPAM: the switch's half, the wiring inside, the result.
#[allow(clippy::too_many_arguments)]
fn attach(
    conf: &NetConf,
    ipam: &CniResult,
    pong: &Pong,
    id: &str,
    ifname: &str,
    netns: &Path,
    mac: &str,
) -> Result<String, CniError> {
    let addresses: Vec<String> = ipam.ips.iter().map(|i| i.address.clone()).collect();
    // Each gateway with its address's prefix: the host port's address.
    let gateways: Vec<String> = ipam
        .ips
        .iter()
        .filter_map(|i| {
            let (_, prefix) = split_cidr(&i.address)?;
            Some(format!("{}/{prefix}", i.gateway.as_deref()?))
        })
        .collect();
    let subnet = conf
        .subnet
        .clone()
        .or_else(|| addresses.iter().find_map(|a| subnet_of(a)));
    let attachment = CniAttachment {
        container_id: id.to_string(),
        ifname: ifname.to_string(),
        config: conf.name.clone(),
        network: network(conf).to_string(),
        subnet,
        mtu: conf.mtu,
        gateways,
        ip_masq: conf.ip_masq,
        netns: netns.display().to_string(),
        mac: mac.to_string(),
        port: port_name(&socket(conf), id, ifname),
        ips: addresses.clone(),
    };
    let added: PortAdded = ask(
        conf,
        Request::CniAdd {
            attachment: Box::new(attachment),
        },
    )?;
    // Routes without a gateway go through the gateway of their family.
    let gateway_for = |dst: &str| {
        let v6 = dst.contains(':');
        ipam.ips
            .iter()
            .filter_map(|i| i.gateway.clone())
            .find(|g| g.contains(':') == v6)
    };
    let routes: Vec<Route> = ipam
        .routes
        .iter()
        .map(|r| Route {
            dst: r.dst.clone(),
            gw: r.gw.clone().or_else(|| gateway_for(&r.dst)),
        })
        .collect();
    let from = crate::launcher::netns::switch_netns(Some(pong.pid));
    let wired = link::wire(
        from.as_deref(),
        &link::Wiring {
            tap: &added.name,
            netns,
            ifname,
            mac,
            addresses: &addresses,
            routes: &routes,
        },
    );
    if let Err(e) = wired {
        let _ = ask::<CniRemoved>(
            conf,
            Request::CniDel {
                container_id: id.to_string(),
                ifname: ifname.to_string(),
            },
        );
        return Err(CniError::new(
            code::IO_FAILURE,
            format!("wiring {ifname} in {}: {e}", netns.display()),
        ));
    }
    // First in a chain or not: what came before stays, ours is appended.
    let mut result: CniResult = conf
        .prev_result
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    result.cni_version = conf.cni_version.clone();
    let index = result.interfaces.len();
    result.interfaces.push(spec::Interface {
        name: ifname.to_string(),
        mac: mac.to_string(),
        mtu: u32::try_from(added.mtu).ok().filter(|m| *m > 0),
        sandbox: netns.display().to_string(),
    });
    result.ips.extend(ipam.ips.iter().map(|i| IpConfig {
        address: i.address.clone(),
        gateway: i.gateway.clone(),
        interface: Some(index),
    }));
    result.routes.extend(routes);
    if result.dns == spec::Dns::default() {
        result.dns = ipam.dns.clone();
    }
    serde_json::to_string(&result)
        .map_err(|e| CniError::new(code::IO_FAILURE, format!("encoding the result: {e}")))
}

/// DEL: best effort and idempotent; a switch that is not running, a port or namespace
/// that is gone all end in success once what can be cleaned is.
fn del(env: &Env, stdin: &[u8]) -> Result<(), CniError> {
    let conf = spec::parse_conf(stdin)?;
    let id = container_id(env)?;
    let ifname = ifname(env)?;
    // A cluster attachment's addresses, read before the switch forgets them.
    let held: Vec<String> = if conf.cluster {
        ask::<Vec<CniAttachment>>(&conf, Request::CniLs)
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.container_id == id && a.ifname == ifname)
            .map(|a| a.ips)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let asked = ask::<CniRemoved>(
        &conf,
        Request::CniDel {
            container_id: id.to_string(),
            ifname: ifname.to_string(),
        },
    );
    if asked.is_err() {
        // No switch to delete the TAP: take the interface out of the namespace.
        if let Some(ns) = env.netns.as_deref().map(Path::new) {
            if link::is_netns(ns) {
                link::remove(ns, ifname);
            }
        }
    }
    cluster::release(&conf, network(&conf), &held);
    if let Some(i) = &conf.ipam {
        ipam::delegate(&i.plugin_type, cni_path(env)?, "DEL", &[], stdin)?;
    }
    Ok(())
}

/// CHECK: the switch knows the attachment and holds its port; inside, the interface has
/// its MAC and the addresses of `prevResult`; IPAM agrees.
fn check(env: &Env, stdin: &[u8]) -> Result<(), CniError> {
    let conf = spec::parse_conf(stdin)?;
    let id = container_id(env)?;
    let ifname = ifname(env)?;
    let netns = netns(env)?;
    let prev: CniResult = conf
        .prev_result
        .clone()
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                "CHECK needs prevResult (the result of ADD) in the configuration",
            )
        })
        .and_then(|v| {
            serde_json::from_value(v).map_err(|e| {
                CniError::new(
                    code::DECODING_FAILURE,
                    format!("prevResult is not a CNI result: {e}"),
                )
            })
        })?;
    let all: Vec<CniAttachment> = ask(&conf, Request::CniLs)?;
    let a = all
        .iter()
        .find(|a| a.container_id == id && a.ifname == ifname)
        .ok_or_else(|| {
            CniError::new(
                code::UNKNOWN_CONTAINER,
                format!("uswitch has no attachment for container {id} interface {ifname}"),
            )
        })?;
    let ports: Vec<crate::control::protocol::PortRow> = ask(&conf, Request::ShowPorts)?;
    if !ports.iter().any(|p| p.name == a.port) {
        return Err(CniError::new(
            code::CHECK_FAILED,
            format!("uswitch does not hold the port {} of {ifname}", a.port),
        ));
    }
    let ours = prev.interfaces.iter().position(|i| i.name == ifname);
    let addresses: Vec<String> = prev
        .ips
        .iter()
        .filter(|i| i.interface.is_none() || i.interface == ours)
        .map(|i| i.address.clone())
        .collect();
    link::check(&netns, ifname, &a.mac, &addresses)
        .map_err(|e| CniError::new(code::CHECK_FAILED, e))?;
    if let Some(i) = &conf.ipam {
        ipam::delegate(&i.plugin_type, cni_path(env)?, "CHECK", &[], stdin)?;
    }
    Ok(())
}

/// STATUS (1.1.0): ready when the switch answers.
fn status(env: &Env, stdin: &[u8]) -> Result<(), CniError> {
    let conf = spec::parse_conf(stdin)?;
    needs_gc_version(&conf, "STATUS")?;
    ask::<Pong>(&conf, Request::Ping)
        .map_err(|e| CniError::new(code::NOT_AVAILABLE, e.msg).details(e.details))?;
    if let (Some(i), Some(path)) = (&conf.ipam, env.path.as_deref()) {
        if ipam::speaks(&i.plugin_type, path, &conf.cni_version) {
            ipam::delegate(&i.plugin_type, path, "STATUS", &[], stdin)?;
        }
    }
    Ok(())
}

/// GC (1.1.0): every attachment of this configuration that the runtime no longer lists
/// is removed, and its addresses released (IPAM's DEL for it, and IPAM's own GC where the
/// IPAM plugin speaks 1.1.0).
fn gc(env: &Env, stdin: &[u8]) -> Result<(), CniError> {
    let conf = spec::parse_conf(stdin)?;
    needs_gc_version(&conf, "GC")?;
    let all: Vec<CniAttachment> = ask(&conf, Request::CniLs)?;
    let valid = |a: &CniAttachment| {
        conf.valid_attachments
            .iter()
            .any(|v| v.container_id == a.container_id && v.ifname == a.ifname)
    };
    for a in all.iter().filter(|a| a.config == conf.name && !valid(a)) {
        ask::<CniRemoved>(
            &conf,
            Request::CniDel {
                container_id: a.container_id.clone(),
                ifname: a.ifname.clone(),
            },
        )?;
        if conf.cluster {
            cluster::release(&conf, &a.network, &a.ips);
        }
        if let (Some(i), Some(path)) = (&conf.ipam, env.path.as_deref()) {
            // IPAM's DEL wants a configuration it speaks: the same one as 1.0.0.
            let mut v: serde_json::Value = serde_json::from_slice(stdin).unwrap_or_default();
            v["cniVersion"] = json!("1.0.0");
            let one = v.to_string();
            ipam::delegate(
                &i.plugin_type,
                path,
                "DEL",
                &[
                    ("CNI_CONTAINERID", a.container_id.as_str()),
                    ("CNI_IFNAME", a.ifname.as_str()),
                    ("CNI_NETNS", ""),
                ],
                one.as_bytes(),
            )?;
        }
    }
    if let (Some(i), Some(path)) = (&conf.ipam, env.path.as_deref()) {
        if ipam::speaks(&i.plugin_type, path, &conf.cni_version) {
            ipam::delegate(&i.plugin_type, path, "GC", &[], stdin)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_macs_and_subnets_are_stable_and_fit() {
        let (s, t) = (
            Path::new("/run/uswitch/a.sock"),
            Path::new("/run/uswitch/b.sock"),
        );
        assert_eq!(port_name(s, "abc", "eth0"), port_name(s, "abc", "eth0"));
        assert_ne!(port_name(s, "abc", "eth0"), port_name(s, "abc", "eth1"));
        assert_ne!(port_name(s, "abc", "eth0"), port_name(t, "abc", "eth0"));
        assert_eq!(port_name(s, "abc", "eth0").len(), 15);
        let conf = NetConf::default();
        let m = mac_for(&conf, &Env::default(), "abc", "eth0").unwrap();
        assert!(m.starts_with("02:"));
        let env = Env {
            args: Some("IgnoreUnknown=1;MAC=02:11:22:33:44:55".into()),
            ..Env::default()
        };
        assert_eq!(mac_for(&conf, &env, "a", "e").unwrap(), "02:11:22:33:44:55");
        let env = Env {
            args: Some("MAC=ff:ff:ff:ff:ff:ff".into()),
            ..Env::default()
        };
        assert_eq!(
            mac_for(&conf, &env, "a", "e").unwrap_err().code,
            code::INVALID_CONFIG
        );
        assert_eq!(
            subnet_of("198.18.70.5/24").as_deref(),
            Some("198.18.70.0/24")
        );
        assert_eq!(subnet_of("2001:2::5/64"), None);
    }

    #[test]
    fn bad_environments_are_code_4_and_never_panic() {
        let conf = br#"{"cniVersion":"1.0.0","name":"n","type":"uswitch-cni"}"#;
        let code_of = |env: Env| run(&env, conf).unwrap_err().code;
        assert_eq!(code_of(Env::default()), code::INVALID_ENVIRONMENT);
        let add = |id: &str, ifname: &str, netns: &str| Env {
            command: Some("ADD".into()),
            container_id: Some(id.into()),
            ifname: Some(ifname.into()),
            netns: Some(netns.into()),
            path: Some("/usr/lib/cni".into()),
            args: None,
        };
        assert_eq!(code_of(add("bad/id", "eth0", "/proc/self/ns/net")), 4);
        assert_eq!(
            code_of(add("abc", "a-very-long-interface", "/proc/self/ns/net")),
            4
        );
        assert_eq!(code_of(add("abc", "eth0", "/etc/hostname")), 4);
        let env = Env {
            command: Some("FROB".into()),
            ..Env::default()
        };
        assert_eq!(code_of(env), 4);
        let v = run(
            &Env {
                command: Some("VERSION".into()),
                ..Env::default()
            },
            b"",
        )
        .unwrap()
        .unwrap();
        assert!(v.contains("\"1.0.0\""), "{v}");
    }
}
