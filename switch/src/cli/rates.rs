//! Rates from two observations of the switch: what `uswitch top` and `show topology`
//! put beside each port. The switch keeps only counters; a rate is the difference of two
//! readings over the switch's own clock between them.

use std::collections::BTreeMap;

use crate::control::protocol::{Counters, Observation};

/// One port's traffic per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct PortRate {
    pub rx_fps: f64,
    pub tx_fps: f64,
    pub rx_bps: f64,
    pub tx_bps: f64,
    pub drops_ps: f64,
}

/// The rates between two observations.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    /// Per port name; a port that was not in the earlier observation has none.
    pub ports: BTreeMap<String, PortRate>,
    /// Drops per second by reason, over every port.
    pub drop_reasons: BTreeMap<String, f64>,
}

impl Rates {
    /// The rates from `before` to `now` (a counter that went back, as a port removed and
    /// added again under its name, counts from zero).
    pub fn between(before: &Observation, now: &Observation) -> Rates {
        let secs = now.now_ms.saturating_sub(before.now_ms) as f64 / 1000.0;
        let mut rates = Rates::default();
        if secs <= 0.0 {
            return rates;
        }
        let earlier: BTreeMap<&str, &Counters> = before
            .ports
            .iter()
            .map(|p| (p.name.as_str(), &p.counters))
            .collect();
        for p in &now.ports {
            let Some(was) = earlier.get(p.name.as_str()) else {
                continue;
            };
            let c = &p.counters;
            let per = |now: u64, was: u64| {
                let d = if now >= was { now - was } else { now };
                d as f64 / secs
            };
            rates.ports.insert(
                p.name.clone(),
                PortRate {
                    rx_fps: per(c.rx_frames, was.rx_frames),
                    tx_fps: per(c.tx_frames, was.tx_frames),
                    rx_bps: per(c.rx_bytes, was.rx_bytes) * 8.0,
                    tx_bps: per(c.tx_bytes, was.tx_bytes) * 8.0,
                    drops_ps: per(c.total_drops(), was.total_drops()),
                },
            );
            for (reason, &n) in &c.drops {
                let before = was.drops.get(reason).copied().unwrap_or(0);
                let r = per(n, before);
                if r > 0.0 {
                    *rates.drop_reasons.entry(reason.clone()).or_default() += r;
                }
            }
        }
        rates
    }

    /// The drop reason with the most drops per second now, if any drops happened.
    pub fn busiest_drop(&self) -> Option<(&str, f64)> {
        self.drop_reasons
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(r, &n)| (r.as_str(), n))
    }
}

/// `n` with a unit prefix (k, M, G), as top and the topology print rates.
pub fn si(n: f64) -> String {
    let (v, unit) = if n >= 1e9 {
        (n / 1e9, "G")
    } else if n >= 1e6 {
        (n / 1e6, "M")
    } else if n >= 1e3 {
        (n / 1e3, "k")
    } else {
        (n, "")
    };
    if unit.is_empty() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::PortRow;

    fn obs(at: u64, rx: u64, runts: u64) -> Observation {
        Observation {
            pid: 1,
            version: String::new(),
            now_ms: at,
            ports: vec![PortRow {
                name: "tap0".into(),
                network: "n".into(),
                kind: "tap".into(),
                state: "up".into(),
                bum_rate: 0,
                storm_rests: 0,
                worker: 0,
                mtu: 1500,
                offloads: vec![],
                created: false,
                capture: None,
                counters: Counters {
                    rx_frames: rx,
                    rx_bytes: rx * 100,
                    drops: [("runt".to_string(), runts)].into(),
                    ..Counters::default()
                },
                owner: None,
            }],
            networks: vec![],
            vxlan: vec![],
            cluster: None,
            unattached_drops: 0,
        }
    }

    #[test]
    fn rates_are_differences_over_the_switch_clock() {
        let r = Rates::between(&obs(1000, 10, 0), &obs(3000, 210, 4));
        let p = r.ports["tap0"];
        assert_eq!(p.rx_fps, 100.0);
        assert_eq!(p.rx_bps, 100.0 * 100.0 * 8.0);
        assert_eq!(p.drops_ps, 2.0);
        assert_eq!(r.busiest_drop(), Some(("runt", 2.0)));
        // A counter that went back (the port came again) counts from zero.
        let again = Rates::between(&obs(1000, 500, 0), &obs(2000, 30, 0));
        assert_eq!(again.ports["tap0"].rx_fps, 30.0);
        // No time between them: no rates rather than a division by zero.
        assert!(Rates::between(&obs(5, 1, 0), &obs(5, 2, 0))
            .ports
            .is_empty());
        assert_eq!(si(1_500_000.0), "1.5M");
        assert_eq!(si(12.0), "12");
    }
}
