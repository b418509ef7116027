//! The chaos suite (issue 3/5): ≥100 simulated users through HAProxy, a third of them on
//! long-polling, sending direct messages while workers, HAProxy and Redis are killed,
//! scaled, reloaded and restarted. Every acked message must reach its recipient, every client
//! must be back within 5 s of each fault, every message to a user online when it was acked
//! must arrive within 5 s, and nothing may leak. Bounded: about a minute each.
//! The figures it prints are recorded in docs/reliability.md.

use chat_testkit::*;
use std::time::{Duration, Instant};

const USERS: usize = 120;
const BACK_WITHIN: Duration = Duration::from_secs(5);
/// Longest delay from a `send message` ack to the first receipt, for online recipients.
const DELIVERED_WITHIN: Duration = Duration::from_secs(5);

fn kill(sig: i32, pid: u64) {
    signal(pid as u32, sig);
}

struct Faults<'a> {
    cluster: &'a Cluster,
    load: &'a Load,
    rows: Vec<String>,
    /// Phase names, index = [`Load::next_phase`] (0: before the first fault).
    phases: Vec<String>,
}

impl Faults<'_> {
    /// Runs `inject`, waits until the cluster has `workers` workers up and every user is
    /// logged in again, and checks that nobody was offline longer than 5 s.
    async fn fault(&mut self, name: &str, workers: usize, inject: impl FnOnce(&Cluster)) {
        let acked_before = self.load.acked_count();
        self.load.reset_outage();
        self.load.next_phase();
        self.phases.push(name.to_owned());
        let t = Instant::now();
        // Off the clients' threads: `chatctl scale` blocks for seconds, and clients frozen
        // meanwhile would count the freeze as delivery delay.
        blocking(|| inject(self.cluster));
        self.cluster
            .wait_status(name, |s| all_up(s, workers) && s["redis"]["up"] == true)
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

/// Fails when an acked message was not received within the settle time, saying whether it
/// came later (late) or not even 60 s after (lost).
async fn assert_nothing_lost(load: &Load, report: &chat_testkit::load::Report) {
    if report.lost.is_empty() {
        return;
    }
    let lost = load
        .still_missing_after(&report.lost, Duration::from_secs(60))
        .await;
    panic!(
        "acked but not received when the load settled: {:?}; still not received 60 s later: {lost:?}",
        report.lost
    );
}

fn worker_pid(s: &serde_json::Value, i: usize) -> u64 {
    s["workers"][i]["pid"].as_u64().expect("worker pid")
}

// Multi-thread: the 120 clients keep running while the test blocks on chatctl (see `fault`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_survive_worker_haproxy_and_redis_faults() {
    let c = Cluster::up(3);
    c.wait_status("3 workers", |s| all_up(s, 3)).await;
    let load = Load::start(&c.url(), USERS, Duration::from_millis(400));
    load.wait_all_online(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pids_at_start = Cluster::our_pids(&blocking(|| c.status()));

    let mut f = Faults {
        cluster: &c,
        load: &load,
        rows: Vec::new(),
        phases: vec!["before the faults".to_owned()],
    };
    f.fault("SIGKILL worker-1", 3, |c| {
        kill(libc::SIGKILL, worker_pid(&c.status(), 1))
    })
    .await;
    f.fault("SIGKILL worker-0 and worker-2 at once", 3, |c| {
        let s = c.status();
        kill(libc::SIGKILL, worker_pid(&s, 0));
        kill(libc::SIGKILL, worker_pid(&s, 2));
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
        kill(
            libc::SIGUSR2,
            c.status()["haproxy"]["pid"].as_u64().unwrap(),
        );
    })
    .await;
    f.fault("embedded Redis SIGTERM (restarted from its AOF)", 3, |c| {
        let s = c.status();
        let pid = s["redis"]["pid"].as_u64().unwrap();
        kill(libc::SIGTERM, pid);
        // Wait until the supervisor has restarted it under a new pid.
        wait_sync("redis restarted", Duration::from_secs(15), || {
            c.status()["redis"]["pid"].as_u64() != Some(pid)
        });
    })
    .await;

    let report = load.settle(Duration::from_secs(30)).await;
    println!("| fault | healed after | longest client outage | messages acked meanwhile |");
    println!("|---|---|---|---|");
    for row in &f.rows {
        println!("{row}");
    }
    // Delivery delay per phase (a phase runs from its fault to the next one).
    let delays = load.delays();
    println!("| phase | messages to online users | delay p50 | p99 | max | never received |");
    println!("|---|---|---|---|---|---|");
    for (name, d) in f.phases.iter().zip(&delays) {
        println!(
            "| {name} | {} | {} ms | {} ms | {} ms | {} |",
            d.count,
            d.p50.as_millis(),
            d.p99.as_millis(),
            d.max.as_millis(),
            d.never
        );
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
    assert_nothing_lost(&load, &report).await;
    for (name, d) in f.phases.iter().zip(&delays) {
        assert!(
            d.max <= DELIVERED_WITHIN,
            "{name}: a message to an online user took {:?} ({d:?})",
            d.max
        );
    }
    load.stop().await;

    // No leak: after down, none of the processes ever started is left.
    let mut pids = pids_at_start;
    pids.extend(Cluster::our_pids(&c.status()));
    c.ok(&["down"]);
    wait_pids_gone("after down", &pids, Duration::from_secs(20)).await;
}

/// An external Redis (no persistence) that vanishes for a few seconds and comes back empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_redis_vanishing_and_returning_empty() {
    let mut redis = Redis::start().await;
    let c = Cluster::up_with(2, &["--redis", &redis.url()]);
    let load = Load::start(&c.url(), 100, Duration::from_millis(300));
    load.wait_all_online(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Everything acked so far is delivered before the outage (an empty Redis keeps no inbox).
    let before = load.settle(Duration::from_secs(20)).await;
    assert_nothing_lost(&load, &before).await;
    load.resume_sending();
    let reconnects_before = before.reconnects;

    redis.kill();
    let went_down = Instant::now();
    c.wait_status("workers /health 503", |s| {
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

    redis.restart().await;
    let outage = went_down.elapsed();
    c.wait_status("workers healthy again", |s| {
        s["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["health"] == 200)
    })
    .await;
    // The workers put their live users back by themselves: no client had to reconnect.
    poll(
        "every user re-registered",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let online = redis.cli(&["ZCARD", "chat:online"]);
            std::future::ready(if online == "100" {
                Ok(())
            } else {
                Err(format!("only {online} users re-registered"))
            })
        },
    )
    .await;
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
    assert_nothing_lost(&load, &report).await;
    assert_eq!(
        report.reconnects, reconnects_before,
        "no client was disconnected"
    );
    load.stop().await;
    c.ok(&["down"]);
    drop(redis);
}
