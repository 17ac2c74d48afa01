//! Walks a plan's DAG with tokio: each action starts the moment its last dependency is done
//! (not level by level), at most `parallelism` at once and one mutation per service at a
//! time. A failed action blocks only the actions that depend on it: independent branches
//! carry on (one replica failing does not stop its siblings). On an interrupt nothing new
//! starts; running actions finish the API call they are in, and actions waiting on a long
//! cloud operation stop waiting (see [`ProgressHandle::interruptible`]).
//!
//! # Guarantees
//! Steps persist state themselves after every change and record every long operation before
//! waiting on it (see `steps`), so whatever stops the walk — a failure, an interrupt, a kill —
//! the state describes every completed step and every operation still in flight, and the next
//! apply resumes those by polling instead of starting them again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::progress::{Outcome, Progress};
use super::queue::DependencyQueue;
use crate::plan::{Action, ActionId};

/// Carries out one action. Implemented by the real steps and by test doubles.
#[async_trait]
pub trait Steps: Send + Sync + 'static {
    async fn run(&self, action: &Action, progress: &ProgressHandle) -> Result<String, StepError>;
}

/// Why a step did not complete. The error keeps its causes (an API error, a SQL error, the
/// state) rather than a string made of them, so the report can be read by type
/// ([`StepError::cause`]); it is displayed as its whole chain on one line, outermost first,
/// and has no `source()`, so nothing prints a cause twice.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// An interrupt made the step stop waiting (its chain holds an [`Interrupted`]): the
    /// operation goes on in the cloud, the state records it, and the next apply resumes it.
    #[error("{0:#}")]
    Interrupted(anyhow::Error),
    /// The step failed.
    #[error("{0:#}")]
    Failed(anyhow::Error),
    /// The step's task panicked (a bug): its action fails and its dependents are blocked.
    #[error("internal error: {0}")]
    Panicked(String),
}

impl StepError {
    /// A failure with this message (test doubles, and steps with nothing underneath).
    pub fn new(msg: impl Into<String>) -> StepError {
        StepError::Failed(anyhow::Error::msg(msg.into()))
    }

    pub fn is_interrupted(&self) -> bool {
        matches!(self, StepError::Interrupted(_))
    }

    /// The first cause of type `E` in the error's chain, e.g. a
    /// [`crate::skysql::error::SkysqlError`] the API answered.
    pub fn cause<E: std::error::Error + Send + Sync + 'static>(&self) -> Option<&E> {
        match self {
            StepError::Interrupted(e) | StepError::Failed(e) => {
                e.chain().find_map(|c| c.downcast_ref::<E>())
            }
            StepError::Panicked(_) => None,
        }
    }
}

impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> Self {
        if e.chain().any(|c| c.is::<Interrupted>()) {
            StepError::Interrupted(e)
        } else {
            StepError::Failed(e)
        }
    }
}

/// What a step returns when an interrupt made it stop waiting on a cloud operation. The
/// operation itself goes on; the state records it, so the next apply resumes waiting.
#[derive(Debug, Clone, thiserror::Error)]
#[error("stopped {what} (interrupted); the operation goes on in the cloud and the next apply resumes waiting for it")]
pub struct Interrupted {
    pub what: String,
}

/// Lets a running step say what it is waiting for, and learn of an interrupt.
#[derive(Clone)]
pub struct ProgressHandle {
    progress: Arc<dyn Progress>,
    id: ActionId,
    stop: watch::Receiver<bool>,
    /// API calls of this step in progress (see [`ProgressHandle::call`]).
    calls: Arc<watch::Sender<usize>>,
}

/// Decrements the call count even if the call panics or its future is dropped.
struct CallGuard<'a>(&'a watch::Sender<usize>);

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl ProgressHandle {
    fn new(progress: Arc<dyn Progress>, id: ActionId, stop: watch::Receiver<bool>) -> Self {
        ProgressHandle {
            progress,
            id,
            stop,
            calls: Arc::new(watch::channel(0).0),
        }
    }

    pub fn status(&self, msg: &str) {
        self.progress.status(self.id, msg);
    }

    /// A handle that reports nowhere and is never interrupted (for tests and for steps run
    /// outside an apply).
    pub fn detached() -> ProgressHandle {
        Self::with_stop(Arc::new(super::progress::Silent), watch::channel(false).1)
    }

    /// A handle reporting to `progress` that stops waiting when `stop` becomes true (for work
    /// done outside the executor, such as resuming operations before planning).
    pub fn with_stop(progress: Arc<dyn Progress>, stop: watch::Receiver<bool>) -> ProgressHandle {
        Self::new(progress, 0, stop)
    }

    /// Whether an interrupt was received.
    pub fn interrupted(&self) -> bool {
        *self.stop.borrow()
    }

    /// An API call that an interrupt must let finish: [`Self::interruptible`] never abandons a
    /// wait while one of these is in progress.
    pub async fn call<T>(&self, fut: impl Future<Output = T>) -> T {
        self.calls.send_modify(|n| *n += 1);
        let _guard = CallGuard(&self.calls);
        fut.await
    }

    /// Wait for `fut` (a poll loop on a long cloud operation), unless an interrupt comes
    /// first: then stop waiting at the next moment no [`Self::call`] is in progress and return
    /// [`Interrupted`]. Only wrap waits whose operation is already recorded in the state.
    pub async fn interruptible<T>(
        &self,
        what: &str,
        fut: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let mut stop = self.stop.clone();
        let mut calls = self.calls.subscribe();
        let interrupt = async move {
            if stop.wait_for(|s| *s).await.is_err() {
                // No one can interrupt any more (a detached handle): wait forever.
                std::future::pending::<()>().await;
            }
            let _ = calls.wait_for(|n| *n == 0).await;
        };
        tokio::select! {
            biased;
            () = interrupt => Err(Interrupted { what: what.to_string() }.into()),
            r = fut => r,
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub completed: Vec<ActionId>,
    pub failed: Vec<(ActionId, StepError)>,
    /// Actions that stopped waiting on an interrupt; their cloud operation goes on and the
    /// next apply resumes it.
    pub abandoned: Vec<(ActionId, StepError)>,
    /// Blocked by a failure or an interrupt.
    pub not_started: Vec<ActionId>,
    pub interrupted: bool,
    pub elapsed: Duration,
    /// How long each completed action took (recorded for the next plans' estimates).
    pub took: HashMap<ActionId, Duration>,
}

impl Report {
    pub fn success(&self) -> bool {
        self.failed.is_empty()
            && self.abandoned.is_empty()
            && self.not_started.is_empty()
            && !self.interrupted
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
        self.progress.begin(actions);
        let mut running: JoinSet<(ActionId, Result<String, StepError>, Duration)> = JoinSet::new();
        // Which action a task runs, to account for a task that panicked.
        let mut task_action: HashMap<tokio::task::Id, ActionId> = HashMap::new();
        let mut report = Report::default();
        let mut stop = self.stop.clone();
        // False once no one can send an interrupt any more (the sender is gone).
        let mut stop_open = true;
        let parallelism = self.parallelism.max(1);
        // The interrupt is announced once, before anything it causes is reported: a step may
        // notice it (and end) before this loop's own `stop.changed()` branch runs.
        let mut announced = false;
        // Lets the progress printer say that quiet steps are still running.
        let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut announce = |stop: &watch::Receiver<bool>| {
            if *stop.borrow() && !announced {
                announced = true;
                self.progress.message("Interrupt received: starting nothing new; running steps finish their API calls and stop waiting (Ctrl-C again to exit now).");
            }
        };

        loop {
            announce(&stop);
            if !*stop.borrow() {
                while running.len() < parallelism {
                    let Some(id) = queue.dequeue() else { break };
                    let action = actions[id].clone();
                    let steps = steps.clone();
                    let handle = ProgressHandle::new(self.progress.clone(), id, self.stop.clone());
                    self.progress.started(&action);
                    let task = running.spawn(async move {
                        let t = Instant::now();
                        let r = steps.run(&action, &handle).await;
                        (id, r, t.elapsed())
                    });
                    task_action.insert(task.id(), id);
                }
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                joined = running.join_next_with_id() => {
                    let Some(joined) = joined else { break };
                    let (id, result, took) = match joined {
                        Ok((_, v)) => v,
                        Err(e) => {
                            // A panicking step is a bug: fail its action, block its dependents.
                            let Some(id) = task_action.get(&e.id()).copied() else { continue };
                            (id, Err(StepError::Panicked(e.to_string())), Duration::ZERO)
                        }
                    };
                    announce(&stop);
                    // The same word the summary will use for it.
                    let said = result.as_ref().err().map(ToString::to_string);
                    let outcome = match (&result, &said) {
                        (Ok(note), _) => Outcome::Done(note),
                        (Err(e), Some(m)) if e.is_interrupted() => Outcome::StillRunning(m),
                        (Err(_), m) => Outcome::Failed(m.as_deref().unwrap_or_default()),
                    };
                    self.progress.finished(&actions[id], outcome, took);
                    match result {
                        Ok(_) => {
                            queue.finish(id);
                            report.completed.push(id);
                            report.took.insert(id, took);
                        }
                        Err(e) => {
                            queue.fail(id);
                            if e.is_interrupted() {
                                report.abandoned.push((id, e));
                            } else {
                                report.failed.push((id, e));
                            }
                        }
                    }
                }
                changed = stop.changed(), if stop_open && !*stop.borrow() => {
                    stop_open = changed.is_ok();
                    announce(&stop);
                }
                _ = heartbeat.tick() => self.progress.tick(),
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
            estimated_ms: None,
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
    async fn a_failure_blocks_its_dependents_while_independent_branches_finish() {
        // 0 fails at 50ms; 2 (after 0) never starts; 1 and 3 (after 1) are independent of
        // it and complete, as a sibling replica does when one replica fails.
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
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].0, 0);
        assert_eq!(report.failed[0].1.to_string(), "boom");
        assert_eq!(report.completed, vec![1, 3]);
        assert_eq!(report.not_started, vec![2]);
        assert!(!report.success());
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_step_fails_its_action_only() {
        struct Panics;
        #[async_trait]
        impl Steps for Panics {
            async fn run(&self, a: &Action, _: &ProgressHandle) -> Result<String, StepError> {
                if a.id == 0 {
                    panic!("bug");
                }
                Ok(String::new())
            }
        }
        let actions = vec![
            action(0, "a", &[]),
            action(1, "b", &[0]),
            action(2, "c", &[]),
        ];
        let (ex, _tx) = executor(10);
        let report = ex.run(&actions, Arc::new(Panics)).await;
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].0, 0);
        assert!(
            matches!(&report.failed[0].1, StepError::Panicked(m) if m.contains("panicked")),
            "{report:?}"
        );
        assert!(report.failed[0].1.to_string().starts_with("internal error"));
        assert_eq!(report.completed, vec![2]);
        assert_eq!(report.not_started, vec![1]);
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

    /// A step that makes an API call (`call_ms`) then waits on a long operation (`wait_ms`),
    /// polling every 100 ms, the wait being interruptible.
    struct Waits {
        call_ms: u64,
        wait_ms: u64,
        calls_done: Mutex<Vec<Instant>>,
    }

    #[async_trait]
    impl Steps for Waits {
        async fn run(&self, _: &Action, p: &ProgressHandle) -> Result<String, StepError> {
            let wait = async {
                let t = Instant::now();
                loop {
                    p.call(tokio::time::sleep(Duration::from_millis(self.call_ms)))
                        .await;
                    self.calls_done.lock().unwrap().push(Instant::now());
                    if t.elapsed() >= Duration::from_millis(self.wait_ms) {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            p.interruptible("waiting for x", wait).await?;
            Ok(String::new())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_interrupt_abandons_waits_but_lets_the_api_call_in_progress_finish() {
        // Each poll is a 300 ms call; the interrupt comes 50 ms into the first one.
        let actions = vec![action(0, "a", &[]), action(1, "b", &[0])];
        let steps = Arc::new(Waits {
            call_ms: 300,
            wait_ms: 60_000,
            calls_done: Mutex::new(vec![]),
        });
        let (ex, tx) = executor(10);
        let t = Instant::now();
        let run = ex.run(&actions, steps.clone());
        let interrupt = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send(true).unwrap();
        };
        let (report, _) = tokio::join!(run, interrupt);
        assert!(report.interrupted);
        assert_eq!(report.abandoned.len(), 1, "{report:?}");
        assert!(
            report.abandoned[0]
                .1
                .to_string()
                .contains("stopped waiting for x (interrupted)"),
            "{report:?}"
        );
        assert!(report.failed.is_empty(), "{report:?}");
        assert_eq!(report.not_started, vec![1]);
        // The call in progress was not cut short, and nothing was polled after it.
        assert_eq!(steps.calls_done.lock().unwrap().len(), 1);
        assert_eq!(t.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_detached_handle_is_never_interrupted() {
        let p = ProgressHandle::detached();
        let r = p
            .interruptible("waiting", async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(7)
            })
            .await
            .unwrap();
        assert_eq!(r, 7);
        assert!(!p.interrupted());
    }
}
