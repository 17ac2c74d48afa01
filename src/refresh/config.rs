//! Refresh's reading of server configuration: the variables the Configuration Manager accepts
//! per topology (once per topology of the file), each managed service's configuration values
//! (through the API) and the running values of the variables that matter (one SQL read per
//! service that declares or records any).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::config::{self, Variables, ROLE_VARIABLE};
use crate::observed::ObservedConfig;
use crate::remote::Remote;
use crate::state::State;
use crate::topology::Topology;

/// The catalog of variables by topology. A cloud that publishes none for a topology (a 4xx
/// other than authentication and rate limits) has none; any other failure fails the refresh:
/// a check that could not look must not pass.
pub async fn catalogs(remote: &Remote, topology: &Topology) -> Result<BTreeMap<String, Variables>> {
    let names: BTreeSet<&String> = topology
        .services
        .values()
        .map(|s| &s.spec.topology)
        .collect();
    let mut out = BTreeMap::new();
    for name in names {
        match remote.client.list_config_keys(name).await {
            Ok(keys) => {
                out.insert(
                    name.clone(),
                    keys.iter()
                        .map(|k| (k.name.clone(), config::Variable::from(k)))
                        .collect(),
                );
            }
            Err(e) if e.is_not_offered() => {
                tracing::info!("no configurable variables for topology {name}: {e}");
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "refresh failed: cannot read the configurable variables of topology {name} (GET /provisioning/v1/topologies/{name}/configs; nothing was planned; this is an error, not drift)"
                    )
                })
            }
        }
    }
    Ok(out)
}

/// Each managed, ready service's configuration as the cloud and its server have it.
pub(super) async fn configs(
    remote: &Remote,
    topology: &Topology,
    state: &State,
    catalogs: &BTreeMap<String, Variables>,
    ready: &BTreeSet<&String>,
    parallelism: usize,
) -> Result<BTreeMap<String, ObservedConfig>> {
    // (key, its recorded configuration, the variables to read on the server, its catalog)
    type Wanted<'a> = (
        &'a String,
        Option<String>,
        Vec<String>,
        Option<&'a Variables>,
    );
    let wanted: Vec<Wanted> = ready
        .iter()
        .filter_map(|key| {
            let rec = state.resources.services.get(*key)?;
            let svc = topology.services.get(*key);
            let vars = svc.and_then(|s| catalogs.get(&s.spec.topology));
            let mut names: BTreeSet<String> = rec.config.keys().cloned().collect();
            if let Some(s) = svc {
                names.extend(config::desired(s, vars).into_keys());
            }
            names.remove(ROLE_VARIABLE);
            (rec.config_id.is_some() || !names.is_empty()).then(|| {
                (
                    *key,
                    rec.config_id.clone(),
                    names.into_iter().collect(),
                    vars,
                )
            })
        })
        .collect();
    stream::iter(wanted)
        .map(|(key, config_id, names, vars)| async move {
            let values = match &config_id {
                None => None,
                Some(id) => remote
                    .client
                    .get_config_values(id)
                    .await
                    .with_context(|| format!("reading the configuration {id} of service.{key}"))?
                    .map(|values| by_name(values, vars)),
            };
            let running = if names.is_empty() {
                BTreeMap::new()
            } else {
                let read = async {
                    let mut conn = remote.session(state, key).await?;
                    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                    let v = conn.global_variables(&refs).await?;
                    drop(conn);
                    Ok::<_, anyhow::Error>(v)
                };
                // A database that does not answer is reported by the GTID reads; its running
                // values are then unknown, and nothing is planned from them. One that answers
                // and refuses cannot be vouched for: an error.
                match read.await {
                    Ok(v) => v,
                    Err(e) if super::nothing_answered(&e) => {
                        tracing::info!("cannot read the server variables of service.{key}: {e:#}");
                        BTreeMap::new()
                    }
                    Err(e) => {
                        return Err(e.context(format!(
                            "refresh could not check the server variables of service.{key}; nothing was planned"
                        )))
                    }
                }
            };
            Ok::<_, anyhow::Error>((key.clone(), ObservedConfig { values, running }))
        })
        .buffer_unordered(parallelism)
        .try_collect()
        .await
}

/// Values by variable name: the API keys them by config key id.
fn by_name(
    values: Vec<crate::skysql::types::ConfigValue>,
    vars: Option<&Variables>,
) -> BTreeMap<String, String> {
    let names: BTreeMap<&str, &str> = vars
        .into_iter()
        .flat_map(|v| v.values())
        .map(|v| (v.id.as_str(), v.name.as_str()))
        .collect();
    values
        .into_iter()
        .map(|v| {
            let name = names
                .get(v.config_key_id.as_str())
                .map_or(v.config_key_id.clone(), |n| (*n).to_string());
            (name, v.selected_values.join(","))
        })
        .collect()
}
