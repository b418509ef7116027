//! A child's lifecycle as one pure function, [`step`]: `(state, event, now) -> (state,
//! actions)`. Workers, the embedded Redis and HAProxy all go through it; the plumbing in
//! `children` only feeds it events and carries out the actions it returns, so restart,
//! backoff and give-up are unit-tested here without processes.

use crate::policy::{CrashHistory, Decision, RestartPolicy};
use chat::control::WorkerState;
use std::time::{Duration, Instant};

/// What the supervisor knows about one child. Written only by [`step`]; read via getters.
#[derive(Debug, Clone)]
pub struct Life {
    state: WorkerState,
    pid: Option<u32>,
    /// Identifies the current process; exit events of older ones are ignored.
    seq: u64,
    restarts: u32,
    started_at: Option<Instant>,
    history: CrashHistory,
    /// Last `/health` status (0 = no answer).
    health: u16,
    /// We stop it on purpose: its exit is not a crash and nothing restarts it.
    stopping: bool,
    /// Crashes within the policy's window before it is left `failed` (`--max-restarts`).
    max_crashes: usize,
}

impl Default for Life {
    fn default() -> Self {
        Life {
            state: WorkerState::Starting,
            pid: None,
            seq: 0,
            restarts: 0,
            started_at: None,
            history: CrashHistory::default(),
            health: 0,
            stopping: false,
            max_crashes: policy().max_crashes,
        }
    }
}

impl Life {
    /// A child left `failed` at its `max_crashes`-th crash within the policy's window.
    pub fn giving_up_after(max_crashes: usize) -> Life {
        Life {
            max_crashes: max_crashes.max(1),
            ..Life::default()
        }
    }
    pub fn state(&self) -> WorkerState {
        self.state
    }
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
    pub fn started_at(&self) -> Option<Instant> {
        self.started_at
    }
    pub fn health(&self) -> u16 {
        self.health
    }
    pub fn stopping(&self) -> bool {
        self.stopping
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new process runs. `checked`: it becomes `up` on its first `/health` 200; otherwise
    /// (Redis, HAProxy: no health endpoint) at once.
    Spawned { pid: u32, seq: u64, checked: bool },
    /// A `/health` answer (0 = none).
    Health(u16),
    /// Process `seq` exited.
    Exited { seq: u64 },
    /// We drain or stop it on purpose (scale down, reload, `down`).
    Stop,
    /// A restart's backoff delay for process `seq` is over.
    RestartDue { seq: u64 },
    /// A deliberate replacement (rolling reload) starts the backoff over.
    ForgetCrashes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It crashed: send [`Event::RestartDue`] after this delay.
    RestartAfter(Duration),
    /// It crashed too often: left `failed`.
    GiveUp,
    /// Start a new process now.
    Spawn,
}

/// The policy every child restarts by (SPEC §2).
fn policy() -> RestartPolicy {
    RestartPolicy::default()
}

pub fn step(mut life: Life, event: Event, now: Instant) -> (Life, Vec<Action>) {
    let mut actions = Vec::new();
    match event {
        Event::Spawned { pid, seq, checked } => {
            life.pid = Some(pid);
            life.seq = seq;
            life.started_at = Some(now);
            life.stopping = false;
            life.health = 0;
            life.state = if checked {
                WorkerState::Starting
            } else {
                WorkerState::Up
            };
        }
        Event::Health(code) => {
            life.health = code;
            if code == 200 && life.state == WorkerState::Starting {
                life.state = WorkerState::Up;
            }
        }
        Event::Exited { seq } if seq != life.seq => {}
        Event::Exited { .. } => {
            life.pid = None;
            life.health = 0;
            if !life.stopping {
                let started = life.started_at.unwrap_or(now);
                let policy = RestartPolicy {
                    max_crashes: life.max_crashes,
                    ..policy()
                };
                let decision = policy.on_crash(&mut life.history, started, now);
                life.restarts += 1;
                match decision {
                    Decision::RestartAfter(delay) => {
                        life.state = WorkerState::Restarting;
                        actions.push(Action::RestartAfter(delay));
                    }
                    Decision::GiveUp => {
                        life.state = WorkerState::Failed;
                        actions.push(Action::GiveUp);
                    }
                }
            }
        }
        Event::Stop => {
            life.stopping = true;
            life.state = WorkerState::Draining;
        }
        Event::RestartDue { seq } => {
            if seq == life.seq && life.state == WorkerState::Restarting && !life.stopping {
                actions.push(Action::Spawn);
            }
        }
        Event::ForgetCrashes => life.history = CrashHistory::default(),
    }
    (life, actions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs events in order, one millisecond apart; returns the final state and every action.
    fn run(life: Life, events: &[Event], t0: Instant) -> (Life, Vec<Action>) {
        let mut life = life;
        let mut all = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let (next, actions) = step(life, *e, t0 + ms(i as u64));
            life = next;
            all.extend(actions);
        }
        (life, all)
    }

    fn spawned(seq: u64) -> Event {
        Event::Spawned {
            pid: 100 + seq as u32,
            seq,
            checked: true,
        }
    }

    #[test]
    fn starts_and_becomes_up_on_health_200() {
        let t0 = Instant::now();
        let (l, a) = run(Life::default(), &[spawned(1)], t0);
        assert_eq!(
            (l.state(), l.pid(), l.seq),
            (WorkerState::Starting, Some(101), 1)
        );
        assert!(a.is_empty());
        let (l, _) = run(l, &[Event::Health(503)], t0);
        assert_eq!((l.state(), l.health()), (WorkerState::Starting, 503));
        let (l, _) = run(l, &[Event::Health(200)], t0);
        assert_eq!((l.state(), l.health()), (WorkerState::Up, 200));
    }

    #[test]
    fn unchecked_children_are_up_at_once() {
        let ev = Event::Spawned {
            pid: 7,
            seq: 1,
            checked: false,
        };
        let (l, _) = step(Life::default(), ev, Instant::now());
        assert_eq!(l.state(), WorkerState::Up);
    }

    #[test]
    fn a_crash_restarts_with_growing_backoff() {
        let t0 = Instant::now();
        let (l, a) = run(
            Life::default(),
            &[spawned(1), Event::Health(200), Event::Exited { seq: 1 }],
            t0,
        );
        assert_eq!(a, [Action::RestartAfter(ms(100))]);
        assert_eq!(
            (l.state(), l.pid(), l.health(), l.restarts()),
            (WorkerState::Restarting, None, 0, 1)
        );
        let (l, a) = run(l, &[Event::RestartDue { seq: 1 }], t0);
        assert_eq!(a, [Action::Spawn]);
        let (l, a) = run(l, &[spawned(2), Event::Exited { seq: 2 }], t0);
        assert_eq!(a, [Action::RestartAfter(ms(200))]);
        assert_eq!(l.restarts(), 2);
    }

    #[test]
    fn ten_quick_crashes_give_up_as_failed() {
        let t0 = Instant::now();
        let mut l = Life::default();
        let mut last = Vec::new();
        for seq in 1..=10 {
            let (next, a) = run(l, &[spawned(seq), Event::Exited { seq }], t0 + ms(seq * 10));
            l = next;
            last = a;
        }
        assert_eq!(last, [Action::GiveUp]);
        assert_eq!((l.state(), l.restarts()), (WorkerState::Failed, 10));
        let (l, a) = run(l, &[Event::RestartDue { seq: 10 }], t0);
        assert!(a.is_empty(), "a failed child is not restarted");
        assert_eq!(l.state(), WorkerState::Failed);
    }

    #[test]
    fn an_exit_we_asked_for_is_not_a_crash() {
        let t0 = Instant::now();
        let (l, a) = run(
            Life::default(),
            &[
                spawned(1),
                Event::Health(200),
                Event::Stop,
                Event::Exited { seq: 1 },
            ],
            t0,
        );
        assert!(a.is_empty());
        assert_eq!(
            (l.state(), l.pid(), l.restarts()),
            (WorkerState::Draining, None, 0)
        );
        // Replaced on purpose (rolling reload): starts fresh.
        let (l, _) = run(l, &[Event::ForgetCrashes, spawned(2)], t0);
        assert_eq!((l.state(), l.stopping()), (WorkerState::Starting, false));
        let (_, a) = run(l, &[Event::Exited { seq: 2 }], t0);
        assert_eq!(a, [Action::RestartAfter(ms(100))]);
    }

    #[test]
    fn exits_of_older_processes_are_ignored() {
        let t0 = Instant::now();
        let (l, a) = run(
            Life::default(),
            &[
                spawned(1),
                spawned(2),
                Event::Health(200),
                Event::Exited { seq: 1 },
            ],
            t0,
        );
        assert!(a.is_empty());
        assert_eq!(
            (l.state(), l.pid(), l.restarts()),
            (WorkerState::Up, Some(102), 0)
        );
        // A restart scheduled for an older process is stale too.
        let (_, a) = run(l, &[Event::RestartDue { seq: 1 }], t0);
        assert!(a.is_empty());
    }

    #[test]
    fn stopping_suppresses_a_pending_restart() {
        let t0 = Instant::now();
        let (l, a) = run(Life::default(), &[spawned(1), Event::Exited { seq: 1 }], t0);
        assert_eq!(a, [Action::RestartAfter(ms(100))]);
        // `down` arrives during the backoff delay.
        let (l, a) = run(l, &[Event::Stop, Event::RestartDue { seq: 1 }], t0);
        assert!(a.is_empty());
        assert_eq!(l.state(), WorkerState::Draining);
    }
}
