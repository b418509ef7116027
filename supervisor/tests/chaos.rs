//! The chaos suite (issue 3/5): ≥100 simulated users through HAProxy, a third of them on
//! long-polling, sending direct messages while workers, HAProxy and Redis are killed,
//! scaled, reloaded and restarted. Every acked message must reach its recipient, every client
//! must be back within 5 s of each fault, and nothing may leak. Bounded: about a minute each.
//! The figures it prints are recorded in docs/reliability.md.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::driver::Load;
use support::*;

const USERS: usize = 120;
const BACK_WITHIN: Duration = Duration::from_secs(5);

fn kill(sig: &str, pid: u64) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

struct Faults<'a> {
    cluster: &'a Cluster,
    load: &'a Load,
    rows: Vec<String>,
}

impl Faults<'_> {
    /// Runs `inject`, waits until the cluster has `workers` workers up and every user is
    /// logged in again, and checks that nobody was offline longer than 5 s.
    async fn fault(&mut self, name: &str, workers: usize, inject: impl FnOnce(&Cluster)) {
        let acked_before = self.load.acked_count();
        self.load.reset_outage();
        let t = Instant::now();
        inject(self.cluster);
        wait_status(self.cluster, name, |s| {
            all_up(s, workers) && s["redis"]["up"] == true
        })
        .await;
        self.load.wait_all_online(Duration::from_secs(20)).await;
        // Let traffic flow on the healed cluster before the next fault.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let outage = self.load.longest_outage();
        self.rows.push(format!(
            "| {name} | {:.1} s | {} ms | {} |",
            t.elapsed().as_secs_f64(),
            outage.as_millis(),
            self.load.acked_count() - acked_before
        ));
        assert!(
            outage <= BACK_WITHIN,
            "{name}: a client was offline for {outage:?}"
        );
    }
}

fn worker_pid(s: &serde_json::Value, i: usize) -> u64 {
    s["workers"][i]["pid"].as_u64().expect("worker pid")
}

#[tokio::test]
async fn acked_messages_survive_worker_haproxy_and_redis_faults() {
    let c = Cluster::up(3);
    wait_status(&c, "3 workers", |s| all_up(s, 3)).await;
    let load = Load::start(&c.url(), USERS, Duration::from_millis(400));
    load.wait_all_online(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pids_at_start = Cluster::our_pids(&c.status());

    let mut f = Faults {
        cluster: &c,
        load: &load,
        rows: Vec::new(),
    };
    f.fault("SIGKILL worker-1", 3, |c| {
        kill("-9", worker_pid(&c.status(), 1))
    })
    .await;
    f.fault("SIGKILL worker-0 and worker-2 at once", 3, |c| {
        let s = c.status();
        kill("-9", worker_pid(&s, 0));
        kill("-9", worker_pid(&s, 2));
    })
    .await;
    f.fault("chatctl scale 5", 5, |c| {
        c.ok(&["scale", "5"]);
    })
    .await;
    f.fault("chatctl scale 2", 2, |c| {
        c.ok(&["scale", "2"]);
    })
    .await;
    f.fault("chatctl scale 3", 3, |c| {
        c.ok(&["scale", "3"]);
    })
    .await;
    f.fault("chatctl reload (rolling)", 3, |c| {
        c.ok(&["reload"]);
    })
    .await;
    f.fault("HAProxy reload (SIGUSR2 to the master)", 3, |c| {
        kill("-USR2", c.status()["haproxy"]["pid"].as_u64().unwrap());
    })
    .await;
    f.fault("embedded Redis SIGTERM (restarted from its AOF)", 3, |c| {
        let s = c.status();
        let pid = s["redis"]["pid"].as_u64().unwrap();
        kill("-TERM", pid);
        // Wait until the supervisor has restarted it under a new pid.
        let deadline = Instant::now() + Duration::from_secs(15);
        while c.status()["redis"]["pid"].as_u64() == Some(pid) {
            assert!(Instant::now() < deadline, "redis not restarted");
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await;

    let report = load.settle(Duration::from_secs(30)).await;
    println!("| fault | healed after | longest client outage | messages acked meanwhile |");
    println!("|---|---|---|---|");
    for row in &f.rows {
        println!("{row}");
    }
    println!(
        "acked {} received {} lost {} reconnects {} errors {:?}",
        report.acked,
        report.received_of_acked,
        report.lost.len(),
        report.reconnects,
        report.errors
    );
    assert!(
        report.acked > 1000,
        "enough traffic to mean something: {report:?}"
    );
    assert!(
        report.lost.is_empty(),
        "acked but never received: {:?}",
        report.lost
    );
    load.stop().await;

    // No leak: after down, none of the processes ever started is left.
    let mut pids = pids_at_start;
    pids.extend(Cluster::our_pids(&c.status()));
    c.ok(&["down"]);
    wait_pids_gone("after down", &pids, Duration::from_secs(20)).await;
}

/// An external Redis (no persistence) that vanishes for a few seconds and comes back empty.
#[tokio::test]
async fn external_redis_vanishing_and_returning_empty() {
    let rdir = tempfile::Builder::new()
        .prefix("rx")
        .tempdir_in("/tmp")
        .unwrap();
    let sock = rdir.path().join("r.sock");
    let start_redis = || {
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&sock)
            .arg("--dir")
            .arg(rdir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        let child = Reaped(child);
        wait_sync("redis to start", Duration::from_secs(10), || sock.exists());
        child
    };
    let redis = start_redis();
    let url = format!("redis+unix://{}", sock.display());
    let c = Cluster::up_with(2, &["--redis", &url]);
    let load = Load::start(&c.url(), 100, Duration::from_millis(300));
    load.wait_all_online(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Everything acked so far is delivered before the outage (an empty Redis keeps no inbox).
    let before = load.settle(Duration::from_secs(20)).await;
    assert!(before.lost.is_empty(), "{before:?}");
    load.resume_sending();
    let reconnects_before = before.reconnects;

    drop(redis);
    let _ = std::fs::remove_file(&sock);
    let went_down = Instant::now();
    wait_status(&c, "workers /health 503", |s| {
        s["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["health"] == 503)
    })
    .await;
    let acked_at_outage = load.acked_count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        load.acked_count(),
        acked_at_outage,
        "nothing is acked while Redis is gone"
    );
    assert!(
        load.error_count("unavailable") > 0,
        "sends answered `unavailable`"
    );

    let redis = start_redis();
    let outage = went_down.elapsed();
    wait_status(&c, "workers healthy again", |s| {
        s["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["health"] == 200)
    })
    .await;
    // The workers put their live users back by themselves: no client had to reconnect.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let online = c.redis_url_cli(&sock, &["ZCARD", "chat:online"]);
        if online == "100" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {online} users re-registered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let healed = went_down.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = load.settle(Duration::from_secs(30)).await;
    println!(
        "external redis: down {:.1} s, healed {:.1} s after the kill; acked {} lost {} unavailable answers {} reconnects {}",
        outage.as_secs_f64(),
        healed.as_secs_f64(),
        report.acked,
        report.lost.len(),
        load.error_count("unavailable"),
        report.reconnects - reconnects_before
    );
    assert!(report.acked > before.acked, "traffic flowed again");
    assert!(report.lost.is_empty(), "{:?}", report.lost);
    assert_eq!(
        report.reconnects, reconnects_before,
        "no client was disconnected"
    );
    load.stop().await;
    c.ok(&["down"]);
    drop(redis);
}
