//! Taking and releasing the state lock around a piece of work: one place, so every command
//! that writes the state reports a taken-over stale lock the same way and releases the lock
//! whatever the work returned.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;

use crate::printer::Printer;
use crate::state::{LockInfo, LockInfoExt, StateBackend};

/// Run `work` holding `backend`'s lock, waiting up to `timeout` for it.
///
/// `work` is a future, so it does nothing until it is polled here, after the lock is held.
/// The lock is released when `work` ends, with an error or not; a failed release is printed,
/// not returned, so it never hides the work's own result. (If the process dies instead, the
/// next run finds the lock stale: its pid is gone.)
pub(crate) async fn with_lock<T>(
    backend: &dyn StateBackend,
    timeout: Duration,
    ui: &Printer,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let lock = backend
        .lock(LockInfo::for_this_process(), timeout, ui)
        .await?;
    if let Some(old) = lock.took_over() {
        ui.info(&format!(
            "Note: took over a stale lock of pid {} on {} (that process is gone).",
            old.pid, old.host
        ));
    }
    let result = work.await;
    if let Err(e) = lock.release().await {
        ui.error(&format!(
            "releasing the state lock of {}: {e}",
            backend.describe()
        ));
    }
    result
}
