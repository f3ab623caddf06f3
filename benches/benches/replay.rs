//! Replays every capture in pcaps/ through the parser, through the forwarder (learning +
//! decision), and through VXLAN encapsulation and decapsulation, and reports frames per
//! second. `cargo bench -p uswitch-benches`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use forwarder::{Decision, FdbConfig, Forwarder, PortId};
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

/// Learns from and decides one frame, as the switch's loop does, flood targets included.
fn switch_one(
    fwd: &mut Forwarder,
    port: PortId,
    frame: &[u8],
    now: u64,
    targets: &mut Vec<PortId>,
) {
    match fwd.process(port, frame, now) {
        Decision::Flood(net) => {
            fwd.flood_targets(net, port, targets);
            black_box(&*targets);
        }
        d => {
            black_box(d);
        }
    }
}

/// Four ports on one network; each source MAC always enters on the same port (chosen from
/// its bytes), as it would on a real switch, so the table learns a stable picture.
fn forward(c: &mut Criterion) {
    const PORTS: u32 = 4;
    let mut group = c.benchmark_group("forward");
    for (name, frames) in load() {
        let ingress: Vec<PortId> = frames
            .iter()
            .map(|f| {
                PortId(
                    f.get(6..12)
                        .map_or(0, |m| m.iter().map(|&b| b as u32).sum::<u32>())
                        % PORTS,
                )
            })
            .collect();
        let mut fwd = Forwarder::new(FdbConfig::default());
        for p in 0..PORTS {
            fwd.add_port(&format!("p{p}"), "default", 1500)
                .expect("adding a port");
        }
        let mut targets = Vec::with_capacity(PORTS as usize);
        let mut now = 0;
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(&name, |b| {
            b.iter(|| {
                now += 1;
                for (f, &port) in frames.iter().zip(&ingress) {
                    switch_one(&mut fwd, port, f, now, &mut targets);
                }
            })
        });
    }
    group.finish();
}

/// VXLAN encapsulation as a remote's port does it: the inner flow's hash (which picks the
/// sending socket, so the source port), the VXLAN header, and the copy into the batch
/// that leaves in one `sendmsg` (the kernel adds the IP and UDP headers).
fn vxlan_encap(c: &mut Criterion) {
    use packets::vxlan::{flow_hash, write_header, VXLAN_HEADER_LEN};
    let mut group = c.benchmark_group("vxlan_encap");
    let mut batch: Vec<u8> = Vec::with_capacity(1 << 20);
    for (name, frames) in load() {
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(&name, |b| {
            b.iter(|| {
                batch.clear();
                for f in &frames {
                    black_box(flow_hash(f));
                    let mut h = [0u8; VXLAN_HEADER_LEN];
                    write_header(&mut h, 42);
                    if batch.len() + f.len() + VXLAN_HEADER_LEN > batch.capacity() {
                        batch.clear();
                    }
                    batch.extend_from_slice(&h);
                    batch.extend_from_slice(f);
                }
                black_box(&batch);
            })
        });
    }
    group.finish();
}

/// VXLAN decapsulation as an endpoint does it: the header checked, the VNI looked up
/// among several, the inner frame learned and forwarded by the network's forwarder (a
/// remote peer port in a split-horizon group and two local ports).
fn vxlan_decap(c: &mut Criterion) {
    use packets::vxlan::{parse_header, write_header, VXLAN_HEADER_LEN};
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
        let peer = fwd
            .add_port_in_horizon("vx42:198.18.1.2", "default", 1450, 1)
            .expect("peer");
        for p in 0..2 {
            fwd.add_port(&format!("p{p}"), "default", 1450)
                .expect("adding a port");
        }
        let vnis = [(7u32, PortId(99)), (42, peer), (43, PortId(98))];
        let mut targets = Vec::with_capacity(4);
        let mut now = 0;
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(&name, |b| {
            b.iter(|| {
                now += 1;
                for d in &datagrams {
                    let Ok(vni) = parse_header(d) else { continue };
                    let Some(&(_, port)) = vnis.iter().find(|(v, _)| *v == vni) else {
                        continue;
                    };
                    switch_one(&mut fwd, port, &d[VXLAN_HEADER_LEN..], now, &mut targets);
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
    targets = parse, forward, vxlan_encap, vxlan_decap
}
criterion_main!(benches);
