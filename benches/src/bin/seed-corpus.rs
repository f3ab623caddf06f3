//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/TARGET/`: every frame of
//! every capture in `pcaps/` (as is for the frame targets, behind a VXLAN header for the
//! VXLAN target), control requests, and config files. libFuzzer grows the corpora from
//! there. `cargo run -p uswitch-benches --bin seed-corpus`

use std::path::Path;

const REQUESTS: &[&str] = &[
    r#"{"v":1,"cmd":"show_ports"}"#,
    r#"{"cmd":"show_fdb","network":"blue"}"#,
    r#"{"cmd":"port_add","name":"tap0","network":"default","offload":false,"bum_rate":100}"#,
    r#"{"cmd":"network_create","name":"blue","subnet":"198.18.1.0/24","overlay":{"vni":42,"remotes":["198.18.1.2"]}}"#,
    r#"{"cmd":"container_add","name":"c1","networks":["blue"],"ips":[null]}"#,
    r#"{"cmd":"capture","port":"tap0","file":"/tmp/x.pcapng","count":4}"#,
];

const CONFIGS: &[&str] = &[
    "fdb_aging = 60\nfdb_max = 100\n[[network]]\nname = \"blue\"\nsubnet = \"198.18.1.0/24\"\nmtu = 1400\n[[port]]\nname = \"tap0\"\n[[port]]\nname = \"tap1\"\nnetwork = \"blue\"\nbum_rate = 100\n",
    "[[vxlan]]\nnetwork = \"blue\"\nvni = 43\nlocal = \"198.18.1.1\"\nremote = [\"198.18.1.2\"]\nport = 8472\n[[host_port]]\nname = \"h0\"\nnetwork = \"blue\"\naddress = \"198.18.1.254/24\"\n",
];

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn main() -> std::io::Result<()> {
    let corpus = uswitch_benches::pcaps_dir().join("../fuzz/corpus");
    let mut n = 0;
    for path in uswitch_benches::pcap_files()? {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Every distinct length once is plenty of seeds; the fuzzer finds the rest.
        let mut lengths = std::collections::BTreeSet::new();
        for (i, frame) in uswitch_benches::read_pcap(&path)?.into_iter().enumerate() {
            if !lengths.insert(frame.len()) {
                continue;
            }
            let name = format!("{stem}-{i}");
            for target in ["views", "offload", "gro", "forwarder"] {
                write(&corpus.join(target), &name, &frame)?;
            }
            let mut vx = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
            vx.extend_from_slice(&frame);
            write(&corpus.join("vxlan"), &name, &vx)?;
            n += 1;
        }
    }
    for (i, r) in REQUESTS.iter().enumerate() {
        write(
            &corpus.join("control"),
            &format!("request-{i}"),
            r.as_bytes(),
        )?;
    }
    for (i, c) in CONFIGS.iter().enumerate() {
        write(&corpus.join("config"), &format!("config-{i}"), c.as_bytes())?;
    }
    println!("seeded {n} frames from pcaps/ into {}", corpus.display());
    Ok(())
}
