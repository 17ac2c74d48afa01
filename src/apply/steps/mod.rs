//! The real steps: each plan action carried out against the SkySQL API and the services' SQL
//! endpoints, with state saved before every wait and after every change.

mod catch_up;
mod config;
mod link;
mod roles;
mod seed;
mod service;

pub use service::create_request;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::executor::{ProgressHandle, StepError, Steps};
use super::state_handle::StateHandle;
use super::wait::PollPolicy;
use crate::plan::{Action, ActionKind};
use crate::remote::Remote;
use crate::topology::Topology;

/// Tunables of the real steps.
#[derive(Debug, Clone)]
pub struct StepOptions {
    pub poll: PollPolicy,
    /// How long replication may take to become healthy after it is started.
    pub healthy_timeout: Duration,
    /// Binlog retention of the source: `latest-backup` older than this cannot seed a replica.
    pub binlog_retention: Duration,
}

impl Default for StepOptions {
    fn default() -> Self {
        StepOptions {
            poll: PollPolicy::default(),
            healthy_timeout: Duration::from_secs(300),
            binlog_retention: crate::plan::seed::DEFAULT_BINLOG_RETENTION,
        }
    }
}

pub struct RealSteps {
    pub remote: Arc<Remote>,
    pub topology: Topology,
    pub state: StateHandle,
    pub opts: StepOptions,
    /// (name, id) of every service that existed when the first create looked: listed once
    /// per apply, not once per create (a big account has many pages).
    existing: tokio::sync::OnceCell<Vec<(String, String)>>,
}

#[async_trait]
impl Steps for RealSteps {
    async fn run(&self, action: &Action, p: &ProgressHandle) -> Result<String, StepError> {
        let r = match &action.kind {
            ActionKind::CreateService { key, spec } => service::create(self, key, spec, p).await,
            ActionKind::AdoptService {
                key,
                service_id,
                from,
                to,
            } => service::adopt(self, key, service_id, from, to, p).await,
            ActionKind::UpdateService { key, from, to } => {
                service::update(self, key, from, to, p).await
            }
            ActionKind::ReplaceService { key, to, .. } => service::replace(self, key, to, p).await,
            ActionKind::DeleteService { key, .. } => service::delete(self, key, p).await,
            ActionKind::Backup {
                source,
                seed,
                replicas,
            } => seed::backup(self, source, seed, replicas, p).await,
            ActionKind::Restore { source, replica } => {
                seed::restore(self, source, replica, p).await
            }
            ActionKind::AllowlistGrant { source, replica } => {
                link::grant(self, source, replica, p).await
            }
            ActionKind::AllowlistRevoke {
                source,
                replica,
                entries,
            } => link::revoke(self, source, replica, entries, p).await,
            ActionKind::Replicate {
                source,
                replica,
                ssl,
                mode,
            } => link::replicate(self, source, replica, *ssl, *mode, p).await,
            ActionKind::StopReplication { source, replica } => {
                link::stop(self, source, replica, p).await
            }
            ActionKind::DropReplicationUser { on, user } => {
                link::drop_user(self, on, user, p).await
            }
            ActionKind::SetRole { key, writable } => roles::set_role(self, key, *writable, p).await,
            ActionKind::SetPower { key, active } => service::set_power(self, key, *active, p).await,
            ActionKind::Switchover {
                old,
                new,
                ssl,
                max_lag_seconds,
            } => roles::switchover(self, old, new, *ssl, *max_lag_seconds, p).await,
            ActionKind::Failover {
                old,
                new,
                old_gone,
                catch_up_from,
            } => roles::failover(self, old, new, *old_gone, catch_up_from.as_deref(), p).await,
            ActionKind::ConfigureService {
                key,
                config_id,
                name,
                topology,
                version,
                values,
                set,
                unset,
                attach,
                live,
            } => {
                let c = config::Configure {
                    key,
                    config_id: config_id.as_deref(),
                    name,
                    topology,
                    version: version.as_deref(),
                    values,
                    set,
                    unset,
                    attach: *attach,
                    live,
                };
                config::configure(self, &c, p).await
            }
            ActionKind::RestartService { key, variables } => {
                config::restart(self, key, variables, p).await
            }
        };
        r.map_err(StepError::from)
    }
}

impl RealSteps {
    pub fn new(
        remote: Arc<Remote>,
        topology: Topology,
        state: StateHandle,
        opts: StepOptions,
    ) -> RealSteps {
        RealSteps {
            remote,
            topology,
            state,
            opts,
            existing: tokio::sync::OnceCell::new(),
        }
    }

    /// The id of a service named `name` that existed before this apply created anything.
    pub(crate) async fn existing_service_named(
        &self,
        name: &str,
    ) -> anyhow::Result<Option<String>> {
        let all = self
            .existing
            .get_or_try_init(|| async {
                let list = self.remote.client.list_services().await?;
                Ok::<_, anyhow::Error>(list.into_iter().map(|s| (s.name, s.id)).collect())
            })
            .await?;
        Ok(all
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id.clone()))
    }

    /// The SkySQL id of service `key`, as recorded in the state.
    /// A SQL session on service `key` with the credentials that work there; an error names it.
    pub(crate) async fn sql(
        &self,
        state: &crate::state::State,
        key: &str,
    ) -> anyhow::Result<crate::sql::SqlConn> {
        use anyhow::Context;
        self.remote
            .sql(state, key)
            .await
            .with_context(|| format!("connecting to service.{key}"))
    }

    pub(crate) async fn service_id(&self, key: &str) -> anyhow::Result<String> {
        use anyhow::Context;
        self.state
            .read(|s| s.resources.services.get(key).map(|r| r.id.clone()))
            .await
            .with_context(|| format!("service.{key} is not in the state"))
    }

    /// The entries on a service's allowlist, as the API spells them.
    pub(crate) async fn allowlist_entries(&self, service_id: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .remote
            .client
            .get_allowlist(service_id)
            .await?
            .iter()
            .flat_map(|e| e.entries())
            .collect())
    }
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
