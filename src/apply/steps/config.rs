//! Server configuration steps: keep a service's custom configuration (Configuration Manager)
//! as the plan says, hold the running server to it, and restart a service for the variables
//! that take effect only when it starts.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use super::RealSteps;
use crate::apply::executor::ProgressHandle;
use crate::config::ROLE_VARIABLE;
use crate::skysql::types::CreateConfigRequest;

/// What a `config.KEY` step carries out (see `ActionKind::ConfigureService`).
pub(super) struct Configure<'a> {
    pub key: &'a str,
    pub config_id: Option<&'a str>,
    pub name: &'a str,
    pub topology: &'a str,
    pub version: Option<&'a str>,
    pub values: &'a BTreeMap<String, String>,
    pub set: &'a BTreeMap<String, String>,
    pub unset: &'a [String],
    pub attach: bool,
    pub live: &'a BTreeMap<String, String>,
}

pub(super) async fn configure(
    steps: &RealSteps,
    c: &Configure<'_>,
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    let key = c.key;
    let service_id = steps.service_id(key).await?;
    let (id, fresh) = match c.config_id {
        Some(id) => {
            if client.get_config_values(id).await?.is_none() {
                bail!(
                    "the configuration {id} of service.{key} no longer exists (deleted since the plan); nothing was changed: plan again"
                );
            }
            (id.to_string(), false)
        }
        None => (find_or_create(steps, c, &service_id, p).await?, true),
    };
    // Recorded at once: a run stopped from here on finds it again instead of making another.
    steps
        .state
        .update(|s| {
            if let Some(r) = s.resources.services.get_mut(key) {
                r.config_id = Some(id.clone());
            }
        })
        .await?;
    // A new configuration gets every value; an existing one what differs.
    let set = if fresh { c.values } else { c.set };
    for (name, value) in set {
        p.status(&format!("setting {name} = {value} in configuration {id}"));
        client
            .set_config_value(&id, name, value)
            .await
            .with_context(|| {
                format!("setting {name} = {value} in the configuration of service.{key}")
            })?;
    }
    for name in c.unset {
        p.status(&format!("unsetting {name} in configuration {id}"));
        match client.unset_config_value(&id, name).await {
            Err(e) if !e.is_not_found() => {
                return Err(e).with_context(|| {
                    format!("unsetting {name} in the configuration of service.{key}")
                })
            }
            _ => {}
        }
    }
    if c.attach || fresh {
        p.status(&format!("attaching configuration {id}"));
        client
            .attach_config(&service_id, &id)
            .await
            .with_context(|| format!("attaching configuration {id} to service.{key}"))?;
    }
    let live: Vec<(&String, &String)> =
        c.live.iter().filter(|(n, _)| *n != ROLE_VARIABLE).collect();
    if !live.is_empty() {
        let state = steps.state.snapshot().await;
        let mut conn = steps.sql(&state, key).await?;
        for (name, value) in &live {
            p.status(&format!("SET GLOBAL {name} = {value}"));
            conn.set_global(name, value)
                .await
                .with_context(|| format!("setting {name} on service.{key}"))?;
        }
        let _ = conn.disconnect().await;
    }
    steps
        .state
        .update(|s| {
            if let Some(r) = s.resources.services.get_mut(key) {
                r.config_id = Some(id.clone());
                r.config = c.values.clone();
            }
        })
        .await?;
    Ok(format!(
        "configuration {id}: {}",
        c.values
            .iter()
            .map(|(n, v)| format!("{n} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The configuration named `c.name`, made by an earlier run that stopped before recording
/// it, or a new one.
async fn find_or_create(
    steps: &RealSteps,
    c: &Configure<'_>,
    service_id: &str,
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    if let Some(found) = client
        .list_configs()
        .await
        .context("listing the configurations")?
        .into_iter()
        .find(|x| x.name == c.name)
    {
        return Ok(found.id);
    }
    let version = match c.version {
        Some(v) => v.to_string(),
        None => client
            .get_service(service_id)
            .await?
            .and_then(|s| s.version)
            .filter(|v| !v.is_empty())
            .with_context(|| {
                format!(
                    "service.{} reports no version, which its configuration needs: set `version` in the topology",
                    c.key
                )
            })?,
    };
    p.status(&format!("creating configuration {}", c.name));
    let made = client
        .create_config(&CreateConfigRequest {
            name: c.name.to_string(),
            topology_id: c.topology.to_string(),
            version_id: version,
        })
        .await
        .with_context(|| format!("creating the configuration of service.{}", c.key))?;
    Ok(made.id)
}

/// Stop and start the service (its data is kept), then check that `variables` took the
/// values its configuration holds. A replica is read-only again at once (its configuration
/// says so where the cloud keeps roles there; where not, this is the re-fence) and
/// replicates again before the step ends.
pub(super) async fn restart(
    steps: &RealSteps,
    key: &str,
    variables: &[String],
    p: &ProgressHandle,
) -> Result<String> {
    super::service::set_power(steps, key, false, p).await?;
    super::service::set_power(steps, key, true, p).await?;
    let state = steps.state.snapshot().await;
    let mut conn = steps.sql(&state, key).await?;
    if state.resources.replications.contains_key(key) {
        conn.set_read_only(true)
            .await
            .with_context(|| format!("making service.{key} read-only again after its restart"))?;
        super::link::wait_healthy(&mut conn, &steps.opts.poll, steps.opts.healthy_timeout, p)
            .await?;
    }
    let wanted = state
        .resources
        .services
        .get(key)
        .map(|r| r.config.clone())
        .unwrap_or_default();
    let names: Vec<&str> = variables.iter().map(String::as_str).collect();
    let now = conn.global_variables(&names).await?;
    let _ = conn.disconnect().await;
    let off: Vec<String> = variables
        .iter()
        .filter_map(|n| {
            let want = wanted.get(n)?;
            let is = now.get(n)?;
            (!crate::config::same(want, is)).then(|| format!("{n} is {is}, not {want}"))
        })
        .collect();
    if !off.is_empty() {
        bail!(
            "service.{key} restarted, but its configuration did not take effect: {}",
            off.join(", ")
        );
    }
    Ok(format!("restarted ({} in effect)", variables.join(", ")))
}

/// How long a role change waits for the Configuration Manager to take a role it keeps only
/// for durability (the runtime `SET GLOBAL` is what fences and opens).
const ROLE_CONFIG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Keep `key`'s role in its configuration: `read_only` ON (a fenced or replaced primary, a
/// replica) or OFF (a new primary), so that a restart right after a switch keeps the new
/// roles. Only where skyplan keeps roles there (the configuration records `read_only`).
/// Returns whether it changed anything.
pub(super) async fn set_role_in_config(
    steps: &RealSteps,
    key: &str,
    read_only: bool,
    p: &ProgressHandle,
) -> Result<bool> {
    let recorded = steps
        .state
        .read(|s| {
            let r = s.resources.services.get(key)?;
            let id = r.config_id.clone()?;
            let now = r.config.get(ROLE_VARIABLE)?.clone();
            Some((id, now))
        })
        .await;
    let Some((id, now)) = recorded else {
        return Ok(false);
    };
    let value = if read_only { "ON" } else { "OFF" };
    if crate::config::same(&now, value) {
        return Ok(false);
    }
    p.status(&format!(
        "keeping {ROLE_VARIABLE} = {value} in the configuration of service.{key}"
    ));
    tokio::time::timeout(
        ROLE_CONFIG_TIMEOUT,
        steps
            .remote
            .client
            .set_config_value(&id, ROLE_VARIABLE, value),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!("the Configuration Manager did not answer within {ROLE_CONFIG_TIMEOUT:?}")
    })?
    .with_context(|| {
        format!("setting {ROLE_VARIABLE} = {value} in the configuration of service.{key}")
    })?;
    steps
        .state
        .update(|s| {
            if let Some(r) = s.resources.services.get_mut(key) {
                r.config.insert(ROLE_VARIABLE.into(), value.into());
            }
        })
        .await?;
    Ok(true)
}
