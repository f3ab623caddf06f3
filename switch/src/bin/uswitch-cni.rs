//! `uswitch-cni`: the CNI plugin (see `uswitch::cni`). Install it where the runtime
//! looks for plugins (`/opt/cni/bin`, or `/usr/lib/cni` on Debian).

fn main() -> std::process::ExitCode {
    uswitch::cni::main()
}
