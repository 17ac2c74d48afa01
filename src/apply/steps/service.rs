//! Service steps: create (or adopt), update in place, replace, delete.

use anyhow::{bail, Context, Result};

use super::{now_rfc3339, RealSteps};
use crate::apply::executor::ProgressHandle;
use crate::apply::wait::{self, Poll};
use crate::observed::RemoteService;
use crate::plan::diff::{adopted_spec, cidr32, contains_cidr};
use crate::skysql::types::{AllowListItem, CreateServiceRequest, ServiceResponse, ServiceStatus};
use crate::state::{InFlight, Operation, ServiceRecord, State};
use crate::topology::ServiceSpec;

/// The `POST /provisioning/v1/services` body for a topology service.
pub fn create_request(spec: &ServiceSpec) -> CreateServiceRequest {
    CreateServiceRequest {
        name: Some(spec.name.clone()),
        service_type: Some(spec.service_type.clone()),
        topology: Some(spec.topology.clone()),
        provider: Some(spec.provider.clone()),
        region: Some(spec.region.clone()),
        architecture: Some(spec.architecture.clone()),
        size: Some(spec.size.clone()),
        storage: Some(i64::from(spec.storage)),
        nodes: Some(i64::from(spec.nodes)),
        version: spec.version.clone(),
        ssl_enabled: Some(spec.ssl_enabled),
        volume_type: spec.volume_type.clone(),
        volume_iops: spec.volume_iops.map(i64::from),
        allow_list: Some(
            spec.allow_list
                .iter()
                .map(|ip| AllowListItem {
                    ip: cidr32(ip),
                    comment: Some("skyplan: topology allow_list".into()),
                })
                .collect(),
        ),
        tags: if spec.tags.is_empty() {
            None
        } else {
            Some(spec.tags.clone())
        },
        ..Default::default()
    }
}

/// The tags a service of `key` carries: the user's and this workspace's ownership tags.
async fn owned_tags(
    steps: &RealSteps,
    key: &str,
    user: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    let lineage = steps.state.read(|s| s.lineage.clone()).await;
    crate::ownership::tags(user, &lineage, key)
}

fn in_flight(operation: Operation) -> InFlight {
    InFlight {
        operation,
        started_at: now_rfc3339(),
        operation_id: None,
    }
}

/// Record what a ready service looks like.
fn record_ready(state: &mut State, key: &str, spec: &ServiceSpec, s: &ServiceResponse) {
    let r = RemoteService::from_api(s);
    let prev = state.resources.services.get(key);
    // What the state knows of this very service (not of one it replaces) is kept.
    let same = prev.filter(|p| p.id == s.id);
    let credentials_from = same.and_then(|p| p.credentials_from.clone());
    state.resources.services.insert(
        key.to_string(),
        ServiceRecord {
            id: s.id.clone(),
            spec: spec.clone(),
            fqdn: r.fqdn,
            port: r.port,
            outbound_ips: r.outbound_ips,
            status: Some(r.status),
            credentials_from,
            in_flight: None,
            failed_over_to: same.and_then(|p| p.failed_over_to.clone()),
            role_change: same.and_then(|p| p.role_change.clone()),
            replace_requested: same.and_then(|p| p.replace_requested.clone()),
            last_seen: same.and_then(|p| p.last_seen.clone()),
            // The configuration outlives a replace: the new service gets it attached.
            config_id: prev.and_then(|p| p.config_id.clone()),
            config: prev.map(|p| p.config.clone()).unwrap_or_default(),
        },
    );
}

/// Poll the service until it settles: `Ok` with the service once it is `ready`, `stopped` or `failed`;
/// an error when it disappears. An interrupt stops the waiting (the service is in the state).
async fn wait_settled(
    steps: &RealSteps,
    key: &str,
    id: &str,
    p: &ProgressHandle,
) -> Result<ServiceResponse> {
    let client = &steps.remote.client;
    let what = format!("waiting for service.{key} to be ready");
    let poll = wait::until(&steps.opts.poll, p, &what, || async {
        let Some(s) = p.call(client.get_service(id)).await? else {
            bail!("service.{key} ({id}) disappeared while waiting for it to be ready");
        };
        match s.status {
            // Stopped is settled too: a service kept stopped takes tag and allowlist changes.
            ServiceStatus::Ready | ServiceStatus::Failed | ServiceStatus::Stopped => {
                Ok(Poll::Done(s))
            }
            other => Ok(Poll::Pending(other.to_string())),
        }
    });
    p.interruptible(&what, poll).await
}

fn failed_error(key: &str, s: &ServiceResponse) -> anyhow::Error {
    anyhow::anyhow!(
        "service.{key} ({}, {}) ended in status failed{}",
        s.name,
        s.id,
        errors_of(s)
    )
}

/// Poll the service until it is `ready`; fail on `failed` or when it disappears.
pub(super) async fn wait_ready(
    steps: &RealSteps,
    key: &str,
    id: &str,
    p: &ProgressHandle,
) -> Result<ServiceResponse> {
    let s = wait_settled(steps, key, id, p).await?;
    if s.status == ServiceStatus::Failed {
        return Err(failed_error(key, &s));
    }
    Ok(s)
}

/// Record that the service ended `failed`: the operation is over (nothing to resume), and
/// the next plan sees the failure and proposes to replace the service.
async fn record_failed(steps: &RealSteps, key: &str, id: &str) -> Result<()> {
    steps
        .state
        .update(|s| {
            if let Some(r) = s.resources.services.get_mut(key).filter(|r| r.id == id) {
                r.status = Some(ServiceStatus::Failed);
                r.in_flight = None;
            }
        })
        .await
}

fn errors_of(s: &ServiceResponse) -> String {
    if s.errors.is_empty() {
        String::new()
    } else {
        format!(": {}", s.errors.join("; "))
    }
}

pub(super) async fn wait_gone(
    steps: &RealSteps,
    key: &str,
    id: &str,
    p: &ProgressHandle,
) -> Result<()> {
    let client = &steps.remote.client;
    let what = format!("waiting for service.{key} to be deleted");
    let poll = wait::until(&steps.opts.poll, p, &what, || async {
        Ok(match p.call(client.get_service(id)).await? {
            None => Poll::Done(()),
            Some(s) => Poll::Pending(s.status.as_str().to_string()),
        })
    });
    p.interruptible(&what, poll).await
}

pub(super) async fn create(
    steps: &RealSteps,
    key: &str,
    spec: &ServiceSpec,
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    // Resume a create that a previous run started (its id was saved before waiting).
    let resumed = steps
        .state
        .read(|s| {
            s.resources.services.get(key).and_then(|r| {
                r.in_flight
                    .as_ref()
                    .filter(|f| f.operation == Operation::Create)
                    .map(|_| r.id.clone())
            })
        })
        .await;
    let (id, note) = match resumed {
        Some(id) if client.get_service(&id).await?.is_some() => {
            (id, "resumed an interrupted create")
        }
        _ => {
            // Adopt a service that already has this name instead of creating a duplicate.
            // The list is taken once per apply; a match is confirmed by a GET, so a service
            // this apply deleted (a replace) is not adopted.
            let existing = match steps.existing_service_named(&spec.name).await? {
                Some(id) => client.get_service(&id).await?,
                None => None,
            };
            match existing {
                Some(s)
                    if !matches!(s.status, ServiceStatus::Failed | ServiceStatus::PendingDelete) =>
                {
                    check_adoptable(steps, key, spec, &s).await?;
                    // Only our own interrupted create (it carries our tags, they are in the
                    // create request): any other appeared after the plan, which would have
                    // shown it as an adoption, so apply does not do what the plan did not say.
                    if s.tags.as_ref().and_then(crate::ownership::owner).is_none() {
                        bail!(
                            "service.{key}: a service named {} ({}) appeared after the plan was made, so the plan did not show it; service.{key} was not created and the existing one was not touched. Run `skyplan plan` again: it shows the service as an adoption",
                            s.name,
                            s.id
                        );
                    }
                    (s.id, "adopted an existing service with this name")
                }
                Some(s) => bail!(
                    "a service named {} already exists in status {} ({}); delete it or rename the service",
                    spec.name,
                    s.status.as_str(),
                    s.id
                ),
                None => {
                    p.status("creating");
                    let mut request = create_request(spec);
                    request.tags = Some(owned_tags(steps, key, &spec.tags).await);
                    let s = client
                        .create_service(&request)
                        .await
                        .with_context(|| format!("creating service.{key} ({})", spec.name))?;
                    (s.id, "")
                }
            }
        }
    };
    // Saved before waiting: a crash from here on leaves a state that knows the service.
    let id2 = id.clone();
    steps
        .state
        .update(|s| {
            let prev = s.resources.services.remove(key);
            let (config_id, config) = prev.map(|p| (p.config_id, p.config)).unwrap_or_default();
            s.resources.services.insert(
                key.to_string(),
                ServiceRecord {
                    id: id2,
                    spec: spec.clone(),
                    fqdn: None,
                    port: None,
                    outbound_ips: vec![],
                    status: Some(ServiceStatus::PendingCreate),
                    credentials_from: None,
                    failed_over_to: None,
                    role_change: None,
                    replace_requested: None,
                    last_seen: None,
                    in_flight: Some(in_flight(Operation::Create)),
                    config_id,
                    config,
                },
            );
            // A new service holds no seeded data and no replication yet.
            forget_links_of(s, key);
        })
        .await?;
    let settled = wait_settled(steps, key, &id, p).await?;
    if settled.status == ServiceStatus::Failed {
        record_failed(steps, key, &id).await?;
        return Err(failed_error(key, &settled));
    }
    steps
        .state
        .update(|s| record_ready(s, key, spec, &settled))
        .await?;
    Ok(note.to_string())
}

/// Carry out a planned adoption: check the service is still the one the plan showed, record it
/// as the API reports it (never the file's values), then change in place what the plan said.
pub(super) async fn adopt(
    steps: &RealSteps,
    key: &str,
    id: &str,
    planned_from: &ServiceSpec,
    to: &ServiceSpec,
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    let Some(s) = client.get_service(id).await? else {
        bail!("service.{key}: the service {id} this plan adopts no longer exists; run `skyplan plan` again");
    };
    if s.name != to.name {
        bail!(
            "service.{key}: the service {id} is now named {}, not {}; run `skyplan plan` again",
            s.name,
            to.name
        );
    }
    check_adoptable(steps, key, to, &s).await?;
    let s = if s.status == ServiceStatus::Ready {
        s
    } else {
        wait_ready(steps, key, id, p).await?
    };
    let entries = steps.allowlist_entries(id).await?;
    let now = adopted_spec(to, &RemoteService::from_api(&s), &entries);
    // Allowlist entries that appeared since the plan only mean fewer to add (a service still
    // being created shows none yet); anything else that moved is a plan that would lie.
    let fields: Vec<&str> = crate::plan::diff::changed_fields(planned_from, &now)
        .into_iter()
        .filter(|f| *f != "allow_list")
        .collect();
    if !fields.is_empty() {
        bail!(
            "service.{key}: {} ({id}) changed since the plan was made ({}); run `skyplan plan` again and review what it shows",
            to.name,
            fields.join(", ")
        );
    }
    steps
        .state
        .update(|st| {
            record_ready(st, key, &now, &s);
            // Whatever an earlier state said about links of this key is not about this service.
            forget_links_of(st, key);
        })
        .await?;
    // From now on it is provably ours: tagged with this workspace (its other tags kept).
    let lineage = steps.state.read(|st| st.lineage.clone()).await;
    let theirs = s.tags.clone().unwrap_or_default();
    let tags = crate::ownership::claim(&theirs, &to.tags, &lineage, key);
    if s.tags.as_ref() != Some(&tags) {
        client.set_tags(id, &tags).await?;
    }
    if &now == to {
        return Ok("adopted an existing service with this name".into());
    }
    let done = update(steps, key, &now, to, p).await?;
    Ok(format!(
        "adopted an existing service with this name; {done}"
    ))
}

/// The plan's adoption rule ([`crate::plan::diff::check_adoptable`]: not another workspace's,
/// nothing immutable differs), checked again where the service may have changed since.
async fn check_adoptable(
    steps: &RealSteps,
    key: &str,
    spec: &ServiceSpec,
    s: &ServiceResponse,
) -> Result<()> {
    let lineage = steps.state.read(|st| st.lineage.clone()).await;
    Ok(crate::plan::diff::check_adoptable(
        key,
        spec,
        &RemoteService::from_api(s),
        &lineage,
    )?)
}

/// A service that is new (or was wiped) has no restore or replication of its own any more.
/// The backup recorded to seed it stays: it is a backup of the source, as good for the new
/// service, and the plan may already have recorded it for this very service (a replace runs
/// beside the backup it will be seeded from).
fn forget_links_of(s: &mut State, key: &str) {
    s.resources.restores.remove(key);
    s.resources.replications.remove(key);
    s.resources.allowlists.remove(key);
}

pub(super) async fn update(
    steps: &RealSteps,
    key: &str,
    from: &ServiceSpec,
    to: &ServiceSpec,
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    let id = steps.service_id(key).await?;
    let mut done = Vec::new();
    if from.size != to.size {
        p.status(&format!("resizing to {}", to.size));
        client.set_size(&id, &to.size).await?;
        record_accepted(steps, key, |spec| spec.size = to.size.clone()).await?;
        wait_ready(steps, key, &id, p).await?;
        done.push("size");
    }
    if from.nodes != to.nodes {
        p.status(&format!("setting nodes to {}", to.nodes));
        client.set_nodes(&id, i64::from(to.nodes)).await?;
        record_accepted(steps, key, |spec| spec.nodes = to.nodes).await?;
        wait_ready(steps, key, &id, p).await?;
        done.push("nodes");
    }
    if from.storage != to.storage {
        p.status(&format!("growing storage to {} GB", to.storage));
        client
            .set_storage(
                &id,
                &crate::skysql::types::SetStorageRequest {
                    size: Some(i64::from(to.storage)),
                    ..Default::default()
                },
            )
            .await?;
        record_accepted(steps, key, |spec| spec.storage = to.storage).await?;
        wait_ready(steps, key, &id, p).await?;
        done.push("storage");
    }
    if from.allow_list != to.allow_list {
        let present: Vec<String> = steps.allowlist_entries(&id).await?;
        // `1.2.3.4` listed by the cloud is the entry `1.2.3.4/32`.
        for ip in to.allow_list.iter().map(|i| cidr32(i)) {
            if !contains_cidr(&present, &ip) {
                client.add_allowlist_entry(&id, &ip).await?;
            }
        }
        for ip in from
            .allow_list
            .iter()
            .filter(|i| !to.allow_list.contains(i))
            .map(|i| cidr32(i))
        {
            // Delete the entry as the cloud spells it.
            if let Some(existing) = present
                .iter()
                .find(|e| contains_cidr(std::slice::from_ref(e), &ip))
            {
                client.delete_allowlist_entry(&id, existing).await?;
            }
        }
        done.push("allow_list");
    }
    if from.tags != to.tags {
        // PATCH replaces every tag: the ownership tags go with the user's.
        client
            .set_tags(&id, &owned_tags(steps, key, &to.tags).await)
            .await?;
        done.push("tags");
    }
    let ready = wait_ready(steps, key, &id, p).await?;
    steps
        .state
        .update(|s| record_ready(s, key, to, &ready))
        .await?;
    Ok(format!("updated {}", done.join(", ")))
}

/// Start (`active`) or stop the service, then wait until it is `ready` or `stopped`. A service
/// already there (started by hand since the plan) is left as it is.
pub(super) async fn set_power(
    steps: &RealSteps,
    key: &str,
    active: bool,
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    let id = steps.service_id(key).await?;
    let (want, pending, verb) = if active {
        (ServiceStatus::Ready, ServiceStatus::PendingStart, "start")
    } else {
        (ServiceStatus::Stopped, ServiceStatus::PendingStop, "stop")
    };
    // A stop or start begun elsewhere settles first.
    let s = wait_settled(steps, key, &id, p).await?;
    if s.status == ServiceStatus::Failed {
        return Err(failed_error(key, &s));
    }
    if s.status == want {
        return Ok(format!("already {want}"));
    }
    p.status(&format!("{verb}ing"));
    let sent = if active {
        client.start_service(&id).await
    } else {
        client.stop_service(&id).await
    };
    if let Err(e) = sent {
        // The request may have gone through with its answer lost: the status says.
        let now = client.get_service(&id).await?.map(|s| s.status);
        if now != Some(pending.clone()) && now != Some(want.clone()) {
            return Err(anyhow::Error::new(e).context(format!("{verb}ing service.{key}")));
        }
    }
    let what = format!("waiting for service.{key} to be {want}");
    let poll = wait::until(&steps.opts.poll, p, &what, || async {
        let Some(s) = p.call(client.get_service(&id)).await? else {
            bail!("service.{key} ({id}) disappeared while waiting for it to be {want}");
        };
        if s.status == ServiceStatus::Failed {
            return Err(failed_error(key, &s));
        }
        Ok(if s.status == want {
            Poll::Done(())
        } else {
            Poll::Pending(s.status.to_string())
        })
    });
    p.interruptible(&what, poll).await?;
    steps
        .state
        .update(|s| {
            if let Some(r) = s.resources.services.get_mut(key).filter(|r| r.id == id) {
                r.status = Some(want.clone());
            }
        })
        .await?;
    Ok(want.to_string())
}

/// Record a change the API accepted, before waiting for it: a run stopped during the wait
/// (interrupt or kill) leaves a state that already says what the service is becoming, with
/// the modification in flight for the next run to wait for; never a stale spec that the next
/// plan would report as changed outside skyplan.
async fn record_accepted(
    steps: &RealSteps,
    key: &str,
    change: impl FnOnce(&mut ServiceSpec),
) -> Result<()> {
    steps
        .state
        .update(|s| {
            if let Some(r) = s.resources.services.get_mut(key) {
                change(&mut r.spec);
                r.in_flight = Some(in_flight(Operation::Update));
            }
        })
        .await
}

pub(super) async fn delete(steps: &RealSteps, key: &str, p: &ProgressHandle) -> Result<String> {
    delete_keeping(steps, key, false, p).await
}

/// Delete the service; `keep_seed`: keep the backup recorded to seed its key (a replace).
async fn delete_keeping(
    steps: &RealSteps,
    key: &str,
    keep_seed: bool,
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    let Some((id, config_id)) = steps
        .state
        .read(|s| {
            s.resources
                .services
                .get(key)
                .map(|r| (r.id.clone(), r.config_id.clone()))
        })
        .await
    else {
        return Ok("already gone from the state".into());
    };
    steps
        .state
        .update(|s| {
            if let Some(r) = s.resources.services.get_mut(key) {
                r.in_flight = Some(in_flight(Operation::Delete));
            }
        })
        .await?;
    p.status("deleting");
    if client.get_service(&id).await?.is_some() {
        client
            .delete_service(&id)
            .await
            .with_context(|| format!("deleting service.{key}"))?;
    }
    wait_gone(steps, key, &id, p).await?;
    // Its configuration goes with it; a replaced service keeps it (attached to the new one).
    if let (Some(config_id), false) = (&config_id, keep_seed) {
        p.status(&format!("deleting its configuration {config_id}"));
        client
            .delete_config(config_id)
            .await
            .with_context(|| format!("deleting the configuration {config_id} of service.{key}"))?;
    }
    steps
        .state
        .update(|s| forget_service(s, key, keep_seed))
        .await?;
    Ok(String::new())
}

pub(super) async fn replace(
    steps: &RealSteps,
    key: &str,
    to: &ServiceSpec,
    p: &ProgressHandle,
) -> Result<String> {
    delete_keeping(steps, key, true, p).await?;
    create(steps, key, to, p).await?;
    Ok("replaced".into())
}

/// What a killed run left in flight on a service, settled before planning: the plan is made
/// from settled services only (a service still being created would otherwise look done).
impl RealSteps {
    /// Wait for every service create or delete recorded in flight and record how it ended:
    /// a create that finished is recorded ready (with its endpoint), one that failed is
    /// recorded failed (the plan then proposes a replacement), one whose service is gone is
    /// forgotten (the plan creates it again); a finished delete is forgotten. Nothing is
    /// started again. Returns one line per resumed operation.
    pub async fn resume_service_operations(&self, p: &ProgressHandle) -> Result<Vec<String>> {
        let pending: Vec<(String, String, Operation, ServiceSpec)> = self
            .state
            .read(|s| {
                s.resources
                    .services
                    .iter()
                    .filter_map(|(k, r)| {
                        let op = r.in_flight.as_ref()?.operation;
                        Some((k.clone(), r.id.clone(), op, r.spec.clone()))
                    })
                    .collect()
            })
            .await;
        let resumed = pending.iter().map(|(key, id, op, spec)| async move {
            self.resume_one(key, id, *op, spec, p)
                .await
                .with_context(|| format!("resuming the {op} of service.{key} ({id})"))
        });
        futures::future::try_join_all(resumed).await
    }

    async fn resume_one(
        &self,
        key: &str,
        id: &str,
        op: Operation,
        spec: &ServiceSpec,
        p: &ProgressHandle,
    ) -> Result<String> {
        let client = &self.remote.client;
        match op {
            Operation::Delete => {
                wait_gone(self, key, id, p).await?;
                self.state.update(|s| forget_service(s, key, false)).await?;
                Ok(format!("service.{key}: the interrupted delete finished"))
            }
            _ if client.get_service(id).await?.is_none() => {
                // Created and then removed (or never finished): plan it afresh.
                self.state
                    .update(|s| {
                        if s.resources.services.get(key).is_some_and(|r| r.id == id) {
                            forget_service(s, key, false);
                        }
                    })
                    .await?;
                Ok(format!(
                    "service.{key}: {id} no longer exists; it will be planned again"
                ))
            }
            _ => {
                p.status(&format!(
                    "waiting for service.{key} ({op} started by an interrupted run)"
                ));
                let settled = wait_settled(self, key, id, p).await?;
                if settled.status == ServiceStatus::Failed {
                    record_failed(self, key, id).await?;
                    return Ok(format!(
                        "service.{key}: the interrupted {op} ended failed{}",
                        errors_of(&settled)
                    ));
                }
                self.state
                    .update(|s| record_ready(s, key, spec, &settled))
                    .await?;
                Ok(format!(
                    "service.{key}: the interrupted {op} finished (ready)"
                ))
            }
        }
    }
}

/// Remove a service and everything skyplan recorded about it.
fn forget_service(s: &mut State, key: &str, keep_seed: bool) {
    s.resources.services.remove(key);
    forget_links_of(s, key);
    if !keep_seed {
        s.resources.backups.remove(key);
    }
    // Entries that admitted this service elsewhere are now meaningless; entries others
    // had on it are gone with it.
    s.resources.allowlists.retain(|_, a| a.on != key);
    for a in s.resources.allowlists.values_mut() {
        a.earlier.retain(|g| g.on != key);
    }
}
