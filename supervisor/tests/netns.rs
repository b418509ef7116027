//! Two hosts as Linux network namespaces (SPEC §5): `chat-a` (10.231.0.1: Redis, a front door
//! and a worker) and `chat-b` (10.231.0.2: a worker only, `--haproxy off`), joined by a veth
//! pair this test creates and removes. Traffic stays between those two namespaces' own
//! addresses. Users on both hosts message each other through the front door; when host B dies,
//! the front door drops it and its users get their pending messages on host A.
//! Skipped with a message when namespaces cannot be created (not root).

use chat_testkit::{signal, wait_sync, Cluster, Load, Reaped};
use std::process::{Command, Stdio};
use std::time::Duration;

const ADDR_A: &str = "10.231.0.1";
const ADDR_B: &str = "10.231.0.2";

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Two namespaces and the veth pair between them; removed on drop.
struct Hosts {
    a: String,
    b: String,
}

impl Hosts {
    fn create() -> Option<Hosts> {
        let tag = std::process::id() % 100_000;
        let hosts = Hosts {
            a: format!("chat-a-{tag}"),
            b: format!("chat-b-{tag}"),
        };
        let (va, vb) = (format!("cva{tag}"), format!("cvb{tag}"));
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &hosts.a],
            vec!["netns", "add", &hosts.b],
            vec!["link", "add", &va, "type", "veth", "peer", "name", &vb],
            vec!["link", "set", &va, "netns", &hosts.a],
            vec!["link", "set", &vb, "netns", &hosts.b],
            vec!["-n", &hosts.a, "addr", "add", "10.231.0.1/24", "dev", &va],
            vec!["-n", &hosts.b, "addr", "add", "10.231.0.2/24", "dev", &vb],
            vec!["-n", &hosts.a, "link", "set", &va, "up"],
            vec!["-n", &hosts.b, "link", "set", &vb, "up"],
            vec!["-n", &hosts.a, "link", "set", "lo", "up"],
            vec!["-n", &hosts.b, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if !ip(&step) {
                // Partial set-up is removed by Drop.
                drop(hosts);
                return None;
            }
        }
        Some(hosts)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of the veth pair, and so the pair.
        ip(&["netns", "del", &self.a]);
        ip(&["netns", "del", &self.b]);
    }
}

/// Runs `f` on a thread that has entered namespace `ns` (its sockets live there).
fn in_namespace<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("namespace file");
        use std::os::fd::AsRawFd;
        // SAFETY: setns(2) on this thread only, with a namespace fd we opened.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns into {path}");
        f()
    })
    .join()
    .expect("namespace thread")
}

#[test]
fn two_namespaced_hosts_one_front_door_and_a_host_that_dies() {
    let Some(hosts) = Hosts::create() else {
        eprintln!("SKIPPED: cannot create network namespaces here (needs root and `ip netns`)");
        return;
    };
    // Host A's Redis, in its namespace: not reachable from here, so the kit's `Redis` (which
    // waits for PING on loopback) does not fit.
    let redis = Reaped::spawn(
        Command::new("ip")
            .args(["netns", "exec", &hosts.a, "redis-server"])
            .args([
                "--bind",
                ADDR_A,
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            // Reached from the other namespace: an isolated test network, no password needed.
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir()),
    );
    let url = format!("redis://{ADDR_A}:6379");
    let a = Cluster::up_in(
        Some(&hosts.a),
        8080,
        &[
            "--workers",
            "1",
            "--port",
            "8080",
            "--base-port",
            "30001",
            "--bind",
            ADDR_A,
        ]
        .iter()
        .chain(&["--advertise", ADDR_A, "--redis", url.as_str()])
        .copied()
        .collect::<Vec<_>>(),
    );
    let b = Cluster::up_in(
        Some(&hosts.b),
        0,
        &[
            "--workers",
            "1",
            "--base-port",
            "30001",
            "--advertise",
            ADDR_B,
            "--haproxy",
            "off",
            "--redis",
            &url,
        ],
    );
    let members = |s: &serde_json::Value| s["members"].as_array().map(|m| m.len()).unwrap_or(0);
    wait_sync(
        "the front door to carry both hosts",
        Duration::from_secs(20),
        || {
            let s = a.try_status().unwrap_or_default();
            members(&s) == 2
                && s["haproxy"]["servers"]
                    .as_array()
                    .is_some_and(|v| v.len() == 2 && v.iter().all(|x| x["state"] == "UP"))
        },
    );
    let b_status = b.status();
    let b_pids = [
        b_status["supervisor"]["pid"].as_u64().unwrap(),
        b_status["workers"][0]["pid"].as_u64().unwrap(),
    ];

    // The clients live in host A's namespace and reach the front door at 10.231.0.1:8080.
    let report = in_namespace(&hosts.a, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let load = Load::start(
                &format!("http://{ADDR_A}:8080"),
                40,
                Duration::from_millis(300),
            );
            load.wait_all_online(Duration::from_secs(30)).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let before_death = load.acked_count();
            // Host B dies: its worker and supervisor SIGKILLed.
            signal(b_pids[1] as u32, libc::SIGKILL);
            signal(b_pids[0] as u32, libc::SIGKILL);
            load.reset_outage();
            tokio::time::sleep(Duration::from_secs(8)).await;
            load.wait_all_online(Duration::from_secs(15)).await;
            let outage = load.longest_outage();
            tokio::time::sleep(Duration::from_secs(2)).await;
            let r = load.settle(Duration::from_secs(30)).await;
            load.stop().await;
            (before_death, outage, r)
        })
    });
    let (before_death, outage, r) = report;
    let s = a.try_status().unwrap_or_default();
    println!(
        "namespaces: acked before host B died {before_death}; longest outage {} ms; acked {} lost {}; members now {}",
        outage.as_millis(),
        r.acked,
        r.lost.len(),
        members(&s)
    );
    assert!(before_death > 50, "traffic crossed the hosts");
    assert_eq!(members(&s), 1, "host B left the service: {s:#}");
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    drop(b);
    drop(a);
    drop(redis);
    drop(hosts);
}
