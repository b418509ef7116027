//! Redis Cluster (SPEC §5, last paragraph): chatctl and its workers on a real 3-primary,
//! 3-replica cluster on loopback. Everything that works on one Redis works here (direct
//! messages over WebSocket and polling, rooms with history, `list users`, inbox redelivery,
//! service membership, `status` with the cluster's nodes), keys land on every primary, and a primary SIGKILLed
//! under load is replaced by its replica: service for its slots is back within 10 s, no
//! acked message is lost, and a worker whose own keys are on another shard answers
//! `/health` 200 throughout.

use chat_testkit::rediscluster::RedisCluster;
use chat_testkit::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USERS: usize = 120;

/// The cluster node id of the node on `port`.
fn node_id(port: u16) -> String {
    chat_testkit::redis::cli_output(std::process::Command::new("redis-cli").args([
        "-p",
        &port.to_string(),
        "CLUSTER",
        "MYID",
    ]))
}

/// Asks every worker's `/health` every 50 ms until `done`; returns how many answered 200
/// every time.
async fn workers_never_unhealthy(ports: Vec<u16>, done: Arc<AtomicBool>) -> usize {
    let mut unhealthy = vec![false; ports.len()];
    while !done.load(Ordering::Relaxed) {
        for (port, seen) in ports.iter().zip(unhealthy.iter_mut()) {
            *seen |= http_get(*port, "/health").await.0 != 200;
        }
        // The watch's pace, not a wait for a condition.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unhealthy.iter().filter(|seen| !**seen).count()
}

/// What the workers themselves logged (redis-rs's lines left out), for failure messages.
fn workers_own_lines(c: &Cluster) -> String {
    let mut out = String::new();
    for w in 0..2 {
        let path = c.path().join("logs").join(format!("worker-{w}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        out.push_str(&format!("--- {} ---\n", path.display()));
        for line in text
            .lines()
            .filter(|l| l.contains(" chat::") || l.contains(" chat_worker"))
        {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `user{i:03}`: the load driver's names.
fn load_user(i: usize) -> String {
    format!("user{i:03}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serves_everything_and_survives_a_primary_failover() {
    let mut redis = RedisCluster::start(3, 1);
    // --advertise: the service membership (the front door's server list) lives in the cluster.
    let c = Cluster::up_with(2, &["--redis", &redis.url(), "--advertise", "127.0.0.1"]);
    c.wait_status("2 workers up", |s| all_up(s, 2)).await;
    c.wait_status("both workers registered as members", |s| {
        s["members"].as_array().is_some_and(|m| m.len() == 2)
    })
    .await;

    // status lists the six nodes with their roles, all up.
    let status = c
        .wait_status("six cluster nodes up", |s| {
            let nodes = s["redis"]["nodes"].as_array().cloned().unwrap_or_default();
            nodes.len() == 6 && nodes.iter().all(|n| n["up"] == true)
        })
        .await;
    let nodes = status["redis"]["nodes"].as_array().unwrap();
    let primaries = nodes.iter().filter(|n| n["role"] == "primary").count();
    assert_eq!(primaries, 3, "{nodes:?}");
    let text = c.ok(&["status"]);
    assert!(text.contains("replica"), "{text}");

    // The protocol on a cluster: a room with history, list users, inbox redelivery.
    let url = c.url();
    let (alice, _) = login(&url, "alice").await;
    assert_eq!(
        ack_code(&alice, "join room", json!({"room": "lobby"})).await,
        "ok"
    );
    let room_ack = alice
        .emit_ack(
            "room message",
            json!({"room": "lobby", "message": "hello room"}),
        )
        .await
        .unwrap();
    assert_eq!(room_ack["ok"], true, "{room_ack}");
    let (bob, _) = login(&url, "bob").await;
    let joined = bob
        .emit_ack("join room", json!({"room": "lobby"}))
        .await
        .unwrap();
    assert_eq!(joined["history"][0]["message"], "hello room", "{joined}");
    send_ok(&alice, "carol", "waits in the inbox").await;
    let (_carol, carol_ack) = login(&url, "carol").await;
    assert_eq!(carol_ack["pending"], 1, "{carol_ack}");

    // ≥ 100 users over WebSocket and polling (every third), all sending.
    let load = Load::start(&url, USERS, Duration::from_millis(300));
    load.wait_all_online(Duration::from_secs(60)).await;
    let listed = bob.emit_ack("list users", json!({})).await.unwrap();
    let names: Vec<&str> = listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u.as_str())
        .collect();
    assert!(names.len() >= USERS, "{} users listed", names.len());
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted: {names:?}");
    wait_until(
        "traffic before the failover",
        Duration::from_secs(30),
        || async { load.acked_count() > 300 },
    )
    .await;

    // Keys of every kind landed on every primary, and each worker subscribed to its channel
    // on one of them.
    let sizes = blocking(|| redis.dbsize_per_primary());
    assert!(
        sizes.iter().all(|(_, n)| *n > 0),
        "keys per primary: {sizes:?}"
    );

    // The victim primary: one that every worker's heartbeat touches (the shard of the
    // service's worker set, or of a worker's own keys) while some worker's own keys live
    // on another shard. That worker must stay in HAProxy throughout: one shard failing over
    // used to take every worker out at once. A probe user whose inbox is on the victim
    // sends to see when its slots serve again.
    let service_shard = redis.primary_for_key("chat:workers");
    let instances = chat_testkit::rediscluster::cli(service_shard, &["SMEMBERS", "chat:workers"]);
    let own_shards: Vec<u16> = instances
        .lines()
        .map(|id| redis.primary_for_key(&format!("chat:{{w:{id}}}:alive")))
        .collect();
    assert_eq!(own_shards.len(), 2, "instances: {instances}");
    let victim_port = std::iter::once(service_shard)
        .chain(own_shards.iter().copied())
        .find(|v| own_shards.iter().any(|own| own != v))
        .unwrap_or(service_shard);
    // When the worker set and both workers' keys share one shard (1 start in 9, instance ids
    // are random), no worker can stay up and the check below asks for none.
    let workers_to_stay_up = own_shards.iter().filter(|own| **own != victim_port).count();
    let victim_user = (0..USERS)
        .map(load_user)
        .find(|u| redis.primary_for_key(&format!("chat:{{u:{u}}}:inbox")) == victim_port)
        .expect("some load user's inbox on every primary");
    let worker_ports: Vec<u16> = c.status()["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w["port"].as_u64().and_then(|p| u16::try_from(p).ok()))
        .collect();
    let watch_done = Arc::new(AtomicBool::new(false));
    let health_watch = tokio::spawn(workers_never_unhealthy(worker_ports, watch_done.clone()));
    let (probe, _) = login(&url, "probe").await;
    assert_eq!(
        ack_code(
            &probe,
            "send message",
            json!({"username": victim_user, "message": "before"})
        )
        .await,
        "ok"
    );

    println!("kill at {} ms", chat::store::now_ms());
    let killed = Instant::now();
    blocking(|| redis.kill(victim_port));
    // Its replica takes over; the dead node comes back as a replica (what a process manager
    // does), which `min_replicas_acked = 1` needs before its shard accepts sends again.
    let promoted = blocking(|| redis.wait_promoted(victim_port, Duration::from_secs(15)));
    let promoted_after = killed.elapsed();
    blocking(|| redis.restart(victim_port));
    let rejoined_after = killed.elapsed();
    let mut back = None;
    while killed.elapsed() < Duration::from_secs(20) {
        let code = ack_code(
            &probe,
            "send message",
            json!({"username": victim_user, "message": "after"}),
        )
        .await;
        if code == "ok" {
            back = Some(killed.elapsed());
            break;
        }
        assert_eq!(
            code, "unavailable",
            "only unavailable while the shard fails over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(back) = back else {
        panic!(
            "sends to the failed shard's users never worked again; nodes:\n{}\n{}",
            blocking(|| chat_testkit::rediscluster::cli(promoted, &["CLUSTER", "NODES"])),
            c.log_tails()
        );
    };
    assert!(
        back <= Duration::from_secs(10),
        "service for the shard's slots back after {back:?}"
    );
    watch_done.store(true, Ordering::Relaxed);
    let stayed_up = health_watch.await.expect("the health watch");
    assert!(
        stayed_up >= workers_to_stay_up,
        "{stayed_up} workers answered /health 200 throughout the failover; {workers_to_stay_up} \
         have their own keys off the failed shard and must have (own shards {own_shards:?}, \
         victim {victim_port}, the worker set on {service_shard})\n{}",
        workers_own_lines(&c)
    );

    // A slot move under load: 1,000 slots (with their keys, by MIGRATE) from one primary to
    // another. Clients' calls follow ASK during the move and MOVED after it.
    println!("reshard from {} ms", chat::store::now_ms());
    let primaries = blocking(|| redis.primaries());
    let (from, to) = (primaries[0], primaries[1]);
    let reshard = blocking(|| {
        std::process::Command::new("timeout")
            .args([
                "60",
                "redis-cli",
                "--cluster",
                "reshard",
                &format!("127.0.0.1:{from}"),
            ])
            .args([
                "--cluster-from",
                &node_id(from),
                "--cluster-to",
                &node_id(to),
            ])
            .args(["--cluster-slots", "1000", "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
    });
    assert!(reshard.success(), "redis-cli --cluster reshard");
    println!("reshard done at {} ms", chat::store::now_ms());

    // Keep the load running a little on the new layout, then count.
    let acked_after = load.acked_count();
    wait_until(
        "traffic after the failover",
        Duration::from_secs(30),
        || async { load.acked_count() > acked_after + 200 },
    )
    .await;
    let report = load.settle(Duration::from_secs(40)).await;
    println!(
        "redis cluster failover: primary {victim_port} SIGKILLed, replica {promoted} promoted after \
         {:.1} s, the dead node back as a replica after {:.1} s; sends to its slots back after {:.1} s; \
         acked {} lost {} unavailable answers {} reconnects {}; workers healthy throughout {stayed_up} \
         of 2 (own shards {own_shards:?}, the worker set on {service_shard})",
        promoted_after.as_secs_f64(),
        rejoined_after.as_secs_f64(),
        back.as_secs_f64(),
        report.acked,
        report.lost.len(),
        load.error_count("unavailable"),
        report.reconnects
    );
    if !report.lost.is_empty() {
        let (user, id) = &report.lost[0];
        let inbox = blocking(|| {
            let port = redis.primary_for_key(&format!("chat:{{u:{user}}}:inbox"));
            chat_testkit::rediscluster::cli(
                port,
                &["XRANGE", &format!("chat:{{u:{user}}}:inbox"), id, id],
            )
        });
        panic!(
            "acked but lost: {:?}\nthe first one in its inbox: {inbox:?}\n{}",
            report.lost,
            c.log_tails()
        );
    }
    assert!(report.acked >= 500, "enough traffic: {}", report.acked);

    // status shows the new primary.
    c.wait_status("the promoted replica listed as primary", |s| {
        s["redis"]["nodes"].as_array().is_some_and(|ns| {
            ns.iter()
                .any(|n| n["addr"] == format!("127.0.0.1:{promoted}") && n["role"] == "primary")
        })
    })
    .await;
    load.stop().await;
    c.ok(&["down"]);
}
