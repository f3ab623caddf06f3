//! Network namespaces for the launcher's containers, through iproute2's `ip`.

use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};

use super::ipam::Container;

/// Runs `ip ARGS...`, turning a failure into one line.
pub fn ip(args: &[&str]) -> Result<(), String> {
    ip_in(None, args)
}

/// iproute2's `ip`: from PATH, or where Debian puts it (a CNI runtime may call its
/// plugins with a short PATH).
fn ip_program() -> &'static str {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("ip").is_file()));
    if on_path {
        return "ip";
    }
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("ip")
}

/// Runs `ip ARGS`, inside the network namespace `netns` (a `/proc/PID/ns/net` path) when
/// given; the mount namespace, and so the names in /run/netns, stay the caller's. Its
/// stdout, or one line saying why it failed.
pub fn ip_output(netns: Option<&Path>, args: &[&str]) -> Result<String, String> {
    let mut cmd = Process::new(ip_program());
    cmd.args(args);
    if let Some(ns) = netns {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let file = std::fs::File::open(ns).map_err(|e| format!("{}: {e}", ns.display()))?;
        // SAFETY: between fork and exec the child only calls setns(2), which is
        // async-signal-safe, on a descriptor the parent keeps open until the child runs.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("running ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `ip ARGS` in `netns` (see [`ip_output`]).
pub fn ip_in(netns: Option<&Path>, args: &[&str]) -> Result<(), String> {
    ip_output(netns, args).map(|_| ())
}

/// The switch's network namespace when it is not ours (a switch started with `ip netns
/// exec HOST`, standing for another host): the TAPs it made live there.
pub fn switch_netns(pid: Option<u32>) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let theirs = PathBuf::from(format!("/proc/{}/ns/net", pid?));
    let ino = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let (a, b) = (ino(&theirs)?, ino(Path::new("/proc/self/ns/net"))?);
    (a != b).then_some(theirs)
}

/// Whether a namespace of this name exists.
pub fn exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Creates the container's namespace and moves its TAPs in from the switch's namespace
/// (`switch_pid`'s), naming, addressing and bringing them up. On failure, undoes only
/// what it did: a namespace that was there before is left alone.
pub fn set_up(c: &Container, switch_pid: Option<u32>) -> Result<(), String> {
    if exists(&c.netns) {
        return Err(format!(
            "a network namespace named {0} exists already (ip netns del {0} removes it, if it \
             is nobody's)",
            c.netns
        ));
    }
    ip(&["netns", "add", &c.netns])?;
    let result = fill(c, switch_pid);
    if result.is_err() {
        let _ = ip(&["netns", "del", &c.netns]);
    }
    result
}

fn fill(c: &Container, switch_pid: Option<u32>) -> Result<(), String> {
    let from = switch_netns(switch_pid);
    ip(&["-n", &c.netns, "link", "set", "lo", "up"])?;
    for i in &c.interfaces {
        ip_in(
            from.as_deref(),
            &["link", "set", "dev", &i.tap, "netns", &c.netns],
        )?;
        ip(&[
            "-n", &c.netns, "link", "set", "dev", &i.tap, "name", &i.ifname,
        ])?;
        if let Some(mac) = &i.mac {
            ip(&[
                "-n", &c.netns, "link", "set", "dev", &i.ifname, "address", mac,
            ])?;
        }
        if let Some(a) = &i.address {
            ip(&["-n", &c.netns, "addr", "add", a, "dev", &i.ifname])?;
        }
        ip(&["-n", &c.netns, "link", "set", "dev", &i.ifname, "up"])?;
    }
    Ok(())
}

/// Where `program` would be run from, as execvp finds it: Err(126) when it exists but
/// cannot be run, Err(127) when it is not there (Docker's exit codes for both).
fn resolve(program: &str) -> Result<PathBuf, u8> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .ok()
    };
    if program.contains('/') {
        return match runnable(Path::new(program)) {
            Some(true) => Ok(PathBuf::from(program)),
            Some(false) => Err(126),
            None => Err(127),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let mut found_unrunnable = false;
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        match runnable(&candidate) {
            Some(true) => return Ok(candidate),
            Some(false) => found_unrunnable = true,
            None => {}
        }
    }
    Err(if found_unrunnable { 126 } else { 127 })
}

/// Runs `cmd` in the namespace `netns` in the foreground; its exit code becomes ours. A
/// command that is not there exits 127, one that cannot be run 126, as with Docker.
pub fn exec_in(netns: &str, cmd: &[String]) -> Result<ExitCode, String> {
    let Some(program) = cmd.first() else {
        return Err("no command given".into());
    };
    if let Err(code) = resolve(program) {
        let what = if code == 127 {
            "command not found"
        } else {
            "permission denied (not executable)"
        };
        eprintln!("uswitch: error: {program}: {what}");
        return Ok(ExitCode::from(code));
    }
    let status = Process::new("ip")
        .args(["netns", "exec", netns])
        .args(cmd)
        .status()
        .map_err(|e| format!("running {}: {e}", cmd.join(" ")))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(c.clamp(1, 255) as u8),
        None => ExitCode::FAILURE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_resolve_as_execvp_finds_them() {
        assert!(resolve("sh").is_ok());
        assert_eq!(resolve("no-such-command-here"), Err(127));
        assert_eq!(resolve("/no/such/file"), Err(127));
        let plain = std::env::temp_dir().join(format!("uswitch-noexec-{}", std::process::id()));
        std::fs::write(&plain, "not a program").unwrap();
        assert_eq!(resolve(plain.to_str().unwrap()).err(), Some(126));
        std::fs::remove_file(plain).unwrap();
    }
}
