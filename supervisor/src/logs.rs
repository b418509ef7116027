//! `chatctl logs [NAME] [-f] [-n N]`: prints the logs in `STATE_DIR/logs/` (the last N lines
//! of each with `-n`), prefixed by name when showing several, and follows appended lines with
//! `-f` (across rotations). Also the RFC 3339 timestamp every log line starts with.

use anyhow::bail;
use chat::paths::StateDir;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

fn available(state_dir: &StateDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(state_dir.logs_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".log"))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Now as RFC 3339 UTC with milliseconds (`2026-11-28T16:22:23.123Z`), the prefix of every
/// line chatctl writes into a child's log.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(now.as_secs(), now.subsec_millis())
}

fn format_utc(secs: u64, millis: u32) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub async fn show(
    state_dir: &StateDir,
    name: Option<&str>,
    follow: bool,
    last: Option<usize>,
    json: bool,
) -> anyhow::Result<()> {
    let names = available(state_dir);
    let chosen: Vec<String> = match name {
        Some(n) if names.iter().any(|x| x == n) => vec![n.to_owned()],
        Some(n) => bail!(
            "no log named {n:?} in {}; available: {}",
            state_dir.logs_dir().display(),
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        ),
        None => names,
    };
    let prefix = chosen.len() > 1;
    // (name, path, offset, shown yet): `-n` trims only the first read of each file, not
    // what a rotation restarts from offset 0.
    let mut files: Vec<(String, PathBuf, u64, bool)> = chosen
        .iter()
        .map(|n| (n.clone(), state_dir.log(n), 0, false))
        .collect();
    loop {
        for (name, path, offset, shown) in files.iter_mut() {
            let Ok(mut f) = std::fs::File::open(&*path) else {
                continue;
            };
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < *offset {
                *offset = 0; // rotated
            }
            if f.seek(SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let mut text = String::new();
            if f.read_to_string(&mut text).is_err() {
                continue;
            }
            let first = !*shown;
            *shown = true;
            *offset += text.len() as u64;
            let mut out = std::io::stdout().lock();
            let lines: Vec<&str> = text.lines().collect();
            let skip = match last {
                Some(n) if first => lines.len().saturating_sub(n),
                _ => 0,
            };
            for line in &lines[skip..] {
                if json {
                    let _ = writeln!(out, "{}", json_line(name, line));
                } else if prefix {
                    let _ = writeln!(out, "{name:>10} | {line}");
                } else {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A log file's line (`TIMESTAMP text`, as chatctl writes them) as one JSON object.
fn json_line(child: &str, line: &str) -> String {
    let (timestamp, text) = match line.split_once(' ') {
        Some((ts, rest)) if ts.len() == 24 && ts.ends_with('Z') => (Some(ts), rest),
        _ => (None, line),
    };
    serde_json::json!({"child": child, "timestamp": timestamp, "line": text}).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_lines_split_the_timestamp() {
        let v: serde_json::Value = serde_json::from_str(&super::json_line(
            "worker-0",
            "2026-11-28T16:32:23.007Z listening on 127.0.0.1:1",
        ))
        .unwrap();
        assert_eq!(v["timestamp"], "2026-11-28T16:32:23.007Z");
        assert_eq!(v["line"], "listening on 127.0.0.1:1");
        let bare: serde_json::Value =
            serde_json::from_str(&super::json_line("redis", "no stamp")).unwrap();
        assert!(bare["timestamp"].is_null());
        assert_eq!(bare["line"], "no stamp");
    }

    #[test]
    fn utc_timestamps() {
        assert_eq!(super::format_utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::format_utc(1_795_883_543, 7),
            "2026-11-28T16:32:23.007Z"
        );
        assert_eq!(
            super::format_utc(951_782_400, 0),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
