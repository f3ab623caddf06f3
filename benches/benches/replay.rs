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
                    match fwd.process(port, f, now) {
                        Decision::Flood(net) => {
                            fwd.flood_targets(net, port, &mut targets);
                            black_box(&targets);
                        }
                        d => {
                            black_box(d);
                        }
                    }
                }
            })
        });
    }
    group.finish();
}

/// VXLAN encapsulation as a peer port does it: flow hash, source port, the UDP and VXLAN
/// headers (and the IPv6 UDP checksum over the whole datagram, for the v6 variant), the
/// datagram laid out in one buffer as the kernel would gather it.
fn vxlan_encap(c: &mut Criterion) {
    use packets::vxlan::{
        flow_hash, source_port, udp_checksum_v6, write_encap, ENCAP_LEN, IANA_PORT,
    };
    let src: std::net::Ipv6Addr = "2001:2::1".parse().expect("address");
    let dst: std::net::Ipv6Addr = "2001:2::2".parse().expect("address");
    let mut group = c.benchmark_group("vxlan_encap");
    let mut out = vec![0u8; 65_536 + ENCAP_LEN];
    for (name, frames) in load() {
        group.throughput(Throughput::Elements(frames.len() as u64));
        for v6 in [false, true] {
            let id = format!("{name}/{}", if v6 { "ipv6" } else { "ipv4" });
            group.bench_function(&id, |b| {
                b.iter(|| {
                    for f in &frames {
                        let mut head = [0u8; ENCAP_LEN];
                        write_encap(&mut head, source_port(flow_hash(f)), IANA_PORT, 42, f.len());
                        if v6 {
                            let sum = udp_checksum_v6(&src, &dst, &head, f);
                            head[6..8].copy_from_slice(&sum.to_be_bytes());
                        }
                        out[..ENCAP_LEN].copy_from_slice(&head);
                        out[ENCAP_LEN..ENCAP_LEN + f.len()].copy_from_slice(f);
                        black_box(&out);
                    }
                })
            });
        }
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
                    match fwd.process(port, &d[VXLAN_HEADER_LEN..], now) {
                        Decision::Flood(net) => {
                            fwd.flood_targets(net, port, &mut targets);
                            black_box(&targets);
                        }
                        d => {
                            black_box(d);
                        }
                    }
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
