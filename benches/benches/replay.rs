//! Replays every capture in pcaps/ through the parser, through the forwarder (learning +
//! decision), and through VXLAN encapsulation and decapsulation, and reports frames per
//! second. `cargo bench -p uswitch-benches`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use forwarder::{FdbConfig, Forwarder, Plan, PortId};
use packets::offload::Offload;
use packets::EthernetFrame;

fn load() -> Vec<(String, Vec<Vec<u8>>)> {
    uswitch_benches::pcap_files()
        .expect("reading pcaps/")
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let frames = uswitch_benches::read_pcap(&p).expect("reading a capture");
            (name, frames)
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, frames) in load() {
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(&name, |b| {
            b.iter(|| {
                for f in &frames {
                    if let Ok(eth) = EthernetFrame::new_checked(&f[..]) {
                        black_box((eth.dst(), eth.src(), eth.ethertype()));
                    }
                }
            })
        });
    }
    group.finish();
}

/// Learns from and plans one frame, exactly as the switch's loop does.
fn switch_one(fwd: &mut Forwarder, port: PortId, frame: &[u8], now: u64, plan: &mut Plan) {
    fwd.plan(port, frame, Offload::None, now, plan);
    black_box(&*plan);
}

/// The decision alone (learning, lookup, flood targets), as `forward` measured before plans
/// existed: the part of `Forwarder::plan` that is not about the egresses.
fn decide(c: &mut Criterion) {
    const PORTS: u32 = 4;
    let mut group = c.benchmark_group("decide");
    for (name, frames) in load() {
        let (fwd, ingress) = lab(&frames, PORTS);
        let mut targets = Vec::with_capacity(PORTS as usize);
        let mut now = 0;
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(&name, |b| {
            b.iter(|| {
                now += 1;
                for (f, &port) in frames.iter().zip(&ingress) {
                    if let forwarder::Decision::Flood(net) = fwd.process(port, f, now) {
                        fwd.flood_targets(net, port, &mut targets);
                    }
                    black_box(&targets);
                }
            })
        });
    }
    group.finish();
}

/// A forwarder with `ports` ports on one network, and the port each frame enters on: a
/// source MAC always enters on the same port (chosen from its bytes), as it would on a
/// real switch, so the table learns a stable picture.
fn lab(frames: &[Vec<u8>], ports: u32) -> (Forwarder, Vec<PortId>) {
    let mut fwd = Forwarder::new(FdbConfig::default());
    for p in 0..ports {
        fwd.add_port(&format!("p{p}"), "default", 1500)
            .expect("adding a port");
    }
    let ingress = frames
        .iter()
        .map(|f| {
            PortId(
                f.get(6..12)
                    .map_or(0, |m| m.iter().map(|&b| b as u32).sum::<u32>())
                    % ports,
            )
        })
        .collect();
    (fwd, ingress)
}

/// Four ports on one network, planned exactly as the switch's loop does.
fn forward(c: &mut Criterion) {
    const PORTS: u32 = 4;
    let mut group = c.benchmark_group("forward");
    for (name, frames) in load() {
        let (mut fwd, ingress) = lab(&frames, PORTS);
        let mut plan = Plan::default();
        let mut now = 0;
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(&name, |b| {
            b.iter(|| {
                now += 1;
                for (f, &port) in frames.iter().zip(&ingress) {
                    switch_one(&mut fwd, port, f, now, &mut plan);
                }
            })
        });
    }
    group.finish();
}

/// VXLAN encapsulation as a remote's port does it for a frame alone: the inner flow's
/// hash (which picks the sending socket, so the source port) and the VXLAN header; the
/// frame itself goes to `sendmsg` as a second iovec, uncopied (the kernel adds the IP and
/// UDP headers). Then a TCP GSO frame of 44 segments, as the switch sends one: each
/// segment's headers and checksum built, the payload left where it lies.
fn vxlan_encap(c: &mut Criterion) {
    use packets::offload::segment_headers;
    use packets::vxlan::{flow_hash, write_header, VXLAN_HEADER_LEN};
    let mut group = c.benchmark_group("vxlan_encap");
    for (name, frames) in load() {
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(&name, |b| {
            b.iter(|| {
                for f in &frames {
                    let mut h = [0u8; VXLAN_HEADER_LEN];
                    write_header(&mut h, 42);
                    black_box((flow_hash(f), h));
                }
            })
        });
    }
    let gso = uswitch_benches::tcp_gso_frame(44 * 1398);
    let mut heads = Vec::new();
    group.throughput(Throughput::Bytes(gso.len() as u64));
    group.bench_function("tcp_gso_64k", |b| {
        b.iter(|| {
            let segs = segment_headers(&gso, true, 1398, VXLAN_HEADER_LEN, &mut heads)
                .expect("a TCP GSO frame");
            for head in heads.chunks_exact_mut(VXLAN_HEADER_LEN + segs.header_len) {
                if let Some(vxlan) = head.first_chunk_mut() {
                    write_header(vxlan, 42);
                }
            }
            black_box((flow_hash(&gso), &heads));
        })
    });
    group.finish();
}

/// VXLAN decapsulation as an endpoint does it, through the forwarder's own admission: the
/// header checked, the VNI looked up among several, the sender among the VNI's remotes,
/// then the inner frame learned and planned (a remote in a split-horizon group and two
/// local ports).
fn vxlan_decap(c: &mut Criterion) {
    use packets::vxlan::{write_header, VXLAN_HEADER_LEN};
    use std::net::IpAddr;
    let mut group = c.benchmark_group("vxlan_decap");
    for (name, frames) in load() {
        let datagrams: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| {
                let mut h = [0u8; VXLAN_HEADER_LEN];
                write_header(&mut h, 42);
                let mut d = h.to_vec();
                d.extend_from_slice(f);
                d
            })
            .collect();
        let mut fwd = Forwarder::new(FdbConfig::default());
        let ep = fwd.add_endpoint("198.18.1.1:4789");
        let remote: IpAddr = "198.18.1.2".parse().expect("an address");
        for (vni, net) in [(7, "other"), (42, "default"), (43, "third")] {
            fwd.bind_vni(ep, vni, net, 1450).expect("a VNI");
            fwd.add_remote(ep, vni, remote).expect("a remote");
        }
        for p in 0..2 {
            fwd.add_port(&format!("p{p}"), "default", 1450)
                .expect("adding a port");
        }
        let mut plan = Plan::default();
        let mut now = 0;
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(&name, |b| {
            b.iter(|| {
                now += 1;
                for d in &datagrams {
                    let Ok(port) = fwd.admit_vxlan(0, ep, d, remote) else {
                        continue;
                    };
                    switch_one(&mut fwd, port, &d[VXLAN_HEADER_LEN..], now, &mut plan);
                }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = parse, decide, forward, vxlan_encap, vxlan_decap
}
criterion_main!(benches);
