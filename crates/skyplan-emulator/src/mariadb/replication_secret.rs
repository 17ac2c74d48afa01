//! The replication user and password of one service acting as a replica.
//!
//! Generated once per instance from the OS RNG and kept in the instance directory (0600), not
//! only in the database: a restore replaces the database, but the replica keeps its identity,
//! so a grant already run on the primary stays valid.

use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;

use super::config::Layout;
use super::{fsutil, MariadbError};

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ReplicationSecret {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for ReplicationSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationSecret")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ReplicationSecret {
    /// Reads the instance's secret, generating and saving it the first time.
    pub(super) fn load_or_create(layout: &Layout) -> Result<ReplicationSecret, MariadbError> {
        let path = &layout.replication_secret;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut lines = text.lines();
                match (lines.next(), lines.next()) {
                    (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
                        Ok(ReplicationSecret {
                            user: user.to_string(),
                            password: password.to_string(),
                        })
                    }
                    _ => Err(MariadbError::Config(format!(
                        "{} is malformed (expected user and password lines); delete it to \
                         generate new replication credentials",
                        path.display()
                    ))),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = ReplicationSecret {
                    user: format!(
                        "skysql_replication_{}",
                        Alphanumeric.sample_string(&mut OsRng, 8).to_lowercase()
                    ),
                    password: Alphanumeric.sample_string(&mut OsRng, 32),
                };
                let text = format!("{}\n{}\n", secret.user, secret.password);
                fsutil::write_private(path, text.as_bytes())?;
                Ok(secret)
            }
            Err(e) => Err(MariadbError::io("reading", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_stable() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let first = ReplicationSecret::load_or_create(&layout).unwrap();
        assert!(first.user.starts_with("skysql_replication_"));
        assert_eq!(first.password.len(), 32);
        assert_eq!(first, ReplicationSecret::load_or_create(&layout).unwrap());
        assert!(!format!("{first:?}").contains(&first.password));
    }
}
