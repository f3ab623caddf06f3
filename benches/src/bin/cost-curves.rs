//! Cost curves of the forwarder core: per-frame time and memory as ports per network,
//! MACs, networks and VXLAN remotes grow. Prints a Markdown table and draws a PNG.
//!
//!   cargo run --release -p uswitch-benches --bin cost-curves -- [--out benches/results]
//!
//! Time is the median of seven timed passes over a scenario's frames (each pass at least
//! 50 ms); memory is what the forwarder holds on the heap once the scenario's hosts are
//! learned (counted by this binary's allocator, the frames themselves left out). The PNG's
//! labels need a TrueType font: DejaVu Sans from Debian's fonts-dejavu-core.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use forwarder::Plan;
use uswitch_benches::cost::{self, Scenario};

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One point of a curve.
struct Point {
    x: u32,
    ns_per_frame: f64,
    bytes: f64,
}

/// A curve: what grows, and the scenario at each of its points.
struct Curve {
    name: &'static str,
    axis: &'static str,
    points: Vec<Point>,
}

fn measure(x: u32, build: &dyn Fn(u32) -> Scenario) -> Point {
    let before = LIVE.load(Ordering::Relaxed);
    let mut s = build(x);
    let frames: usize = s.frames.iter().map(|(_, f)| f.capacity()).sum::<usize>()
        + s.frames.capacity() * std::mem::size_of::<(cost::Entry, Vec<u8>)>();
    let bytes = (LIVE.load(Ordering::Relaxed) - before) as f64 - frames as f64;
    let mut plan = Plan::default();
    // How many passes make 50 ms.
    let t = Instant::now();
    s.run(&mut plan, 1);
    let one = t.elapsed().as_secs_f64().max(1e-7);
    let passes = ((0.05 / one).ceil() as usize).max(1);
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..passes {
                std::hint::black_box(s.run(&mut plan, 1));
            }
            t.elapsed().as_secs_f64() * 1e9 / (passes * s.frames.len()) as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    Point {
        x,
        ns_per_frame: samples[samples.len() / 2],
        bytes,
    }
}

/// The forwarder core with `w` workers at once: the wall time per frame planned, all
/// workers together (so 2 workers that scale perfectly halve it), the median of 5 runs.
fn measure_workers(w: u32) -> Point {
    let before = LIVE.load(Ordering::Relaxed);
    let s = cost::workers(w);
    let frames: usize = s
        .frames
        .iter()
        .map(|w| {
            w.capacity() * std::mem::size_of::<(forwarder::PortId, Vec<u8>)>()
                + w.iter().map(|(_, f)| f.capacity()).sum::<usize>()
        })
        .sum::<usize>()
        + s.frames.capacity() * std::mem::size_of::<Vec<(forwarder::PortId, Vec<u8>)>>();
    let bytes = (LIVE.load(Ordering::Relaxed) - before) as f64 - frames as f64;
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let (planned, took) = s.run(Duration::from_millis(200));
            took.as_secs_f64() * 1e9 / planned.max(1) as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let p = Point {
        x: w,
        ns_per_frame: samples[samples.len() / 2],
        bytes,
    };
    eprintln!(
        "workers {w}: {:.1} ns/frame ({:.1} M frames/s in all)",
        p.ns_per_frame,
        1e3 / p.ns_per_frame
    );
    p
}

fn curve(
    name: &'static str,
    axis: &'static str,
    xs: &[u32],
    build: &dyn Fn(u32) -> Scenario,
) -> Curve {
    let points = xs
        .iter()
        .map(|&x| {
            let p = measure(x, build);
            eprintln!(
                "{name} {x}: {:.1} ns/frame, {:.0} bytes",
                p.ns_per_frame, p.bytes
            );
            p
        })
        .collect();
    Curve { name, axis, points }
}

fn table(curves: &[Curve]) -> String {
    let mut out = String::from(
        "| curve | grows | at | ns per frame | forwarder memory | bytes per unit |\n|---|---|---:|---:|---:|---:|\n",
    );
    for c in curves {
        for p in &c.points {
            out += &format!(
                "| {} | {} | {} | {:.1} | {} | {:.0} |\n",
                c.name,
                c.axis,
                p.x,
                p.ns_per_frame,
                human(p.bytes),
                p.bytes / p.x as f64
            );
        }
    }
    out
}

fn human(bytes: f64) -> String {
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", bytes / 1024.0)
    }
}

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Two rows of panels, one column per dimension: time per frame above, memory below.
fn plot(groups: &[(&str, Vec<&Curve>)], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let font = std::fs::read(FONT)
        .map_err(|e| format!("reading {FONT}: {e} (apt-get install fonts-dejavu-core)"))?;
    // The font must live as long as the program: plotters keeps a reference.
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| format!("{FONT} is not a TrueType font plotters can read"))?;
    let root = BitMapBackend::new(path, (1900, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((2, groups.len()));
    let colors = [BLUE, RED];
    for (col, (axis, curves)) in groups.iter().enumerate() {
        let all = || curves.iter().flat_map(|c| c.points.iter());
        let xmax = all().map(|p| p.x as f64).fold(1.0, f64::max);
        let xmin = all().map(|p| p.x as f64).fold(f64::MAX, f64::min);
        for (row, what) in ["ns per frame", "forwarder memory (MiB)"]
            .iter()
            .enumerate()
        {
            let value = |p: &Point| {
                if row == 0 {
                    p.ns_per_frame
                } else {
                    p.bytes / 1024.0 / 1024.0
                }
            };
            let ymax = all().map(value).fold(0.0, f64::max) * 1.15 + 1e-9;
            let mut chart = ChartBuilder::on(&panels[row * groups.len() + col])
                .caption(format!("{what} by {axis}"), ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(32)
                .y_label_area_size(60)
                .build_cartesian_2d((xmin..xmax).log_scale(), 0.0..ymax)?;
            chart
                .configure_mesh()
                .x_desc(*axis)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .draw()?;
            for (c, color) in curves.iter().zip(colors.iter().cycle()) {
                let xy: Vec<(f64, f64)> = c.points.iter().map(|p| (p.x as f64, value(p))).collect();
                chart
                    .draw_series(LineSeries::new(xy.clone(), color))?
                    .label(c.name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
                chart.draw_series(
                    xy.into_iter()
                        .map(|(x, y)| Circle::new((x, y), 3, color.filled())),
                )?;
            }
            if curves.len() > 1 {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::UpperLeft)
                    .draw()?;
            }
        }
    }
    root.present()?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.as_slice() {
        [] => PathBuf::from("benches/results"),
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        _ => {
            eprintln!("usage: cost-curves [--out DIR]   (writes DIR/cost-curves.md and .png)");
            std::process::exit(2);
        }
    };
    let ports = [2, 8, 32, 128, 512, 1024];
    let remotes = [1, 4, 16, 64, 256];
    let curves = [
        curve("ports, unicast", "ports", &ports, &|n| {
            cost::ports_per_network(n, false)
        }),
        curve("ports, broadcast", "ports", &ports, &|n| {
            cost::ports_per_network(n, true)
        }),
        curve(
            "MACs",
            "MACs",
            &[1_000, 10_000, 100_000, 1_000_000],
            &cost::macs,
        ),
        curve("networks", "networks", &[1, 10, 100, 1000], &cost::networks),
        curve("remotes, unicast", "remotes", &remotes, &|n| {
            cost::remotes(n, false)
        }),
        curve("remotes, broadcast", "remotes", &remotes, &|n| {
            cost::remotes(n, true)
        }),
        Curve {
            name: "workers, unicast",
            axis: "workers",
            points: [1, 2, 4].into_iter().map(measure_workers).collect(),
        },
    ];
    let w = &curves[6].points;
    eprintln!(
        "forwarder core: 2 workers {:.2}x one, 4 workers {:.2}x one ({} CPUs here)",
        w[0].ns_per_frame / w[1].ns_per_frame,
        w[0].ns_per_frame / w[2].ns_per_frame,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let md = table(&curves);
    print!("{md}");
    let groups = [
        ("ports", vec![&curves[0], &curves[1]]),
        ("MACs", vec![&curves[2]]),
        ("networks", vec![&curves[3]]),
        ("remotes", vec![&curves[4], &curves[5]]),
        ("workers", vec![&curves[6]]),
    ];
    let result = std::fs::create_dir_all(&out)
        .map_err(|e| format!("creating {}: {e}", out.display()))
        .and_then(|_| {
            std::fs::write(out.join("cost-curves.md"), &md)
                .map_err(|e| format!("writing {}: {e}", out.join("cost-curves.md").display()))
        })
        .and_then(|_| plot(&groups, &out.join("cost-curves.png")).map_err(|e| e.to_string()));
    match result {
        Ok(()) => eprintln!(
            "wrote {0}/cost-curves.md and {0}/cost-curves.png",
            out.display()
        ),
        Err(e) => {
            eprintln!("cost-curves: {e}");
            std::process::exit(1);
        }
    }
}
