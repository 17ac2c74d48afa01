//! The state during an apply: one in-memory copy behind a mutex, persisted through the
//! backend after every change, so a crash loses at most the step that was running.
//!
//! # Guarantees
//! - Every `update` is written (atomically, compare-and-swap on serial) before it returns.
//! - Ids of services being created and of in-flight operations are written *before* waiting
//!   on them, so a killed apply leaves no orphan and a re-run resumes by polling.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::Mutex;

use crate::state::{State, StateBackend};

#[derive(Clone)]
pub struct StateHandle {
    inner: Arc<Mutex<State>>,
    backend: Arc<dyn StateBackend>,
}

impl StateHandle {
    pub fn new(state: State, backend: Arc<dyn StateBackend>) -> StateHandle {
        StateHandle {
            inner: Arc::new(Mutex::new(state)),
            backend,
        }
    }

    /// A copy of the current state.
    pub async fn snapshot(&self) -> State {
        self.inner.lock().await.clone()
    }

    /// Change the state and persist it before returning.
    pub async fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> Result<R> {
        let mut guard = self.inner.lock().await;
        let mut next = guard.clone();
        let r = f(&mut next);
        if next == *guard {
            return Ok(r);
        }
        self.backend
            .write(&mut next)
            .await
            .with_context(|| format!("saving state to {}", self.backend.describe()))?;
        *guard = next;
        Ok(r)
    }

    /// Read something from the current state.
    pub async fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&*self.inner.lock().await)
    }
}
