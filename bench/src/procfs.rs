//! CPU time and RSS of other processes (the server under test) from /proc, so the summary can
//! say what the run phase cost each of them.

use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// utime + stime in milliseconds.
    pub cpu_ms: f64,
    pub rss_kb: u64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Reads /proc/PID/stat and /proc/PID/status; `None` if the process is gone.
pub fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: field 3 (state) is f[0]; utime (14) f[11]; stime (15) f[12].
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(Sample {
        cpu_ms: (utime + stime) * 1000.0 / clock_ticks(),
        rss_kb,
    })
}

/// A process named on the command line as `NAME=PID`.
#[derive(Clone, Debug)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
}

pub fn parse_watch(s: &str) -> Result<Watched, String> {
    let (name, pid) = s
        .split_once('=')
        .ok_or_else(|| format!("--watch {s}: expected NAME=PID"))?;
    let pid = pid
        .trim()
        .parse()
        .map_err(|_| format!("--watch {s}: PID is not a number"))?;
    Ok(Watched {
        name: name.to_owned(),
        pid,
    })
}

/// Samples of every watched process (and of this process, as `chat-bench`).
pub fn snapshot(w: &[Watched]) -> Vec<Option<Sample>> {
    let me = std::process::id();
    w.iter()
        .map(|x| sample(x.pid))
        .chain(std::iter::once(sample(me)))
        .collect()
}

/// `{"NAME":{"pid","cpu_ms","rss_kb_before","rss_kb_start","rss_kb_end"}}` for the run phase.
pub fn report(
    w: &[Watched],
    before: &[Option<Sample>],
    start: &[Option<Sample>],
    end: &[Option<Sample>],
) -> Value {
    let mut out = serde_json::Map::new();
    let me = Watched {
        name: "chat-bench".to_owned(),
        pid: std::process::id(),
    };
    for (i, x) in w.iter().chain(std::iter::once(&me)).enumerate() {
        let g = |v: &[Option<Sample>]| v.get(i).copied().flatten();
        let (b, s, e) = (g(before), g(start), g(end));
        let cpu = match (s, e) {
            (Some(s), Some(e)) => json!(((e.cpu_ms - s.cpu_ms) * 10.0).round() / 10.0),
            _ => Value::Null,
        };
        out.insert(
            x.name.clone(),
            json!({
                "pid": x.pid,
                "cpu_ms": cpu,
                "rss_kb_before": b.map(|s| s.rss_kb),
                "rss_kb_start": s.map(|s| s.rss_kb),
                "rss_kb_end": e.map(|s| s.rss_kb),
            }),
        );
    }
    Value::Object(out)
}

/// Busy CPU time of the whole machine (all cores: user+nice+system+irq+softirq+steal), ms.
pub fn machine_busy_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| v.get(i))
        .sum::<f64>();
    Some(busy * 1000.0 / clock_ticks())
}

/// What the machine spent during the phase outside the watched processes and this one: other
/// work that competed with the measurement (builds, tests, …) if large.
pub fn others(
    start_busy: Option<f64>,
    end_busy: Option<f64>,
    w: &[Watched],
    start: &[Option<Sample>],
    end: &[Option<Sample>],
    seconds: f64,
) -> Value {
    let (Some(a), Some(b)) = (start_busy, end_busy) else {
        return Value::Null;
    };
    let ours: f64 = (0..=w.len())
        .filter_map(|i| {
            match (
                start.get(i).copied().flatten(),
                end.get(i).copied().flatten(),
            ) {
                (Some(s), Some(e)) => Some(e.cpu_ms - s.cpu_ms),
                _ => None,
            }
        })
        .sum();
    let machine = b - a;
    json!({
        "machine_busy_ms": machine.round(),
        "watched_and_self_ms": ours.round(),
        "other_ms": (machine - ours).round(),
        "other_cores": (((machine - ours) / 1000.0 / seconds.max(1e-9)) * 100.0).round() / 100.0,
    })
}
