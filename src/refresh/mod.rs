//! Refresh: read what really exists into `Observed` — services (one paginated list, then a
//! confirming GET only for ids the list lacks), allowlists, and replication status over SQL.
//! The per-service API calls are concurrent within `parallelism`, the SQL reads within
//! `Remote::sql_parallelism` (64 by default), each service through one session.

use std::time::Duration;

use anyhow::Result;

use crate::observed::{Observed, ObservedService, RemoteService};
use crate::remote::Remote;
use crate::skysql::types::ServiceStatus;
use crate::state::State;
use crate::topology::Topology;

mod allowlists;
mod backups;
mod config;
mod grants;
mod gtids;
mod replication;
mod services;
mod users;

pub use config::catalogs as config_catalogs;

/// The most one refresh may take, every call and read together: a backstop above the
/// per-call deadline (`ClientConfig::call_deadline`) and `lost_after`, so that no mix of slow
/// answers keeps a plan waiting without end.
pub const REFRESH_DEADLINE: Duration = Duration::from_secs(10 * 60);

/// What exists, read through the API and the services' SQL (see [`REFRESH_DEADLINE`]).
pub async fn refresh(
    remote: &Remote,
    topology: &Topology,
    state: &State,
    parallelism: usize,
) -> Result<Observed> {
    let result = tokio::time::timeout(
        REFRESH_DEADLINE,
        refresh_within(remote, topology, state, parallelism),
    )
    .await;
    // Its sessions end with it, whatever it found.
    remote.sessions.close().await;
    match result {
        Ok(observed) => observed,
        Err(_) => anyhow::bail!(
            "refresh did not finish within {} minutes (the SkySQL API or the services answer too slowly); nothing was planned",
            REFRESH_DEADLINE.as_secs() / 60
        ),
    }
}

async fn refresh_within(
    remote: &Remote,
    topology: &Topology,
    state: &State,
    parallelism: usize,
) -> Result<Observed> {
    let parallelism = parallelism.max(1);
    let res = &state.resources;
    let services::Listing {
        listed,
        mut services,
        unmanaged,
    } = services::services(remote, topology, state, parallelism).await?;
    // The endpoints the API reports win over the recorded ones for every SQL read below
    // (observed beats recorded: a wrong fqdn in the state must not make a live database look
    // dead). The plan reports the difference as drift.
    let mut sql_state = state.clone();
    let partial = Observed {
        services: std::mem::take(&mut services),
        ..Observed::default()
    };
    let _ = crate::plan::drift::correct_endpoints(&mut sql_state, &partial);
    services = partial.services;
    let state = &sql_state;

    let present: Vec<(&String, &RemoteService)> = services
        .iter()
        .filter_map(|(k, o)| match o {
            ObservedService::Present(r) => Some((k, r)),
            _ => None,
        })
        .chain(
            unmanaged
                .iter()
                .filter_map(|(k, found)| Some((k, found.first().filter(|_| found.len() == 1)?))),
        )
        .filter(|(_, r)| r.status == ServiceStatus::Ready)
        .collect();

    let allowlists = allowlists::allowlists(remote, &listed, &present, parallelism).await?;
    let ready: std::collections::BTreeSet<&String> = present
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| res.services.contains_key(*k))
        .collect();
    // The SQL reads: credentials first, at the API's bound; then the reads at their own.
    remote
        .prefetch_credentials(state, ready.iter().copied(), parallelism)
        .await;
    let sql = remote.sql_parallelism.max(1);
    let replication::Statuses {
        replication,
        unanswered,
    } = replication::statuses(remote, topology, state, &ready, sql).await?;
    let gtids::Reads {
        gtids,
        read_only,
        unreachable,
    } = gtids::gtids_and_roles(remote, topology, state, &ready, unanswered, sql).await?;
    let replication_users = users::replication_users(remote, topology, state, &ready, sql).await?;
    let can_fence = grants::can_fence(remote, topology, state, &ready).await?;
    let backups::Backups {
        backups,
        foreign_backups,
        foreign_owners_gone,
    } = backups::backups(remote, topology, state, &listed, &unmanaged, parallelism).await?;
    let config_vars = config::catalogs(remote, topology).await?;
    let configs =
        config::configs(remote, topology, state, &config_vars, &ready, parallelism).await?;

    Ok(Observed {
        refreshed: true,
        config_vars,
        configs,
        backups,
        foreign_backups,
        foreign_owners_gone,
        gtids,
        replication_users,
        can_fence,
        read_only,
        unreachable,
        at: Some(time::OffsetDateTime::now_utc()),
        services,
        allowlists,
        replication,
        unmanaged,
    })
}

/// A read that reached a service and was refused (credentials, grants, an unexpected answer):
/// the plan cannot vouch for that service, so the refresh fails naming it (exit 1), never a
/// silent "No changes".
pub(super) fn could_not_check(refused: &[String], what: &str) -> Result<()> {
    if refused.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "refresh could not check {what} of {}: {}; nothing was planned (a check that could not be made is an error, not a pass)",
        if refused.len() == 1 { "a service" } else { "some services" },
        refused.join("; ")
    )
}

/// Whether `e` says a database did not answer at all (a dead server, a network cut).
pub(super) fn nothing_answered(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<crate::sql::SqlError>()
            .is_some_and(|s| s.is_unreachable())
    })
}
