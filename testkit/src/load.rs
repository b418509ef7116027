//! The chaos load driver: simulated users that behave like real apps. Each user connects
//! through HAProxy (WebSocket or long-polling), logs in, acknowledges every `new message`,
//! sends direct messages to random users, and on any disconnect reconnects and logs in again
//! by itself (its pending messages then arrive again). The driver records every `send
//! message` acked `ok` and every id received, so a test can prove that nothing acked was lost,
//! and when each was acked and first received, so it can bound how late messages arrive.

use chat_client::Client;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    Polling,
}

#[derive(Default)]
struct Shared {
    /// (recipient, id) of every message whose `send message` was acked ok.
    acked: HashSet<(String, String)>,
    /// (recipient, id) of every message a recipient's client received.
    received: HashSet<(String, String)>,
    /// When each acked message was acked, in which phase, and whether its recipient was
    /// logged in then.
    acked_at: HashMap<(String, String), Acked>,
    /// When each message was first received.
    received_at: HashMap<(String, String), Instant>,
    /// The phase new acks belong to ([`Load::next_phase`]).
    phase: usize,
    /// Longest time any user was without a logged-in connection, per fault window.
    longest_outage: Duration,
    /// Users currently logged in.
    online: HashSet<usize>,
    /// Error codes seen in `send message` acks.
    errors: HashMap<String, u64>,
    reconnects: u64,
    /// `send message`s written and not answered yet. Taken under this lock together with
    /// the check of `sending`, so once [`Load::settle`] has paused sending and seen none,
    /// no ack can come after its report.
    sends_in_flight: usize,
}

struct Acked {
    at: Instant,
    phase: usize,
    recipient_online: bool,
}

/// Delivery delay (acked → first received) of the messages of one phase whose recipient was
/// logged in when the send was acked.
#[derive(Debug, Clone, Default)]
pub struct Delays {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Acked for an online recipient, never received (counted apart from the figures).
    pub never: usize,
}

impl Delays {
    fn of(mut delays: Vec<Duration>, never: usize) -> Delays {
        delays.sort();
        let at = |q: f64| {
            delays
                .get(((delays.len() as f64 * q).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or_default()
        };
        Delays {
            count: delays.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: delays.last().copied().unwrap_or_default(),
            never,
        }
    }
}

pub struct Load {
    shared: Arc<Mutex<Shared>>,
    sending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    sent_ok: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
    users: usize,
}

/// What a run proved.
#[derive(Debug)]
pub struct Report {
    pub acked: usize,
    pub received_of_acked: usize,
    pub lost: Vec<(String, String)>,
    pub longest_outage: Duration,
    pub errors: HashMap<String, u64>,
    pub reconnects: u64,
}

fn user_name(i: usize) -> String {
    format!("user{i:03}")
}

impl Load {
    /// Starts `users` users against `url`; every third one uses long-polling.
    pub fn start(url: &str, users: usize, send_every: Duration) -> Load {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let sending = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let sent_ok = Arc::new(AtomicU64::new(0));
        let tasks = (0..users)
            .map(|i| {
                let transport = if i % 3 == 0 {
                    Transport::Polling
                } else {
                    Transport::WebSocket
                };
                tokio::spawn(user_loop(
                    url.to_owned(),
                    i,
                    users,
                    transport,
                    send_every,
                    shared.clone(),
                    sending.clone(),
                    stop.clone(),
                    sent_ok.clone(),
                ))
            })
            .collect();
        Load {
            shared,
            sending,
            stop,
            sent_ok,
            tasks,
            users,
        }
    }

    pub fn pause_sending(&self) {
        self.sending.store(false, Ordering::SeqCst);
    }

    pub fn resume_sending(&self) {
        self.sending.store(true, Ordering::SeqCst);
    }

    pub fn acked_count(&self) -> u64 {
        self.sent_ok.load(Ordering::SeqCst)
    }

    pub fn error_count(&self, code: &str) -> u64 {
        let s = self.shared.lock().unwrap();
        s.errors.get(code).copied().unwrap_or(0)
    }

    /// Starts a new phase: messages acked from now on are counted in it by [`Load::delays`].
    pub fn next_phase(&self) -> usize {
        let mut s = self.shared.lock().unwrap();
        s.phase += 1;
        s.phase
    }

    /// Delivery delays per phase (index = phase), for recipients online at ack time.
    pub fn delays(&self) -> Vec<Delays> {
        let s = self.shared.lock().unwrap();
        let mut per: Vec<(Vec<Duration>, usize)> = vec![(Vec::new(), 0); s.phase + 1];
        for (key, acked) in &s.acked_at {
            if !acked.recipient_online {
                continue;
            }
            match s.received_at.get(key) {
                Some(got) => per[acked.phase]
                    .0
                    .push(got.saturating_duration_since(acked.at)),
                None => per[acked.phase].1 += 1,
            }
        }
        per.into_iter().map(|(d, n)| Delays::of(d, n)).collect()
    }

    /// Starts a new fault window: the longest outage is measured from here.
    pub fn reset_outage(&self) {
        self.shared.lock().unwrap().longest_outage = Duration::ZERO;
    }

    pub fn longest_outage(&self) -> Duration {
        self.shared.lock().unwrap().longest_outage
    }

    /// Waits until every user is logged in; returns how long that took.
    pub async fn wait_all_online(&self, limit: Duration) -> Duration {
        let t = Instant::now();
        crate::poll(
            "every user online",
            limit,
            Duration::from_millis(50),
            || {
                let n = self.shared.lock().unwrap().online.len();
                std::future::ready(if n == self.users {
                    Ok(())
                } else {
                    Err(format!("only {n}/{} users online", self.users))
                })
            },
        )
        .await;
        t.elapsed()
    }

    /// Stops sending, waits (bounded) until no send is waiting for its ack and every acked
    /// message was received, and reports. The check and the report are one snapshot: a
    /// send still in flight at the pause could otherwise be acked between them and be
    /// reported lost a moment before its recipient got it.
    pub async fn settle(&self, limit: Duration) -> Report {
        self.pause_sending();
        let t = Instant::now();
        loop {
            {
                let s = self.shared.lock().unwrap();
                let settled =
                    s.sends_in_flight == 0 && s.acked.difference(&s.received).next().is_none();
                if settled || t.elapsed() > limit {
                    let mut lost: Vec<_> = s.acked.difference(&s.received).cloned().collect();
                    lost.sort();
                    return Report {
                        acked: s.acked.len(),
                        received_of_acked: s.acked.len() - lost.len(),
                        lost,
                        longest_outage: s.longest_outage,
                        errors: s.errors.clone(),
                        reconnects: s.reconnects,
                    };
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// After a failed [`Load::settle`]: waits up to `extra` for `missing` to arrive after all,
    /// and returns those that still have not. Tells a late delivery (e.g. a client sitting on
    /// a silently dead connection until its ping timeout) from a lost message.
    pub async fn still_missing_after(
        &self,
        missing: &[(String, String)],
        extra: Duration,
    ) -> Vec<(String, String)> {
        let t = Instant::now();
        loop {
            let left: Vec<_> = {
                let s = self.shared.lock().unwrap();
                missing
                    .iter()
                    .filter(|k| !s.received.contains(*k))
                    .cloned()
                    .collect()
            };
            if left.is_empty() || t.elapsed() > extra {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(70), t).await;
        }
    }
}

async fn connect(url: &str, transport: Transport) -> Option<Client> {
    let r = match transport {
        Transport::WebSocket => Client::connect_timeout(url, Duration::from_secs(3)).await,
        Transport::Polling => Client::connect_polling_timeout(url, Duration::from_secs(3)).await,
    };
    r.ok()
}

#[allow(clippy::too_many_arguments)]
async fn user_loop(
    url: String,
    me: usize,
    users: usize,
    transport: Transport,
    send_every: Duration,
    shared: Arc<Mutex<Shared>>,
    sending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    sent_ok: Arc<AtomicU64>,
) {
    let name = user_name(me);
    // A cheap per-user pseudo-random sequence (no shared RNG needed).
    let mut rng = crate::XorShift::new((me as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut next_peer = move || {
        let p = rng.below(users as u64) as usize;
        if p == me {
            (p + 1) % users
        } else {
            p
        }
    };
    let mut offline_since = Some(Instant::now());
    let mut first = true;
    while !stop.load(Ordering::SeqCst) {
        let Some(mut client) = connect(&url, transport).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let login = client
            .emit_ack_timeout("log in", json!({"username": name}), Duration::from_secs(3))
            .await;
        if !matches!(&login, Ok(ack) if ack["ok"] == true) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        {
            let mut s = shared.lock().unwrap();
            s.online.insert(me);
            if let Some(since) = offline_since.take() {
                if !first {
                    s.longest_outage = s.longest_outage.max(since.elapsed());
                    s.reconnects += 1;
                }
            }
        }
        first = false;
        // Serve this connection until it breaks.
        let mut last_send = Instant::now() - send_every;
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            // Counted in flight under the lock that settle's check takes (see `Shared`).
            let send_now = last_send.elapsed() >= send_every && {
                let mut s = shared.lock().unwrap();
                let go = sending.load(Ordering::SeqCst);
                s.sends_in_flight += usize::from(go);
                go
            };
            if send_now {
                last_send = Instant::now();
                let peer = next_peer();
                let to = user_name(peer);
                let text = format!("from {name} to {to}");
                match client
                    .emit_ack_timeout(
                        "send message",
                        json!({"username": to, "message": text}),
                        Duration::from_secs(3),
                    )
                    .await
                {
                    Ok(ack) if ack["ok"] == true => {
                        if let Some(id) = ack["id"].as_str() {
                            let at = Instant::now();
                            let mut s = shared.lock().unwrap();
                            let acked = Acked {
                                at,
                                phase: s.phase,
                                recipient_online: s.online.contains(&peer),
                            };
                            s.acked_at.insert((to.clone(), id.to_owned()), acked);
                            s.acked.insert((to, id.to_owned()));
                            sent_ok.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Ok(ack) => {
                        let code = ack["error"]["code"].as_str().unwrap_or("?").to_owned();
                        *shared.lock().unwrap().errors.entry(code).or_default() += 1;
                    }
                    // Unknown outcome (the connection broke): not counted as acked.
                    Err(_) => {}
                }
                shared.lock().unwrap().sends_in_flight -= 1;
            }
            match client
                .wait_for("events", Duration::from_millis(100), |_| true)
                .await
            {
                Ok(ev) if ev.name == "new message" => {
                    if let Some(id) = ev.data()["id"].as_str() {
                        let key = (name.clone(), id.to_owned());
                        let mut s = shared.lock().unwrap();
                        s.received_at
                            .entry(key.clone())
                            .or_insert_with(Instant::now);
                        s.received.insert(key);
                    }
                    if let Some(ack_id) = ev.ack_id {
                        client.ack(ack_id, json!({}));
                    }
                }
                // `delivered` receipts and the like: nothing to record.
                Ok(_) | Err(chat_client::Error::Timeout(_)) => {}
                Err(_) => break,
            }
        }
        shared.lock().unwrap().online.remove(&me);
        offline_since = Some(Instant::now());
    }
}
