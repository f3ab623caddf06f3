//! `uswitch top`: a live view of the switch in the terminal (ratatui over crossterm).
//! Every second it asks the control socket for one observation and shows, from the
//! difference with the one before, each port's rates with its container and network,
//! the networks with their FDB, the VXLAN remotes, and the busiest drop reason. It only
//! reads; `q` quits. A switch that goes away is said on the screen, and the view comes
//! back when it does.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::{DefaultTerminal, Frame};

use super::rates::{si, Rates};
use crate::control::client::ask;
use crate::control::protocol::{Observation, Request};

/// What the ports are sorted by (`s` cycles; each has its key too).
pub use super::TopSort as SortBy;

impl SortBy {
    fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string())
    }

    fn next(self) -> SortBy {
        let all = SortBy::value_variants();
        let i = all.iter().position(|&s| s == self).unwrap_or(0);
        all[(i + 1) % all.len()]
    }
}

/// What the view shows: the last observation, the rates up to it, or why there is none.
struct View {
    socket: String,
    sort: SortBy,
    last: Option<Observation>,
    rates: Rates,
    /// Set while the switch does not answer.
    gone: Option<String>,
}

impl View {
    fn refresh(&mut self, path: &Path) {
        match ask::<Observation>(path, &Request::Observe) {
            Ok(now) => {
                // A new pid is a new switch: its counters start again.
                self.rates = match &self.last {
                    Some(before) if before.pid == now.pid => Rates::between(before, &now),
                    _ => Rates::default(),
                };
                self.last = Some(now);
                self.gone = None;
            }
            Err(e) => self.gone = Some(e),
        }
    }
}

/// Runs the view until `q`; `interval` between observations.
pub fn run(path: &Path, interval: Duration, sort: SortBy) -> Result<(), String> {
    let mut view = View {
        socket: path.display().to_string(),
        sort,
        last: None,
        rates: Rates::default(),
        gone: None,
    };
    view.refresh(path);
    if let Some(e) = &view.gone {
        return Err(e.clone());
    }
    let mut terminal = ratatui::try_init().map_err(|e| format!("the terminal: {e}"))?;
    let result = event_loop(&mut terminal, &mut view, path, interval);
    ratatui::restore();
    result
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    view: &mut View,
    path: &Path,
    interval: Duration,
) -> Result<(), String> {
    let mut next = Instant::now() + interval;
    loop {
        terminal
            .draw(|f| draw(f, view))
            .map_err(|e| format!("drawing: {e}"))?;
        let wait = next.saturating_duration_since(Instant::now());
        if event::poll(wait).map_err(|e| format!("reading keys: {e}"))? {
            if let Event::Key(k) = event::read().map_err(|e| format!("reading keys: {e}"))? {
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(())
                    }
                    KeyCode::Char('s') => view.sort = view.sort.next(),
                    KeyCode::Char('r') => view.sort = SortBy::Rx,
                    KeyCode::Char('t') => view.sort = SortBy::Tx,
                    KeyCode::Char('d') => view.sort = SortBy::Drops,
                    KeyCode::Char('n') => view.sort = SortBy::Name,
                    KeyCode::Char('w') => view.sort = SortBy::Network,
                    _ => {}
                }
            }
            continue;
        }
        view.refresh(path);
        next = Instant::now() + interval;
    }
}

/// The columns a terminal this wide has room for: the narrowest keeps the port, its
/// receive rate and its drops.
fn port_columns(width: u16) -> &'static [&'static str] {
    const WIDE: &[&str] = &[
        "PORT", "OWNER", "NETWORK", "KIND", "STATE", "RX f/s", "TX f/s", "RX b/s", "TX b/s",
        "DROP/s",
    ];
    const MEDIUM: &[&str] = &["PORT", "NETWORK", "RX f/s", "TX f/s", "RX b/s", "DROP/s"];
    const NARROW: &[&str] = &["PORT", "RX f/s", "DROP/s"];
    if width >= 100 {
        WIDE
    } else if width >= 60 {
        MEDIUM
    } else {
        NARROW
    }
}

fn draw(f: &mut Frame, view: &View) {
    let area = f.area();
    let Some(obs) = &view.last else {
        f.render_widget(Paragraph::new("waiting for the switch..."), area);
        return;
    };
    let remotes: usize = obs
        .vxlan
        .iter()
        .flat_map(|e| &e.segments)
        .map(|s| s.peers.len())
        .sum();
    let net_rows = obs.networks.len().min(8) as u16;
    let remote_rows = remotes.min(8) as u16;
    let [head, ports_area, nets_area, remotes_area, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(net_rows + 3),
        Constraint::Length(if remotes > 0 { remote_rows + 3 } else { 0 }),
        Constraint::Length(1),
    ])
    .areas(area);

    // The longest title that fits: with the socket, without it, or just the essentials.
    let sort = view.sort.name();
    let counts = format!(
        "pid {}  {} ports {} networks {} remotes  sort: {sort} (r t d n w s; q quits)",
        obs.pid,
        obs.ports.len(),
        obs.networks.len(),
        remotes,
    );
    let title = [
        format!("uswitch top  {}  {counts}", view.socket),
        format!("uswitch top  {counts}"),
        format!("uswitch top  pid {}  sort: {sort}  q quits", obs.pid),
    ]
    .into_iter()
    .find(|t| t.chars().count() <= usize::from(area.width))
    .unwrap_or_else(|| "uswitch top (q quits)".into());
    f.render_widget(
        Paragraph::new(title).style(Style::new().add_modifier(Modifier::BOLD)),
        head,
    );

    // Ports, sorted.
    let columns = port_columns(area.width);
    let mut ports: Vec<_> = obs.ports.iter().collect();
    let rate = |name: &str| view.rates.ports.get(name).copied().unwrap_or_default();
    match view.sort {
        SortBy::Rx => ports.sort_by(|a, b| rate(&b.name).rx_fps.total_cmp(&rate(&a.name).rx_fps)),
        SortBy::Tx => ports.sort_by(|a, b| rate(&b.name).tx_fps.total_cmp(&rate(&a.name).tx_fps)),
        SortBy::Drops => {
            ports.sort_by(|a, b| rate(&b.name).drops_ps.total_cmp(&rate(&a.name).drops_ps))
        }
        SortBy::Name => ports.sort_by(|a, b| a.name.cmp(&b.name)),
        SortBy::Network => ports.sort_by(|a, b| (&a.network, &a.name).cmp(&(&b.network, &b.name))),
    }
    let rows = ports.iter().map(|p| {
        let r = rate(&p.name);
        Row::new(columns.iter().map(|&c| match c {
            "PORT" => p.name.clone(),
            "OWNER" => p.owner.clone().unwrap_or_else(|| "-".into()),
            "NETWORK" => p.network.clone(),
            "KIND" => p.kind.clone(),
            "STATE" => p.state.clone(),
            "RX f/s" => si(r.rx_fps),
            "TX f/s" => si(r.tx_fps),
            "RX b/s" => si(r.rx_bps),
            "TX b/s" => si(r.tx_bps),
            _ => si(r.drops_ps),
        }))
    });
    let widths = columns.iter().map(|&c| match c {
        "PORT" | "OWNER" => Constraint::Length(16),
        "NETWORK" => Constraint::Length(12),
        "KIND" | "STATE" => Constraint::Length(7),
        _ => Constraint::Length(8),
    });
    f.render_widget(
        Table::new(rows, widths)
            .header(
                Row::new(columns.iter().copied()).style(Style::new().add_modifier(Modifier::BOLD)),
            )
            .block(Block::bordered().title(" ports ")),
        ports_area,
    );

    // Networks: a narrow terminal keeps the name, the ports and the FDB.
    let all = ["NETWORK", "PORTS", "FDB", "EVICTED", "SUBNET"];
    let net_columns = if area.width >= 60 {
        &all[..]
    } else {
        &all[..3]
    };
    let rows = obs.networks.iter().map(|n| {
        Row::new(net_columns.iter().map(|&c| match c {
            "NETWORK" => n.name.clone(),
            "PORTS" => n.ports.len().to_string(),
            "FDB" => n.fdb_entries.to_string(),
            "EVICTED" => n.fdb_evictions.to_string(),
            _ => n.subnet.clone().unwrap_or_else(|| "-".into()),
        }))
    });
    let widths = net_columns.iter().map(|&c| match c {
        "NETWORK" => Constraint::Length(16),
        "PORTS" => Constraint::Length(6),
        "FDB" => Constraint::Length(8),
        "EVICTED" => Constraint::Length(10),
        _ => Constraint::Min(10),
    });
    f.render_widget(
        Table::new(rows, widths)
            .header(
                Row::new(net_columns.iter().copied())
                    .style(Style::new().add_modifier(Modifier::BOLD)),
            )
            .block(Block::bordered().title(" networks ")),
        nets_area,
    );

    // VXLAN remotes, named by their cluster node when the cluster knows it.
    if remotes > 0 {
        let node_of = |remote: &str| {
            obs.cluster
                .as_ref()
                .and_then(|c| c.node_of(remote))
                .map(String::from)
        };
        let rows = obs.vxlan.iter().flat_map(|e| {
            e.segments.iter().flat_map(move |s| {
                s.peers.iter().map(move |p| {
                    let r = p.port.as_deref().map(rate).unwrap_or_default();
                    Row::new([
                        s.vni.to_string(),
                        s.network.clone(),
                        p.remote.clone(),
                        node_of(&p.remote).unwrap_or_else(|| "-".into()),
                        si(r.rx_fps),
                        si(r.tx_fps),
                    ])
                })
            })
        });
        f.render_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(9),
                    Constraint::Length(12),
                    Constraint::Length(16),
                    Constraint::Length(10),
                    Constraint::Length(8),
                    Constraint::Length(8),
                ],
            )
            .header(
                Row::new(["VNI", "NETWORK", "REMOTE", "NODE", "RX f/s", "TX f/s"])
                    .style(Style::new().add_modifier(Modifier::BOLD)),
            )
            .block(Block::bordered().title(" vxlan remotes ")),
            remotes_area,
        );
    }

    let footer = match (&view.gone, view.rates.busiest_drop()) {
        (Some(e), _) => format!("the switch went away: {e} (asking again every second)"),
        (None, Some((reason, n))) => format!("busiest drop: {reason} {}/s", si(n)),
        (None, None) => "no drops in the last second".into(),
    };
    f.render_widget(Line::from(footer), foot);
}
