//! The container's side of an attachment: the switch's TAP moved into `CNI_NETNS`,
//! named, given its MAC, addresses and routes, and brought up; checked again by `CHECK`.
//! Through iproute2's `ip` inside the namespace, as the launcher does.

use std::path::Path;

use serde::Deserialize;

use super::spec::Route;
use crate::launcher::netns::{ip_in, ip_output};

/// Whether `path` is a network namespace (a bind mount of one, or `/proc/PID/ns/net`):
/// the nsfs filesystem's magic, so that a plain file or directory is refused before
/// anything is moved.
pub fn is_netns(path: &Path) -> bool {
    const NSFS_MAGIC: libc::c_long = 0x6e73_6673;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` a buffer of the size statfs(2)
    // writes; it is read only when the call succeeds.
    let rc = unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: statfs succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between libcs
    let magic = st.f_type as libc::c_long;
    magic == NSFS_MAGIC
}

/// Whether the namespace has an interface of this name.
pub fn exists(netns: &Path, ifname: &str) -> bool {
    ip_in(Some(netns), &["link", "show", "dev", ifname]).is_ok()
}

/// What `ADD` does inside: `tap` comes from the switch's namespace (`from`, or ours).
pub struct Wiring<'a> {
    pub tap: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub mac: &'a str,
    pub addresses: &'a [String],
    /// Each with its gateway resolved.
    pub routes: &'a [Route],
}

pub fn wire(from: Option<&Path>, w: &Wiring) -> Result<(), String> {
    let netns = w.netns.to_str().ok_or("CNI_NETNS is not valid UTF-8")?;
    ip_in(from, &["link", "set", "dev", w.tap, "netns", netns])?;
    let inside = Some(w.netns);
    ip_in(inside, &["link", "set", "dev", w.tap, "name", w.ifname])?;
    ip_in(inside, &["link", "set", "dev", w.ifname, "address", w.mac])?;
    for a in w.addresses {
        let mut args = vec!["addr", "add", a.as_str(), "dev", w.ifname];
        if a.contains(':') {
            args.push("nodad"); // IPAM gave it to this interface alone
        }
        ip_in(inside, &args)?;
    }
    ip_in(inside, &["link", "set", "dev", w.ifname, "up"])?;
    for r in w.routes {
        let mut args = vec!["route", "add", r.dst.as_str()];
        if let Some(gw) = &r.gw {
            args.extend(["via", gw.as_str()]);
        }
        args.extend(["dev", w.ifname]);
        ip_in(inside, &args)?;
    }
    Ok(())
}

/// Deletes the interface inside (DEL when the switch cannot be reached to do it).
pub fn remove(netns: &Path, ifname: &str) {
    let _ = ip_in(Some(netns), &["link", "del", "dev", ifname]);
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    address: String,
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Deserialize)]
struct AddrInfo {
    local: String,
    prefixlen: u8,
}

/// `CHECK`: the interface is there with this MAC and these addresses; what differs.
pub fn check(netns: &Path, ifname: &str, mac: &str, addresses: &[String]) -> Result<(), String> {
    let out = ip_output(Some(netns), &["-j", "addr", "show", "dev", ifname])
        .map_err(|_| format!("there is no interface {ifname} in {}", netns.display()))?;
    let links: Vec<Link> = serde_json::from_str(&out)
        .map_err(|e| format!("ip -j addr printed what uswitch-cni cannot read: {e}"))?;
    let link = links
        .first()
        .ok_or_else(|| format!("there is no interface {ifname} in {}", netns.display()))?;
    if !link.address.eq_ignore_ascii_case(mac) {
        return Err(format!(
            "{ifname} has MAC {}, not {mac} as ADD set it",
            link.address
        ));
    }
    let have: Vec<String> = link
        .addr_info
        .iter()
        .map(|a| format!("{}/{}", a.local, a.prefixlen))
        .collect();
    for a in addresses {
        if !have.contains(a) {
            return Err(format!("{ifname} lacks the address {a} (it has {have:?})"));
        }
    }
    Ok(())
}
