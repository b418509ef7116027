//! Beyond one machine (SPEC §5): two chatctl "hosts" (separate state dirs, workers advertised
//! on 127.0.0.1 and 127.0.0.2 — both loopback) share one Redis; host A runs the front door,
//! host B only workers (`--haproxy off`). Users on both hosts message each other; when host B
//! dies (supervisor and workers SIGKILLed), the front door drops its servers, its users
//! reconnect to host A and get their pending messages.

use chat_testkit::*;
use std::time::{Duration, Instant};

fn members(s: &serde_json::Value) -> Vec<String> {
    s["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| format!("{}:{}", m["host"].as_str().unwrap_or(""), m["port"]))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn two_hosts_one_front_door_and_a_host_that_dies() {
    // On a loopback port, as a Redis of its own host would be.
    let redis = Redis::start_tcp(free_port_range(1), &[]).await;
    let url = redis.url();

    let a = Cluster::up_with(1, &["--redis", &url, "--advertise", "127.0.0.1"]);
    let b = Cluster::up_with(
        1,
        &[
            "--redis",
            &url,
            "--advertise",
            "127.0.0.2",
            "--haproxy",
            "off",
        ],
    );
    let b_status = b.status();
    assert!(
        b_status["haproxy"]["pid"].is_null(),
        "host B runs no HAProxy"
    );
    let b_port = b_status["workers"][0]["port"].as_u64().unwrap();
    // The front door lists both hosts' workers.
    let s = a
        .wait_status("front door with both hosts", |s| {
            let servers = s["haproxy"]["servers"].as_array().unwrap();
            members(s).len() == 2
                && servers.len() == 2
                && servers
                    .iter()
                    .all(|v| v["state"].as_str().unwrap_or("").starts_with("UP"))
        })
        .await;
    assert!(
        members(&s).contains(&format!("127.0.0.2:{b_port}")),
        "{s:#}"
    );
    let table = a.ok(&["status"]);
    assert!(table.contains("service  2 workers"), "{table}");

    // Users spread over both hosts and message each other.
    let load = Load::start(&a.url(), 40, Duration::from_millis(300));
    load.wait_all_online(Duration::from_secs(30)).await;
    let b_users = b
        .wait_status("users on host B", |s| {
            s["workers"][0]["users"].as_u64().unwrap_or(0) > 0
        })
        .await["workers"][0]["users"]
        .as_u64()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(load.acked_count() > 100);

    // Host B dies: its worker and its supervisor, SIGKILLed.
    let b_sup = b_status["supervisor"]["pid"].as_u64().unwrap();
    let b_worker = b_status["workers"][0]["pid"].as_u64().unwrap();
    signal(b_worker as u32, libc::SIGKILL);
    signal(b_sup as u32, libc::SIGKILL);
    load.reset_outage();
    let dropped = Instant::now();
    a.wait_status("front door without host B", |s| {
        members(s).len() == 1 && s["haproxy"]["servers"].as_array().unwrap().len() == 1
    })
    .await;
    let dropped_after = dropped.elapsed();
    load.wait_all_online(Duration::from_secs(15)).await;
    let outage = load.longest_outage();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.settle(Duration::from_secs(30)).await;
    println!(
        "two hosts: {b_users} users on host B; its servers left the front door {:.1} s after it died; \
         longest client outage {} ms; acked {} lost {}",
        dropped_after.as_secs_f64(),
        outage.as_millis(),
        report.acked,
        report.lost.len()
    );
    assert!(report.lost.is_empty(), "{:?}", report.lost);
    assert!(outage <= Duration::from_secs(10), "{outage:?}");
    load.stop().await;
}

/// A member record written straight into the shared Redis by someone who can write there,
/// whose host holds a newline and a `listen` section: the front door skips it with a warning
/// and haproxy.cfg stays as it was (issue 10).
#[tokio::test]
async fn a_forged_member_never_reaches_haproxy_cfg() {
    let redis = Redis::start_tcp(free_port_range(1), &[]).await;
    let a = Cluster::up_with(1, &["--redis", &redis.url(), "--advertise", "127.0.0.1"]);
    a.wait_status("the front door with its own worker UP", |s| {
        let servers = s["haproxy"]["servers"].as_array().unwrap();
        members(s).len() == 1
            && servers.len() == 1
            && servers[0]["state"].as_str().unwrap_or("").starts_with("UP")
    })
    .await;
    let cfg_path = a.path().join("haproxy.cfg");
    let before = std::fs::read_to_string(&cfg_path).unwrap();

    let evil_port = free_port_range(1);
    let host =
        format!("127.0.0.9\nlisten evil\n    bind 127.0.0.1:{evil_port}\n    server x 127.0.0.1");
    let key = format!("{host}:30001");
    let info = serde_json::json!({ "host": host, "port": 30001, "worker": 0, "pid": null });
    // Scored far in the future: it never expires on its own.
    redis.cli(&["ZADD", "chat:{members}", "99999999999999", &key]);
    redis.cli(&["HSET", "chat:{members}:info", &key, &info.to_string()]);
    assert_eq!(redis.cli(&["ZCARD", "chat:{members}"]).trim(), "2");

    let log = a.path().join("logs").join("chatctl.log");
    wait_until(
        "a warning about the forged member",
        Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            std::future::ready(
                text.contains("skipping service member") && text.contains("listen evil"),
            )
        },
    )
    .await;
    // The refresh that warned is the one that would have reloaded; give a later one its turn.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = std::fs::read_to_string(&cfg_path).unwrap();
    assert_eq!(before, after, "haproxy.cfg changed");
    assert!(!after.contains("listen evil"));
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", evil_port))
            .await
            .is_err(),
        "the forged listen section is serving"
    );
    assert_eq!(members(&a.status()).len(), 1);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("skipping service member").count(),
        1,
        "one warning, not one a second:\n{text}"
    );
}
