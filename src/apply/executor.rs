//! Walks a plan's DAG with tokio: each action starts the moment its last dependency is done
//! (not level by level), at most `parallelism` at once and one mutation per service at a
//! time. On a failure or an interrupt it starts nothing new, lets running actions finish and
//! reports what failed and what was not started.
//!
//! # Guarantees
//! Steps persist state themselves after every change (see `steps`), so whatever stops the
//! walk, the state describes every completed step and every in-flight operation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::progress::Progress;
use super::queue::DependencyQueue;
use crate::plan::{Action, ActionId};

/// Carries out one action. Implemented by the real steps and by test doubles.
#[async_trait]
pub trait Steps: Send + Sync + 'static {
    async fn run(&self, action: &Action, progress: &ProgressHandle) -> Result<String, StepError>;
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StepError(pub String);

impl StepError {
    pub fn new(msg: impl Into<String>) -> StepError {
        StepError(msg.into())
    }
}

impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> Self {
        StepError(format!("{e:#}"))
    }
}

/// Lets a running step say what it is waiting for.
#[derive(Clone)]
pub struct ProgressHandle {
    progress: Arc<dyn Progress>,
    id: ActionId,
}

impl ProgressHandle {
    pub fn status(&self, msg: &str) {
        self.progress.status(self.id, msg);
    }
    /// A handle that reports nowhere (for tests and for steps run outside an apply).
    pub fn detached() -> ProgressHandle {
        ProgressHandle {
            progress: Arc::new(super::progress::Silent),
            id: 0,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub completed: Vec<ActionId>,
    pub failed: Vec<(ActionId, String)>,
    pub not_started: Vec<ActionId>,
    pub interrupted: bool,
    pub elapsed: Duration,
}

impl Report {
    pub fn success(&self) -> bool {
        self.failed.is_empty() && self.not_started.is_empty() && !self.interrupted
    }
}

pub struct Executor {
    pub parallelism: usize,
    pub progress: Arc<dyn Progress>,
    /// Becomes true on Ctrl-C: start nothing new.
    pub stop: watch::Receiver<bool>,
}

impl Executor {
    pub async fn run(&self, actions: &[Action], steps: Arc<dyn Steps>) -> Report {
        let start = Instant::now();
        let deps: Vec<Vec<usize>> = actions.iter().map(|a| a.depends_on.clone()).collect();
        let services = actions
            .iter()
            .map(|a| {
                a.kind
                    .mutated_services()
                    .into_iter()
                    .map(String::from)
                    .collect()
            })
            .collect();
        let mut queue = DependencyQueue::new(&deps, services);
        let mut running: JoinSet<(ActionId, Result<String, StepError>, Duration)> = JoinSet::new();
        let mut report = Report::default();
        let mut stop = self.stop.clone();
        let parallelism = self.parallelism.max(1);

        loop {
            let halted = !report.failed.is_empty() || *stop.borrow();
            if !halted {
                while running.len() < parallelism {
                    let Some(id) = queue.dequeue() else { break };
                    let action = actions[id].clone();
                    let steps = steps.clone();
                    let handle = ProgressHandle {
                        progress: self.progress.clone(),
                        id,
                    };
                    self.progress.started(&action);
                    running.spawn(async move {
                        let t = Instant::now();
                        let r = steps.run(&action, &handle).await;
                        (id, r, t.elapsed())
                    });
                }
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                joined = running.join_next() => {
                    let Some(joined) = joined else { break };
                    let (id, result, took) = match joined {
                        Ok(v) => v,
                        Err(e) => {
                            // A panicking step is a bug; treat it as a failure of an unknown action.
                            report.failed.push((usize::MAX, format!("internal error: {e}")));
                            continue;
                        }
                    };
                    self.progress.finished(&actions[id], result.as_ref().map(|s| s.as_str()).map_err(|e| e.0.as_str()), took);
                    match result {
                        Ok(_) => { queue.finish(id); report.completed.push(id); }
                        Err(e) => { queue.fail(id); report.failed.push((id, e.0)); }
                    }
                }
                changed = stop.changed(), if !*stop.borrow() => {
                    if changed.is_ok() && *stop.borrow() {
                        self.progress.message("Interrupt received: starting nothing new, waiting for running steps to finish (Ctrl-C again to exit now).");
                    }
                }
            }
        }
        report.interrupted = *stop.borrow();
        report.not_started = queue.not_started();
        report.completed.sort_unstable();
        report.elapsed = start.elapsed();
        self.progress.done();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ActionKind, Change};
    use crate::topology::Seed;
    use std::sync::Mutex;
    use tokio::time::Instant;

    fn action(id: usize, source: &str, deps: &[usize]) -> Action {
        Action {
            id,
            address: format!("backup.{source}"),
            change: Change::Create,
            kind: ActionKind::Backup {
                source: source.into(),
                seed: Seed::NewBackup,
                replicas: vec![],
            },
            summary: String::new(),
            depends_on: deps.to_vec(),
            before: None,
            after: None,
            wipes_data: false,
            reason: None,
        }
    }

    struct Timed {
        delays: Vec<u64>,
        fail: Option<usize>,
        log: Mutex<Vec<(usize, &'static str, Instant)>>,
    }

    #[async_trait]
    impl Steps for Timed {
        async fn run(&self, a: &Action, _: &ProgressHandle) -> Result<String, StepError> {
            self.log
                .lock()
                .unwrap()
                .push((a.id, "start", Instant::now()));
            tokio::time::sleep(Duration::from_millis(self.delays[a.id])).await;
            self.log.lock().unwrap().push((a.id, "end", Instant::now()));
            if self.fail == Some(a.id) {
                return Err(StepError::new("boom"));
            }
            Ok(String::new())
        }
    }

    fn executor(parallelism: usize) -> (Executor, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        (
            Executor {
                parallelism,
                progress: Arc::new(super::super::progress::Silent),
                stop: rx,
            },
            tx,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn starts_each_action_when_its_last_dependency_finishes() {
        // 0 (100ms) -> 2 (100ms); 1 (300ms) independent. With level-by-level scheduling 2
        // would wait for 1; here the whole run takes max(200, 300) = 300 ms.
        let actions = vec![
            action(0, "a", &[]),
            action(1, "b", &[]),
            action(2, "c", &[0]),
        ];
        let steps = Arc::new(Timed {
            delays: vec![100, 300, 100],
            fail: None,
            log: Mutex::new(vec![]),
        });
        let (ex, _tx) = executor(10);
        let t = Instant::now();
        let report = ex.run(&actions, steps.clone()).await;
        assert!(report.success(), "{report:?}");
        assert_eq!(t.elapsed(), Duration::from_millis(300));
        let log = steps.log.lock().unwrap();
        let start2 = log
            .iter()
            .find(|(i, e, _)| *i == 2 && *e == "start")
            .unwrap()
            .2;
        assert_eq!(start2 - t, Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn parallelism_is_bounded() {
        let actions: Vec<Action> = (0..4).map(|i| action(i, &format!("s{i}"), &[])).collect();
        let steps = Arc::new(Timed {
            delays: vec![100; 4],
            fail: None,
            log: Mutex::new(vec![]),
        });
        let (ex, _tx) = executor(2);
        let t = Instant::now();
        assert!(ex.run(&actions, steps).await.success());
        assert_eq!(t.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_stops_new_starts_but_running_actions_finish() {
        // 0 fails at 50ms; 1 (independent, running) finishes; 2 (after 0) and 3 (after 1) never start.
        let actions = vec![
            action(0, "a", &[]),
            action(1, "b", &[]),
            action(2, "c", &[0]),
            action(3, "d", &[1]),
        ];
        let steps = Arc::new(Timed {
            delays: vec![50, 200, 10, 10],
            fail: Some(0),
            log: Mutex::new(vec![]),
        });
        let (ex, _tx) = executor(10);
        let report = ex.run(&actions, steps).await;
        assert_eq!(report.failed, vec![(0, "boom".to_string())]);
        assert_eq!(report.completed, vec![1]);
        assert_eq!(report.not_started, vec![2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn interrupt_starts_nothing_new() {
        let actions = vec![action(0, "a", &[]), action(1, "b", &[0])];
        let steps = Arc::new(Timed {
            delays: vec![100, 100],
            fail: None,
            log: Mutex::new(vec![]),
        });
        let (ex, tx) = executor(10);
        let run = ex.run(&actions, steps);
        let interrupt = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            tx.send(true).unwrap();
        };
        let (report, _) = tokio::join!(run, interrupt);
        assert!(report.interrupted);
        assert_eq!(report.completed, vec![0]);
        assert_eq!(report.not_started, vec![1]);
    }
}
