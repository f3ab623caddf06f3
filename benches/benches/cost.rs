//! The forwarder core's cost per frame as the work grows: ports per network, MACs
//! learned, networks, VXLAN remotes (the scenarios of `uswitch_benches::cost`; the
//! `cost-curves` binary draws the same points with memory for the README).
//! `cargo bench -p uswitch-benches --bench cost`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use forwarder::Plan;
use uswitch_benches::cost::{self, Scenario};

fn curve(c: &mut Criterion, name: &str, points: &[u32], build: impl Fn(u32) -> Scenario) {
    let mut group = c.benchmark_group(name);
    let mut plan = Plan::default();
    for &n in points {
        let mut s = build(n);
        group.throughput(Throughput::Elements(s.frames.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| s.run(&mut plan, 1))
        });
    }
    group.finish();
}

fn curves(c: &mut Criterion) {
    curve(c, "ports_unicast", &[2, 32, 1024], |n| {
        cost::ports_per_network(n, false)
    });
    curve(c, "ports_broadcast", &[2, 32, 1024], |n| {
        cost::ports_per_network(n, true)
    });
    curve(c, "macs", &[1_000, 100_000, 1_000_000], cost::macs);
    curve(c, "networks", &[1, 100, 1000], cost::networks);
    curve(c, "remotes_unicast", &[1, 16, 256], |n| {
        cost::remotes(n, false)
    });
    curve(c, "remotes_broadcast", &[1, 16, 256], |n| {
        cost::remotes(n, true)
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    targets = curves
}
criterion_main!(benches);
