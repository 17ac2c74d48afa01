//! Moving a state from one backend to another (`skyplan state migrate`).

use super::backend::StateBackend;
use super::error::StateError;

/// Copy the state in `from` to `to`, lineage and serial unchanged (the content stays
/// byte-identical: every backend stores the same encoding). Refused like a `push` without
/// `--force` if `to` already holds another lineage or a newer serial; migrating again is a
/// no-op. The caller should hold both backends' locks.
pub async fn migrate(from: &dyn StateBackend, to: &dyn StateBackend) -> Result<(), StateError> {
    let state = from
        .read()
        .await?
        .ok_or_else(|| StateError::NothingToMigrate {
            location: from.describe(),
        })?;
    to.push(&state, false).await
}
