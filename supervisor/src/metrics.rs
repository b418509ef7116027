//! One Prometheus exposition for the whole cluster: every worker's `/metrics` relabelled with
//! `worker="N"` (and `host` in a multi-host service), HAProxy's exporter and chatctl's own
//! series, merged so that each family appears once, with one HELP and one TYPE line and its
//! samples together — the text format requires that, and a plain concatenation of several
//! workers' pages breaks it.

use std::fmt::Write;

/// One metric family of an exposition, in the order it was first seen.
#[derive(Debug, Default)]
struct Family {
    name: String,
    help: Option<String>,
    kind: Option<String>,
    /// Sample lines, already relabelled.
    samples: Vec<String>,
}

/// Families from several sources, merged by name.
#[derive(Debug, Default)]
pub struct Merged {
    families: Vec<Family>,
}

impl Merged {
    fn family(&mut self, name: &str) -> &mut Family {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(at) => at,
            None => {
                self.families.push(Family {
                    name: name.to_owned(),
                    ..Family::default()
                });
                self.families.len() - 1
            }
        };
        &mut self.families[at]
    }

    /// Adds one exposition (text format 0.0.4), putting `labels` first on every sample.
    /// Lines that are not HELP, TYPE or a sample are dropped: nothing a child serves is
    /// copied unchecked.
    pub fn add(&mut self, exposition: &str, labels: &[(&str, &str)]) {
        let prefix: String = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect::<Vec<_>>()
            .join(",");
        // Samples belong to the family of the last HELP/TYPE line (histogram `_bucket`,
        // `_sum` and `_count` samples carry suffixed names).
        let mut current: Option<String> = None;
        for line in exposition.lines() {
            let line = line.trim_end();
            if let Some(rest) = line.strip_prefix("# HELP ") {
                if let Some((name, text)) = split_name(rest) {
                    let f = self.family(name);
                    f.help.get_or_insert_with(|| text.to_owned());
                    current = Some(name.to_owned());
                }
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                if let Some((name, kind)) = split_name(rest) {
                    let f = self.family(name);
                    f.kind.get_or_insert_with(|| kind.to_owned());
                    current = Some(name.to_owned());
                }
            } else if line.is_empty() || line.starts_with('#') {
                continue;
            } else if let Some(sample) = relabel(line, &prefix) {
                let name = sample_name(line);
                let family = match &current {
                    Some(c) if name.starts_with(c.as_str()) => c.clone(),
                    _ => name.to_owned(),
                };
                self.family(&family).samples.push(sample);
            }
        }
    }

    /// The merged exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        for f in &self.families {
            if let Some(help) = &f.help {
                let _ = writeln!(out, "# HELP {} {help}", f.name);
            }
            if let Some(kind) = &f.kind {
                let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            }
            for s in &f.samples {
                out.push_str(s);
                out.push('\n');
            }
        }
        out
    }
}

fn split_name(rest: &str) -> Option<(&str, &str)> {
    let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
    valid_name(name).then_some((name, text))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn sample_name(line: &str) -> &str {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    &line[..end]
}

/// `name{a="b"} 1` → `name{worker="0",a="b"} 1`; `name 1` → `name{worker="0"} 1`.
fn relabel(line: &str, prefix: &str) -> Option<String> {
    let name = sample_name(line);
    if !valid_name(name) {
        return None;
    }
    let rest = &line[name.len()..];
    // The value (and optional timestamp) after the label block must be numbers.
    let value_part = match rest.strip_prefix('{') {
        Some(inner) => &inner[inner.rfind('}')? + 1..],
        None => rest,
    };
    let mut fields = value_part.split_whitespace();
    fields.next()?.parse::<f64>().ok()?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    if prefix.is_empty() {
        return Some(line.to_owned());
    }
    Some(match rest.strip_prefix('{') {
        Some(inner) if inner.starts_with('}') => format!("{name}{{{prefix}{inner}"),
        Some(inner) => format!("{name}{{{prefix},{inner}"),
        None => format!("{name}{{{prefix}}}{rest}"),
    })
}

/// Label values escape backslash, double quote and newline (text format 0.0.4).
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKER: &str = "# HELP chat_connections Open Socket.IO connections.\n\
# TYPE chat_connections gauge\n\
chat_connections 3\n\
# HELP chat_errors_total Errors answered to clients, by code.\n\
# TYPE chat_errors_total counter\n\
chat_errors_total{code=\"bad_request\"} 1\n\
# HELP chat_delivery_latency_seconds Send to ack.\n\
# TYPE chat_delivery_latency_seconds histogram\n\
chat_delivery_latency_seconds_bucket{le=\"0.001\"} 1\n\
chat_delivery_latency_seconds_bucket{le=\"+Inf\"} 2\n\
chat_delivery_latency_seconds_sum 0.5\n\
chat_delivery_latency_seconds_count 2\n";

    #[test]
    fn two_workers_merge_into_one_family_each_with_labels() {
        let mut m = Merged::default();
        m.add(WORKER, &[("worker", "0")]);
        m.add(WORKER, &[("worker", "1")]);
        let out = m.render();
        assert_eq!(out.matches("# TYPE chat_connections gauge").count(), 1);
        assert_eq!(out.matches("# HELP chat_errors_total").count(), 1);
        assert!(
            out.contains("chat_connections{worker=\"0\"} 3\nchat_connections{worker=\"1\"} 3\n")
        );
        assert!(out.contains("chat_errors_total{worker=\"1\",code=\"bad_request\"} 1"));
        assert!(out.contains("chat_delivery_latency_seconds_bucket{worker=\"0\",le=\"0.001\"} 1"));
        assert!(out.contains("chat_delivery_latency_seconds_count{worker=\"1\"} 2"));
        // A family's samples stay together: both workers' histogram lines come before the
        // next family would.
        let first_bucket = out.find("_bucket{worker=\"1\"").unwrap();
        let errors = out.find("# HELP chat_errors_total").unwrap();
        assert!(errors < first_bucket);
    }

    #[test]
    fn several_labels_and_unlabelled_sources() {
        let mut m = Merged::default();
        m.add(
            "# TYPE up gauge\nup 1\n",
            &[("host", "10.0.0.1"), ("worker", "2")],
        );
        m.add(
            "# TYPE chatctl_reloads_total counter\nchatctl_reloads_total 4\n",
            &[],
        );
        let out = m.render();
        assert!(out.contains("up{host=\"10.0.0.1\",worker=\"2\"} 1"));
        assert!(out.contains("chatctl_reloads_total 4"));
    }

    #[test]
    fn junk_lines_are_dropped_and_label_values_escaped() {
        let mut m = Merged::default();
        m.add(
            "garbage line with spaces\n{bad} 1\nok_metric 1\n",
            &[("host", "a\"b")],
        );
        let out = m.render();
        assert_eq!(out, "ok_metric{host=\"a\\\"b\"} 1\n");
    }
}
