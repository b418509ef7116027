//! `chatctl logs [NAME] [-f]`: prints the logs in `STATE_DIR/logs/`, prefixed by name when
//! showing several, and follows appended lines with `-f` (across rotations).

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

pub async fn show(state_dir: &StateDir, name: Option<&str>, follow: bool) -> anyhow::Result<()> {
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
    let mut files: Vec<(String, PathBuf, u64)> = chosen
        .iter()
        .map(|n| (n.clone(), state_dir.log(n), 0))
        .collect();
    loop {
        for (name, path, offset) in files.iter_mut() {
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
            *offset += text.len() as u64;
            let mut out = std::io::stdout().lock();
            for line in text.lines() {
                if prefix {
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
