//! Beyond one machine (SPEC §5): two chatctl "hosts" (separate state dirs, workers advertised
//! on 127.0.0.1 and 127.0.0.2 — both loopback) share one Redis; host A runs the front door,
//! host B only workers (`--haproxy off`). Users on both hosts message each other; when host B
//! dies (supervisor and workers SIGKILLed), the front door drops its servers, its users
//! reconnect to host A and get their pending messages.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::driver::Load;
use support::*;

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
    let rport = free_port_range(1);
    let rdir = tempfile::tempdir().unwrap();
    let _redis = Reaped(
        Command::new("redis-server")
            .args(["--port", &rport.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(rdir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    let url = format!("redis://127.0.0.1:{rport}");
    wait_sync("redis to start", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", rport)).is_ok()
    });

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
    let s = wait_status(&a, "front door with both hosts", |s| {
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
    let b_users = wait_status(&b, "users on host B", |s| {
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
    let _ = Command::new("kill")
        .args(["-9", &b_worker.to_string(), &b_sup.to_string()])
        .status();
    load.reset_outage();
    let dropped = Instant::now();
    wait_status(&a, "front door without host B", |s| {
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
