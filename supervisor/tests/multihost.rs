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
