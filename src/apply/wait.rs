//! Waiting on long cloud operations: poll with backoff (starting quick, growing to a cap) so
//! that a five-minute create costs a handful of calls, with a deadline and visible status.

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::time::Instant;

use super::executor::ProgressHandle;

#[derive(Debug, Clone)]
pub struct PollPolicy {
    pub first: Duration,
    pub max: Duration,
    pub factor: f64,
    /// Give up after this long.
    pub deadline: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first: Duration::from_millis(250),
            max: Duration::from_secs(15),
            factor: 1.5,
            deadline: Duration::from_secs(60 * 60),
        }
    }
}

/// What one look at an operation found.
pub enum Poll<T> {
    Done(T),
    /// Still going; the text is shown as the step's status.
    Pending(String),
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
    let mut delay = policy.first;
    loop {
        match check().await? {
            Poll::Done(v) => return Ok(v),
            Poll::Pending(status) => {
                progress.status(&format!("{what}: {status}"));
                if start.elapsed() >= policy.deadline {
                    bail!(
                        "gave up {what} after {}s (last status: {status})",
                        policy.deadline.as_secs()
                    );
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = Duration::from_secs_f64(
            (delay.as_secs_f64() * policy.factor).min(policy.max.as_secs_f64()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn backs_off_so_long_waits_cost_few_calls() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let policy = PollPolicy::default();
        // Done after 5 minutes of waiting.
        let v = until(&policy, &ProgressHandle::detached(), "waiting", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(if start.elapsed() >= Duration::from_secs(300) {
                Poll::Done(7)
            } else {
                Poll::Pending("pending".into())
            })
        })
        .await
        .unwrap();
        assert_eq!(v, 7);
        let n = calls.load(Ordering::SeqCst);
        assert!(n < 40, "{n} calls for a 5-minute wait");
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
