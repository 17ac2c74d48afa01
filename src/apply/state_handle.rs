//! The state during an apply: one in-memory copy behind a mutex, persisted through the
//! backend after every change, so a crash loses at most the step that was running.
//!
//! # Guarantees
//! - Every `update` is written (atomically, compare-and-swap on serial) before it returns.
//! - Ids of services being created and of in-flight operations are written *before* waiting
//!   on them, so a killed apply leaves no orphan and a re-run resumes by polling.

use std::sync::Arc;

use anyhow::Result;
use tokio::sync::Mutex;

use crate::state::{State, StateBackend};

#[derive(Clone)]
pub struct StateHandle {
    inner: Arc<Mutex<State>>,
    backend: Arc<dyn StateBackend>,
    /// The first write that failed, if one did: then the stored state lacks that change (and
    /// every later one), and the end-of-apply message must say so rather than promise a
    /// complete record.
    failed: Arc<std::sync::Mutex<Option<String>>>,
}

impl StateHandle {
    pub fn new(state: State, backend: Arc<dyn StateBackend>) -> StateHandle {
        StateHandle {
            inner: Arc::new(Mutex::new(state)),
            backend,
            failed: Default::default(),
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
        if let Err(e) = self.backend.write(&mut next).await {
            let e = anyhow::Error::from(e)
                .context(format!("saving state to {}", self.backend.describe()));
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert_with(|| format!("{e:#}"));
            return Err(e);
        }
        *guard = next;
        Ok(r)
    }

    /// Write a state that was never stored (serial 0) as it is: services are tagged with its
    /// lineage, so the lineage must be on disk before the first of them is created, or a run
    /// that cannot save later would leave services no state can claim.
    pub async fn persist_if_new(&self) -> Result<()> {
        let mut guard = self.inner.lock().await;
        if guard.serial == 0 {
            let mut next = guard.clone();
            self.backend.write(&mut next).await.map_err(|e| {
                anyhow::Error::from(e).context(format!(
                    "saving the new state to {}",
                    self.backend.describe()
                ))
            })?;
            *guard = next;
        }
        Ok(())
    }

    /// The first state write of this apply that failed, if any.
    pub fn write_failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Read something from the current state.
    pub async fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&*self.inner.lock().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AllowlistRecord, LocalBackend};

    fn admit(s: &mut State, replica: &str) {
        s.resources.allowlists.insert(
            replica.into(),
            AllowlistRecord {
                on: "primary".into(),
                entries: vec!["10.0.0.1/32".into()],
                ..Default::default()
            },
        );
    }

    #[tokio::test]
    async fn every_update_is_on_disk_when_it_returns_and_a_refused_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let backend: Arc<dyn StateBackend> = Arc::new(LocalBackend::new(&path));
        let handle = StateHandle::new(crate::state::new_state(), backend.clone());
        handle
            .update(|s| s.resources.backups.clear())
            .await
            .unwrap();
        assert!(
            !path.exists(),
            "an update that changes nothing writes nothing"
        );
        handle.update(|s| s.lineage.push_str("-x")).await.unwrap();
        let on_disk = backend.read().await.unwrap().unwrap();
        assert_eq!(on_disk, handle.snapshot().await);
        assert_eq!(on_disk.serial, 1);

        // Another writer replaced the file (another lineage): the next update is refused,
        // and neither the file nor the in-memory state takes the change.
        let other = State {
            serial: 1,
            ..crate::state::new_state()
        };
        let bytes = crate::state::codec::to_json(&other).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let before = handle.snapshot().await;
        let err = handle.update(|s| admit(s, "b")).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("refusing to overwrite"),
            "{err:#}"
        );
        assert_eq!(handle.snapshot().await, before);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), bytes);
    }
}
