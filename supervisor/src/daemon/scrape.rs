//! The cluster's one Prometheus endpoint (`--metrics ADDR`, SPEC §2): on each scrape, every
//! local worker's `/metrics` labelled `worker="N"` (plus `host` with `--advertise`), HAProxy's
//! own exporter (`haproxy_…`, from a private Unix socket) and chatctl's `chatctl_…` series,
//! merged by [`crate::metrics::Merged`]. It is never served on the public port.

use super::{http, Sup};
use crate::metrics::Merged;
use bytes::Bytes;
use chat::control::{StatusReport, WorkerState};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::fmt::Write;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// chatctl's own series, from the status report the scrape also uses.
pub fn chatctl_series(report: &StatusReport) -> String {
    let mut out = String::with_capacity(2048);
    let mut family = |name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        "chatctl_child_restarts_total",
        "counter",
        "Unexpected exits of a child that chatctl restarted.",
    );
    let mut lines = String::new();
    for w in &report.workers {
        let _ = writeln!(
            lines,
            "chatctl_child_restarts_total{{child=\"worker-{}\"}} {}",
            w.id, w.restarts
        );
    }
    out.push_str(&lines);
    let _ = writeln!(
        out,
        "# HELP chatctl_workers Local workers by state.\n# TYPE chatctl_workers gauge"
    );
    for state in [
        WorkerState::Starting,
        WorkerState::Up,
        WorkerState::Draining,
        WorkerState::Restarting,
        WorkerState::Failed,
    ] {
        let n = report.workers.iter().filter(|w| w.state == state).count();
        let label = serde_json::to_value(state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(out, "chatctl_workers{{state=\"{label}\"}} {n}");
    }
    let generation = report.haproxy.generation;
    let _ = writeln!(
        out,
        "# HELP chatctl_haproxy_reloads_total HAProxy reloads with a new configuration.\n\
         # TYPE chatctl_haproxy_reloads_total counter\n\
         chatctl_haproxy_reloads_total {}\n\
         # HELP chatctl_haproxy_config_generation The haproxy.cfg generation in force.\n\
         # TYPE chatctl_haproxy_config_generation gauge\n\
         chatctl_haproxy_config_generation {generation}",
        generation.saturating_sub(1)
    );
    let _ = writeln!(
        out,
        "# HELP chatctl_redis_up Whether Redis answered PING.\n\
         # TYPE chatctl_redis_up gauge\n\
         chatctl_redis_up {}",
        u8::from(report.redis.up)
    );
    if let Some(ms) = report.redis.rtt_ms {
        let _ = writeln!(
            out,
            "# HELP chatctl_redis_rtt_seconds Round trip of the last PING to Redis.\n\
             # TYPE chatctl_redis_rtt_seconds gauge\n\
             chatctl_redis_rtt_seconds {}",
            ms / 1000.0
        );
    }
    out
}

impl super::Supervisor {
    /// One scrape: the merged exposition of the whole local cluster.
    pub(super) async fn cluster_metrics(self: &Sup) -> String {
        let report = self.status().await;
        let host = self.settings.advertise.clone();
        let mut merged = Merged::default();
        for w in report.workers.iter().filter(|w| w.pid.is_some()) {
            let Some((200, body)) = http::get(self.worker_host(), w.port, "/metrics").await else {
                continue;
            };
            let id = w.id.to_string();
            match &host {
                Some(h) => merged.add(&body, &[("host", h.as_str()), ("worker", id.as_str())]),
                None => merged.add(&body, &[("worker", id.as_str())]),
            }
        }
        if let Some(body) =
            http::get_unix(&crate::haproxy::metrics_socket(&self.state_dir), "/metrics").await
        {
            match &host {
                Some(h) => merged.add(&body, &[("host", h.as_str())]),
                None => merged.add(&body, &[]),
            }
        }
        merged.add(&chatctl_series(&report), &[]);
        merged.render()
    }
}

/// Binds the metrics address before anything starts. An address the operator named must be
/// free (`up` fails, saying so); the default only warns, so a second cluster on one host
/// still starts.
pub async fn bind_metrics(
    listen: Option<&crate::settings::MetricsListen>,
) -> anyhow::Result<Option<TcpListener>> {
    let Some(m) = listen else {
        return Ok(None);
    };
    match TcpListener::bind(m.addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if m.explicit => anyhow::bail!(
            "cannot serve metrics on {} ({e}): choose another with --metrics ADDR, or --metrics off",
            m.addr
        ),
        Err(e) => {
            tracing::warn!(
                "metrics endpoint off: cannot listen on {} ({e}); choose an address with --metrics ADDR",
                m.addr
            );
            Ok(None)
        }
    }
}

/// Serves `GET /metrics` on `listener` until `stop` resolves; anything else is 404.
pub async fn serve(sup: Sup, listener: TcpListener, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("metrics accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let sup = sup.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let sup = sup.clone();
                async move {
                    let response =
                        if req.method() == hyper::Method::GET && req.uri().path() == "/metrics" {
                            hyper::Response::builder()
                                .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                                .body(Full::new(Bytes::from(sup.cluster_metrics().await)))
                        } else {
                            hyper::Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::from_static(b"only /metrics here\n")))
                        };
                    response
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("metrics connection: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat::control::{HaproxyStatus, RedisStatus, SupervisorStatus, WorkerStatus};

    fn worker(id: u32, state: WorkerState, restarts: u32) -> WorkerStatus {
        WorkerStatus {
            id,
            pid: Some(100 + id),
            port: 30001 + id as u16,
            core: Some(id),
            state,
            restarts,
            connections: Some(1),
            users: Some(1),
            cpu_percent: None,
            rss_bytes: None,
            uptime_secs: None,
            health: 200,
        }
    }

    #[test]
    fn chatctl_series_count_restarts_states_reloads_and_redis() {
        let report = StatusReport {
            supervisor: SupervisorStatus {
                pid: 1,
                state_dir: "/state".into(),
            },
            workers: vec![
                worker(0, WorkerState::Up, 2),
                worker(1, WorkerState::Restarting, 0),
            ],
            haproxy: HaproxyStatus {
                pid: Some(7),
                port: 8080,
                generation: 3,
                servers: vec![],
            },
            redis: RedisStatus {
                url: "redis://127.0.0.1:6379".into(),
                embedded: false,
                pid: None,
                up: true,
                rtt_ms: Some(0.5),
                nodes: Vec::new(),
            },
            members: vec![],
            machine: None,
        };
        let out = chatctl_series(&report);
        assert!(out.contains("chatctl_child_restarts_total{child=\"worker-0\"} 2"));
        assert!(out.contains("chatctl_workers{state=\"up\"} 1"));
        assert!(out.contains("chatctl_workers{state=\"restarting\"} 1"));
        assert!(out.contains("chatctl_workers{state=\"failed\"} 0"));
        assert!(out.contains("chatctl_haproxy_reloads_total 2"));
        assert!(out.contains("chatctl_redis_up 1"));
        assert!(out.contains("chatctl_redis_rtt_seconds 0.0005"));
    }
}
