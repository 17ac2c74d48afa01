//! SQL sessions shared by the phases of one refresh: at most one per service. Each phase
//! (replication status, GTIDs and roles, replication users, grants, configuration) asks for
//! the service's session and gives it back when done; the first ask connects. At a WAN
//! distance a new session costs TCP, TLS and the login — about five round trips — so a
//! refresh that opened one per phase paid that five times per service (issue 28).
//!
//! A session that hit a driver or network error is not handed out again (the next ask
//! connects afresh). [`Sessions::close`] ends them all when the refresh is done.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMappedMutexGuard, OwnedMutexGuard};

use super::SqlConn;

type Slot = Arc<AsyncMutex<Option<SqlConn>>>;

/// The sessions of one refresh, by service key.
#[derive(Default)]
pub(crate) struct Sessions {
    by_key: Mutex<HashMap<String, Slot>>,
}

/// A service's session, held by one task at a time (a second ask for the same service waits
/// for the first to give it back, rather than open a second session).
pub(crate) struct Session(OwnedMappedMutexGuard<Option<SqlConn>, SqlConn>);

impl Sessions {
    /// The session of `key`, connecting with `connect` if it has none (or a broken one).
    pub(crate) async fn get<F, Fut, E>(&self, key: &str, mut connect: F) -> Result<Session, E>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<SqlConn, E>>,
    {
        let slot = {
            let mut by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
            by_key.entry(key.to_string()).or_default().clone()
        };
        let mut guard = slot.lock_owned().await;
        // Twice at most: a missing or broken connection is replaced, then handed out.
        loop {
            match OwnedMutexGuard::try_map(guard, |c| c.as_mut().filter(|c| !c.is_broken())) {
                Ok(conn) => return Ok(Session(conn)),
                Err(mut empty) => {
                    *empty = Some(connect().await?);
                    guard = empty;
                }
            }
        }
    }

    /// End every session (each says goodbye to its server; errors do not matter any more).
    pub(crate) async fn close(&self) {
        let slots: Vec<Slot> = {
            let mut by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
            by_key.drain().map(|(_, s)| s).collect()
        };
        let ends = slots.into_iter().map(|slot| async move {
            if let Some(conn) = slot.lock().await.take() {
                let _ = conn.disconnect().await;
            }
        });
        futures::future::join_all(ends).await;
    }
}

impl Deref for Session {
    type Target = SqlConn;
    fn deref(&self) -> &SqlConn {
        &self.0
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut SqlConn {
        &mut self.0
    }
}
