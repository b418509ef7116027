//! Redis high availability (SPEC §5): a primary, two replicas and three Sentinels; the
//! primary is SIGKILLed while 100 users send. Workers follow the failover by themselves, every
//! acked message arrives (it was on a replica before its ack: `WAIT`), and the service is back
//! within 10 s.

use chat_testkit::redis::cli_output;
use chat_testkit::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// redis-cli against 127.0.0.1:`port` (a Sentinel's).
fn cli(port: u16, args: &[&str]) -> String {
    cli_output(
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args),
    )
}

fn sentinel(dir: &Path, port: u16, primary: u16) -> Reaped {
    let conf = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\n\
             sentinel monitor mymaster 127.0.0.1 {primary} 2\n\
             sentinel down-after-milliseconds mymaster 1000\n\
             sentinel failover-timeout mymaster 5000\n\
             sentinel parallel-syncs mymaster 1\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let child = Reaped::spawn(Command::new("redis-server").arg(&conf).arg("--sentinel"));
    wait_sync("sentinel up", Duration::from_secs(10), || {
        cli(port, &["PING"]) == "PONG"
    });
    child
}

#[tokio::test]
async fn primary_killed_under_load_loses_no_acked_message() {
    let dir = tempfile::Builder::new()
        .prefix("sen")
        .tempdir_in("/tmp")
        .unwrap();
    let base = free_port_range(6);
    let (p0, p1, p2) = (base, base + 1, base + 2);
    let sentinels = [base + 3, base + 4, base + 5];
    let p0_s = p0.to_string();
    let replica = ["--replicaof", "127.0.0.1", &p0_s];
    let mut primary = Some(Redis::start_tcp(p0, &[]).await);
    let _r1 = Redis::start_tcp(p1, &replica).await;
    let _r2 = Redis::start_tcp(p2, &replica).await;
    wait_sync("both replicas attached", Duration::from_secs(15), || {
        cli(p0, &["INFO", "replication"]).contains("connected_slaves:2")
    });
    let _s: Vec<Reaped> = sentinels
        .iter()
        .map(|s| sentinel(dir.path(), *s, p0))
        .collect();
    wait_sync(
        "sentinels to see each other",
        Duration::from_secs(15),
        || {
            cli(sentinels[0], &["SENTINEL", "master", "mymaster"])
                .contains("num-other-sentinels\n2")
        },
    );

    let url = format!(
        "redis+sentinel://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}/mymaster",
        sentinels[0], sentinels[1], sentinels[2]
    );
    let c = Cluster::up_with(2, &["--redis", &url]);
    c.wait_status("2 workers up", |s| all_up(s, 2)).await;
    let load = Load::start(&c.url(), 100, Duration::from_millis(300));
    load.wait_all_online(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(load.acked_count() > 200, "traffic before the failover");

    // SIGKILL the primary; wait until sends are acked again.
    let acked_at_kill = load.acked_count();
    let killed = Instant::now();
    drop(primary.take());
    wait_until(
        "service back within 10 s of the primary's death",
        Duration::from_secs(10),
        || async { load.acked_count() >= acked_at_kill + 50 },
    )
    .await;
    let back_after = killed.elapsed();
    let new_primary = cli(
        sentinels[0],
        &["SENTINEL", "get-master-addr-by-name", "mymaster"],
    );
    assert!(
        !new_primary.ends_with(&p0.to_string()),
        "failed over: {new_primary}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let report = load.settle(Duration::from_secs(30)).await;
    println!(
        "sentinel failover: service back {:.1} s after SIGKILL of the primary; acked {} lost {} unavailable answers {} reconnects {}",
        back_after.as_secs_f64(),
        report.acked,
        report.lost.len(),
        load.error_count("unavailable"),
        report.reconnects
    );
    assert!(report.lost.is_empty(), "acked but lost: {:?}", report.lost);
    load.stop().await;
    c.ok(&["down"]);
}
