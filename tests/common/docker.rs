//! A private Docker daemon per test, and what a uswitch Docker plugin leaves behind:
//! shared by the Docker driver's tests and the cluster's.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// Debian's client: a newer `docker` earlier on the PATH may ask for an API version
/// Debian's daemon does not speak.
pub const DOCKER: &str = "/usr/bin/docker";
pub const IMAGE: &str = "uswitch-test-busybox:1";

/// A private Docker daemon, stopped and cleaned on drop.
pub struct Dockerd {
    dir: PathBuf,
    sock: String,
    child: Child,
}

impl Dockerd {
    /// Starts one, or None (a loud skip; a failure under USWITCH_REQUIRE_PRIV=1) when
    /// dockerd or busybox is missing.
    pub fn start(test: &str) -> Option<Dockerd> {
        Self::start_in(test, None)
    }

    /// In `host` (a namespace standing for a Docker host), a daemon with Docker's own
    /// defaults there: its iptables rules, `FORWARD` policy `DROP`, and a `docker0` (in
    /// 198.19.200.0/24). None as `start` says.
    pub fn start_in(test: &str, host: Option<&Netns>) -> Option<Dockerd> {
        let missing: Vec<&str> = ["/usr/sbin/dockerd", DOCKER, "/bin/busybox"]
            .into_iter()
            .filter(|p| !std::path::Path::new(p).exists())
            .collect();
        if !missing.is_empty() {
            if std::env::var("USWITCH_REQUIRE_PRIV").as_deref() == Ok("1") {
                panic!("{test}: needs {missing:?} (apt-get install docker.io busybox-static)");
            }
            eprintln!("!!!!! SKIPPED {test}: needs {missing:?} (docker.io, busybox-static)");
            return None;
        }
        let dir = std::env::temp_dir().join(unique("usdk"));
        std::fs::create_dir_all(&dir).expect("the daemon's dir");
        let sock = format!("unix://{}", dir.join("docker.sock").display());
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("a log");
        let mut cmd = match host {
            // nsenter rather than `ip netns exec`, which remounts /sys and so hides the
            // cgroups dockerd needs.
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{}", ns.name))
                    .arg("/usr/sbin/dockerd")
                    .args(["--bip", "198.19.200.1/24"]);
                c
            }
            None => {
                let mut c = Command::new("/usr/sbin/dockerd");
                c.args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
                    // Docker turns forwarding on in its namespace even without iptables.
                    .arg("--ip-forward=false")
                    // No docker-proxy: a published port works only through uswitch's DNAT.
                    .arg("--userland-proxy=false");
                c
            }
        };
        let child = cmd
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args(["-H", &sock])
            .args(["--default-address-pool", "base=198.19.128.0/17,size=24"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let d = Dockerd { dir, sock, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.docker(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "dockerd did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
        // The image: a root filesystem holding busybox, imported (no registry is reached).
        let root = d.dir.join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "sleep", "ping", "ping6", "ip", "cat", "nc", "dd", "md5sum", "head", "wc",
        ] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["-c", "."])
            .output()
            .expect("tar");
        let mut import = Command::new(DOCKER)
            .args(["-H", &d.sock, "import", "-", IMAGE])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("docker import");
        import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
        assert!(import.wait().unwrap().success(), "docker import");
        Some(d)
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .args(["-H", &self.sock])
            .args(args)
            .output()
            .expect("running docker")
    }

    /// A docker command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(DOCKER);
        cmd.args(["-H", &self.sock]).args(args);
        stdout_ok(&mut cmd, &format!("docker {args:?}"))
    }

    /// A container on `network` that sleeps.
    pub fn run(&self, name: &str, network: &str) {
        self.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
            IMAGE,
            "sleep",
            "600",
        ]);
    }

    /// A container on `network` publishing `publish` (`HOST:80`), whose server on port 80
    /// says hello to each connection.
    pub fn serve_hello(&self, name: &str, network: &str, publish: &str) {
        self.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "-p",
            publish,
            "--ulimit",
            "nofile=1024:1024",
            IMAGE,
            "sh",
            "-c",
            "while true; do echo hello | nc -l -p 80; done",
        ]);
        std::thread::sleep(Duration::from_millis(500));
    }

    /// `docker network create -d DRIVER ARGS... NAME`.
    pub fn network(&self, driver: &str, name: &str, args: &[&str]) {
        let mut all = vec!["network", "create", "-d", driver];
        all.extend_from_slice(args);
        all.push(name);
        self.ok(&all);
    }

    /// A field of the container's one network (`IPAddress`, `GlobalIPv6Address`).
    pub fn address(&self, container: &str, field: &str) -> String {
        let format = format!("{{{{range .NetworkSettings.Networks}}}}{{{{.{field}}}}}{{{{end}}}}");
        self.ok(&["inspect", "-f", &format, container])
            .trim()
            .to_string()
    }

    pub fn pings(&self, from: &str, to: &str) -> bool {
        self.docker(&["exec", from, "ping", "-c", "1", "-W", "2", to])
            .status
            .success()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            self.docker(&["rm", "-f", id]);
        }
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes what a plugin leaves when its uswitch is killed rather than stopped: its
/// nftables table and its socket; and puts the root namespace's IP forwarding back.
pub struct PluginLeftovers(pub String, ForwardingRestored);

impl PluginLeftovers {
    pub fn new(plugin: &str) -> PluginLeftovers {
        PluginLeftovers(plugin.to_string(), ForwardingRestored::take())
    }

    /// Where the plugin keeps its state (a directory of this run's own).
    pub fn state_dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("{}-state", self.0))
    }

    /// uswitch's flags for this plugin.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--docker-plugin".into(),
            self.0.clone(),
            "--state-dir".into(),
            self.state_dir().display().to_string(),
        ]
    }
}

impl Drop for PluginLeftovers {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.state_dir());
        let table = format!("uswitch_{}", self.0);
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &table])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(format!("/run/docker/plugins/{}.sock", self.0));
    }
}
