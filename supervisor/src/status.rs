//! `chatctl status`: the table a PM2 user reads at a glance.

use chat::control::StatusReport;
use std::fmt::Write;

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

pub fn human_bytes(b: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b as f64 >= 1024.0 * MIB {
        format!("{:.1} GiB", b as f64 / (1024.0 * MIB))
    } else {
        format!("{:.1} MiB", b as f64 / MIB)
    }
}

pub fn human_uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// [`render`], with worker states and a down Redis in colour when `colour` (a terminal and
/// no `NO_COLOR`).
pub fn render_coloured(r: &StatusReport, colour: bool) -> String {
    let plain = render(r);
    if !colour {
        return plain;
    }
    let paint = |word: &str| -> Option<&'static str> {
        match word {
            "up" => Some("32"),
            "starting" | "restarting" | "draining" => Some("33"),
            "failed" | "DOWN" => Some("31"),
            _ => None,
        }
    };
    let mut out = String::new();
    for line in plain.lines() {
        let mut line = line.to_owned();
        // Worker rows: the first state word after the numeric columns is the state column.
        let words = ["up", "starting", "restarting", "draining", "failed", "DOWN"];
        if line.starts_with("worker-") || line.starts_with("redis ") {
            for w in words {
                let needle = format!("  {w}");
                let Some(at) = line.find(&needle) else {
                    continue;
                };
                let end = at + needle.len();
                if line[end..].starts_with(|c: char| c.is_alphanumeric()) {
                    continue;
                }
                if let Some(code) = paint(w) {
                    line = format!("{}  \x1b[{code}m{w}\x1b[0m{}", &line[..at], &line[end..]);
                }
                break;
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// One line per part of the cluster that is ready in `r` and not in `announced` yet (which
/// remembers it): `up --detach` prints them as the cluster comes up.
pub fn newly_ready(
    r: &StatusReport,
    announced: &mut std::collections::BTreeSet<String>,
) -> Vec<String> {
    let mut ready = Vec::new();
    if r.redis.up {
        ready.push(("redis".to_owned(), format!("redis ready ({})", r.redis.url)));
    }
    for w in &r.workers {
        if w.state == chat::control::WorkerState::Up {
            ready.push((
                format!("worker-{}", w.id),
                format!(
                    "worker-{} ready on port {} (pid {})",
                    w.id,
                    w.port,
                    opt(w.pid)
                ),
            ));
        }
    }
    let workers_up = r
        .workers
        .iter()
        .all(|w| w.state == chat::control::WorkerState::Up);
    // Announced after the workers, the order in which `up` starts them.
    if let (Some(pid), true) = (r.haproxy.pid, workers_up) {
        ready.push((
            "haproxy".to_owned(),
            format!("haproxy started on port {} (pid {pid})", r.haproxy.port),
        ));
    }
    ready
        .into_iter()
        .filter(|(part, _)| announced.insert(part.clone()))
        .map(|(_, line)| line)
        .collect()
}

pub fn render(r: &StatusReport) -> String {
    let mut rows = vec![[
        "name", "pid", "port", "core", "state", "uptime", "restarts", "conns", "users", "cpu",
        "mem", "haproxy",
    ]
    .map(String::from)];
    for w in &r.workers {
        // Under --advertise the name is derived from this host's address, which only the
        // member entries carry.
        let advertised = r
            .members
            .iter()
            .find(|m| m.local && m.port == w.port)
            .map(|m| m.host.as_str());
        let name = crate::haproxy::server_name(advertised, w.id, w.port);
        let hap = r
            .haproxy
            .servers
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.state.clone())
            .unwrap_or_else(|| "-".into());
        rows.push([
            format!("worker-{}", w.id),
            opt(w.pid),
            w.port.to_string(),
            opt(w.core),
            w.state.as_str().to_owned(),
            opt(w.uptime_secs.map(human_uptime)),
            w.restarts.to_string(),
            opt(w.connections),
            opt(w.users),
            opt(w.cpu_percent.map(|c| format!("{c:.1}%"))),
            opt(w.rss_bytes.map(human_bytes)),
            hap,
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    if !r.members.is_empty() {
        let members: Vec<String> = r
            .members
            .iter()
            .map(|m| {
                format!(
                    "{}:{} (worker-{}{})",
                    m.host,
                    m.port,
                    m.worker,
                    if m.local { ", here" } else { "" }
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "\nservice  {} workers: {}",
            members.len(),
            members.join(", ")
        );
    }
    let h = &r.haproxy;
    let servers: Vec<String> = h
        .servers
        .iter()
        .map(|s| format!("{} {}", s.name, s.state))
        .collect();
    let _ = writeln!(
        out,
        "\nhaproxy  pid {}  port {}  config generation {}  servers: {}",
        opt(h.pid),
        h.port,
        h.generation,
        if servers.is_empty() {
            "-".into()
        } else {
            servers.join(", ")
        }
    );
    let rd = &r.redis;
    let _ = writeln!(
        out,
        "redis    {}  {}  pid {}  {}",
        rd.url,
        if rd.embedded { "embedded" } else { "external" },
        opt(rd.pid),
        match (rd.up, rd.rtt_ms) {
            (true, Some(ms)) => format!("up, {ms:.2} ms round trip"),
            _ => "DOWN".into(),
        }
    );
    for n in &rd.nodes {
        let _ = writeln!(
            out,
            "  node   {}  {}  {}{}",
            n.addr,
            n.role,
            if n.up { "up" } else { "DOWN" },
            if n.slots.is_empty() {
                String::new()
            } else {
                format!("  slots {}", n.slots.join(" "))
            }
        );
    }
    let _ = writeln!(
        out,
        "chatctl  pid {}  state dir {}",
        r.supervisor.pid, r.supervisor.state_dir
    );
    if let Some(m) = &r.machine {
        let _ = writeln!(
            out,
            "machine  {} CPUs  {:.0}% busy  load {:.2} {:.2} {:.2}  memory {} used of {}",
            m.cpus,
            m.cpu_percent,
            m.load[0],
            m.load[1],
            m.load[2],
            human_bytes(
                m.memory_total_bytes
                    .saturating_sub(m.memory_available_bytes)
            ),
            human_bytes(m.memory_total_bytes)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat::control::*;

    #[test]
    fn renders_a_row_per_worker_and_the_haproxy_and_redis_lines() {
        let r = StatusReport {
            supervisor: SupervisorStatus {
                pid: 1,
                state_dir: "/s".into(),
            },
            workers: vec![WorkerStatus {
                id: 0,
                pid: Some(42),
                port: 30001,
                core: Some(0),
                state: WorkerState::Up,
                restarts: 2,
                connections: Some(10),
                users: Some(7),
                cpu_percent: Some(1.5),
                rss_bytes: Some(8 * 1024 * 1024),
                uptime_secs: Some(75),
                health: 200,
            }],
            haproxy: HaproxyStatus {
                pid: Some(9),
                port: 8080,
                generation: 3,
                servers: vec![ServerStatus {
                    name: "w0".into(),
                    state: "UP".into(),
                }],
            },
            redis: RedisStatus {
                url: "redis+unix:///s/redis.sock".into(),
                embedded: true,
                pid: Some(5),
                up: true,
                rtt_ms: Some(0.12),
                nodes: Vec::new(),
            },
            members: vec![],
            machine: Some(MachineStatus {
                cpus: 2,
                cpu_percent: 37.4,
                load: [0.52, 0.4, 0.31],
                memory_total_bytes: 24 << 30,
                memory_available_bytes: 20 << 30,
            }),
        };
        let mut announced = std::collections::BTreeSet::new();
        assert_eq!(
            newly_ready(&r, &mut announced),
            [
                "redis ready (redis+unix:///s/redis.sock)",
                "worker-0 ready on port 30001 (pid 42)",
                "haproxy started on port 8080 (pid 9)"
            ]
        );
        assert!(newly_ready(&r, &mut announced).is_empty(), "each part once");
        let t = render(&r);
        assert!(
            t.contains(
                "machine  2 CPUs  37% busy  load 0.52 0.40 0.31  memory 4.0 GiB used of 24.0 GiB"
            ),
            "{t}"
        );
        assert!(t.contains("worker-0  42   30001  0     up     1m15s   2         10     7      1.5%  8.0 MiB  UP"), "{t}");
        assert!(t.contains("config generation 3"));
        assert!(t.contains("up, 0.12 ms round trip"));
    }

    #[test]
    fn the_haproxy_column_follows_the_advertised_server_name() {
        let w = |id: u32, port: u16| WorkerStatus {
            id,
            pid: Some(42),
            port,
            core: Some(0),
            state: WorkerState::Up,
            restarts: 0,
            connections: None,
            users: None,
            cpu_percent: None,
            rss_bytes: None,
            uptime_secs: None,
            health: 200,
        };
        let r = StatusReport {
            supervisor: SupervisorStatus {
                pid: 1,
                state_dir: "/s".into(),
            },
            workers: vec![w(0, 30001), w(1, 30002)],
            haproxy: HaproxyStatus {
                pid: Some(9),
                port: 8080,
                generation: 3,
                servers: vec![ServerStatus {
                    name: "h10_0_0_7_30001".into(),
                    state: "UP".into(),
                }],
            },
            redis: RedisStatus {
                url: "redis://r".into(),
                embedded: false,
                pid: None,
                up: true,
                rtt_ms: Some(0.1),
                nodes: Vec::new(),
            },
            members: vec![MemberStatus {
                host: "10.0.0.7".into(),
                port: 30001,
                worker: 0,
                pid: Some(42),
                local: true,
            }],
            machine: None,
        };
        let t = render(&r);
        let row = |name: &str| {
            t.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or("")
                .to_owned()
        };
        assert!(row("worker-0").ends_with("UP"), "{t}");
        // Not a member (yet): not in this front door's configuration either.
        assert!(row("worker-1").ends_with('-'), "{t}");
    }

    #[test]
    fn uptime_is_human() {
        assert_eq!(human_uptime(5), "5s");
        assert_eq!(human_uptime(3700), "1h1m");
        assert_eq!(human_uptime(90_000), "1d1h");
    }
}
