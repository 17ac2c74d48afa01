//! Waiting on long cloud operations: poll until done, with a deadline and visible status.
//!
//! # When to look again
//! The next look comes after a fixed fraction ([`PollPolicy::overshoot`]) of the time waited
//! so far, at least [`PollPolicy::first`] and at most [`PollPolicy::max`]. So a wait ends at
//! most 10% (or 250 ms) after the operation did, whatever its length — a geometric schedule
//! (×1.5 per look) lets a 1.3 s operation be seen at 2.0 s, 50% late, and a plan's critical
//! path adds those delays up — while a long wait still backs off: a five-minute create costs
//! about sixty looks, then four a minute at the 15 s cap. Looks are spaced start to start, so
//! slow answers do not stretch the schedule.
//!
//! # Server trouble
//! The client retries each call already (backoff, `Retry-After`). A look that still fails
//! with a temporary SkySQL error (429, 5xx, connection trouble) does not end a wait whose
//! operation is still running on the server: it counts as "pending" up to
//! [`PollPolicy::transient_errors`] times in a row, and the next look waits at least as long
//! as the server's `Retry-After` asked (also when the client gave up because it was longer
//! than it would wait for one call).

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::time::Instant;

use super::executor::ProgressHandle;
use crate::skysql::error::SkysqlError;
use crate::skysql::retry::RetryClass;

#[derive(Debug, Clone)]
pub struct PollPolicy {
    /// Least time between two looks.
    pub first: Duration,
    /// Most time between two looks.
    pub max: Duration,
    /// Look again after this fraction of the time waited so far (between `first` and `max`):
    /// the most a wait can end after its operation did, relative to the wait.
    pub overshoot: f64,
    /// Give up after this long.
    pub deadline: Duration,
    /// Temporary API failures in a row that a wait survives.
    pub transient_errors: u32,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first: Duration::from_millis(250),
            max: Duration::from_secs(15),
            overshoot: 0.1,
            deadline: Duration::from_secs(60 * 60),
            transient_errors: 3,
        }
    }
}

impl PollPolicy {
    /// Time from the start of a look to the start of the next, `waited` into the wait.
    pub fn interval(&self, waited: Duration) -> Duration {
        waited
            .mul_f64(self.overshoot.max(0.0))
            .clamp(self.first, self.max.max(self.first))
    }
}

/// What one look at an operation found.
pub enum Poll<T> {
    Done(T),
    /// Still going; the text is shown as the step's status.
    Pending(String),
}

/// A failed look worth another one: a temporary SkySQL error, with the server's
/// `Retry-After` if it gave one.
fn transient(e: &anyhow::Error) -> Option<(Option<Duration>, &SkysqlError)> {
    let api = e.chain().find_map(|c| c.downcast_ref::<SkysqlError>())?;
    match api.retry_class() {
        RetryClass::Refused { retry_after } => Some((retry_after, api)),
        // Looks only read, so a call the server may have seen is safe to repeat.
        RetryClass::Ambiguous => Some((None, api)),
        RetryClass::Fatal => None,
    }
}

/// Poll `check` until it is done, fails, or `what` exceeds the policy's deadline.
pub async fn until<T, F, Fut>(
    policy: &PollPolicy,
    progress: &ProgressHandle,
    what: &str,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    let start = Instant::now();
    let mut failures = 0u32;
    loop {
        let looked_at = Instant::now();
        let mut next = looked_at + policy.interval(looked_at - start);
        let status = match check().await {
            Ok(Poll::Done(v)) => return Ok(v),
            Ok(Poll::Pending(status)) => {
                failures = 0;
                status
            }
            Err(e) => {
                let Some((retry_after, api)) = transient(&e) else {
                    return Err(e);
                };
                failures += 1;
                if failures > policy.transient_errors {
                    return Err(
                        e.context(format!("{what}: the API failed {failures} looks in a row"))
                    );
                }
                if let Some(after) = retry_after {
                    next = next.max(Instant::now() + after);
                }
                format!("the API is unavailable ({api}); looking again")
            }
        };
        progress.status(&format!("{what}: {status}"));
        // The last look is at the deadline, unless the server asked us to wait beyond it.
        let deadline = start + policy.deadline;
        if looked_at >= deadline || next > deadline + policy.max {
            bail!(
                "gave up {what} after {}s (last status: {status})",
                (looked_at - start).as_secs()
            );
        }
        tokio::time::sleep_until(next.min(deadline)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skysql::error::ApiError;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    fn api_error(status: u16, retry_after: Option<Duration>) -> anyhow::Error {
        anyhow::Error::new(SkysqlError::Api(ApiError {
            method: "GET".into(),
            path: "/provisioning/v1/services/x".into(),
            status,
            message: "try later".into(),
            trace_id: None,
            retry_after,
            attempts: 8,
        }))
        .context("waiting for service.x")
    }

    /// Waits for an operation that is done `after`; returns (looks, how late the wait ended).
    async fn wait_for(policy: &PollPolicy, after: Duration) -> (u32, Duration) {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        until(policy, &ProgressHandle::detached(), "waiting", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(if start.elapsed() >= after {
                Poll::Done(())
            } else {
                Poll::Pending("pending".into())
            })
        })
        .await
        .unwrap();
        (calls.load(Ordering::SeqCst), start.elapsed() - after)
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_so_long_waits_cost_few_calls() {
        let (calls, late) = wait_for(&PollPolicy::default(), Duration::from_secs(300)).await;
        assert!(calls <= 70, "{calls} calls for a 5-minute wait");
        assert!(late <= Duration::from_secs(15), "ended {late:?} late");
        // Past the cap, looks come every 15 s: another five minutes cost 20 more.
        let (more, _) = wait_for(&PollPolicy::default(), Duration::from_secs(600)).await;
        assert_eq!(more - calls, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_end_soon_after_the_operation_at_any_length() {
        let policy = PollPolicy::default();
        for ms in [0, 900, 1_300, 2_000, 4_700, 13_000, 37_000, 121_000] {
            let op = Duration::from_millis(ms);
            let (_, late) = wait_for(&policy, op).await;
            let bound = policy.interval(op);
            assert!(
                late <= bound,
                "{op:?}: ended {late:?} late (bound {bound:?})"
            );
            assert!(late <= op / 10 + policy.first);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn slow_answers_do_not_stretch_the_schedule() {
        // Each look takes 200 ms: looks still start every 250 ms (start to start).
        let starts = Mutex::new(Vec::new());
        let start = Instant::now();
        until(
            &PollPolicy::default(),
            &ProgressHandle::detached(),
            "w",
            || async {
                starts.lock().unwrap().push(start.elapsed());
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(if start.elapsed() >= Duration::from_secs(1) {
                    Poll::Done(())
                } else {
                    Poll::Pending("pending".into())
                })
            },
        )
        .await
        .unwrap();
        let ms: Vec<u128> = starts
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(ms, vec![0, 250, 500, 750, 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_from_the_server_delays_the_next_look() {
        let looks = Mutex::new(Vec::new());
        let start = Instant::now();
        let v = until(
            &PollPolicy::default(),
            &ProgressHandle::detached(),
            "w",
            || async {
                let n = {
                    let mut l = looks.lock().unwrap();
                    l.push(start.elapsed());
                    l.len()
                };
                match n {
                    // The client gave up: the server asked for more than it waits per call.
                    1 => Err(api_error(429, Some(Duration::from_secs(180)))),
                    2 => Ok(Poll::Pending("pending".into())),
                    _ => Ok(Poll::Done(n)),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 3);
        let l = looks.lock().unwrap();
        assert_eq!(l[1], Duration::from_secs(180));
        assert_eq!(l[2] - l[1], PollPolicy::default().interval(l[1]));
    }

    #[tokio::test(start_paused = true)]
    async fn temporary_failures_are_survived_a_few_times_in_a_row() {
        let calls = AtomicU32::new(0);
        let v = until(
            &PollPolicy::default(),
            &ProgressHandle::detached(),
            "w",
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 | 3 | 4 | 5 => Err(api_error(503, None)),
                    2 => Ok(Poll::Pending("pending".into())),
                    _ => Ok(Poll::Done(7)),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 7);

        let r: Result<()> = until(
            &PollPolicy::default(),
            &ProgressHandle::detached(),
            "waiting for x",
            || async { Err(api_error(503, None)) },
        )
        .await;
        let e = format!("{:#}", r.unwrap_err());
        assert!(
            e.contains("failed 4 looks in a row") && e.contains("503"),
            "{e}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn other_failures_end_the_wait_at_once() {
        let calls = AtomicU32::new(0);
        let r: Result<()> = until(
            &PollPolicy::default(),
            &ProgressHandle::detached(),
            "w",
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(api_error(403, None))
            },
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let r: Result<()> = until(
            &PollPolicy::default(),
            &ProgressHandle::detached(),
            "w",
            || async { bail!("service.x disappeared") },
        )
        .await;
        assert!(r.unwrap_err().to_string().contains("disappeared"));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline() {
        let policy = PollPolicy {
            deadline: Duration::from_secs(10),
            ..PollPolicy::default()
        };
        let r: Result<()> = until(
            &policy,
            &ProgressHandle::detached(),
            "waiting for x",
            || async { Ok(Poll::Pending("pending_create".into())) },
        )
        .await;
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("gave up waiting for x") && e.contains("pending_create"),
            "{e}"
        );
    }
}
