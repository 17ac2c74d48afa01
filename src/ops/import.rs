//! `skyplan import service.KEY SERVICE_ID`: record an existing service under a topology key,
//! after proving it is the service the topology describes (same name, nothing that cannot
//! change in place differs). The state records what the API reports; what the topology would
//! still change is left to the next plan, which this prints.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config::config_name;
use crate::ops::{self, ExitStatus, PlanOptions, Workspace};
use crate::plan::diff::{adopted_spec, check_adoptable};
use crate::plan::render;
use crate::printer::Printer;
use crate::state::{LockInfo, LockInfoExt, ServiceRecord};

pub(crate) struct ImportOptions {
    pub lock_timeout: Duration,
    pub parallelism: usize,
    /// `--sql-parallelism`: refresh's SQL sessions at once.
    pub sql_parallelism: usize,
}

pub(crate) async fn import(
    ws: &Workspace,
    address: &str,
    service_id: &str,
    ui: &Printer,
    opts: ImportOptions,
) -> Result<ExitStatus> {
    let Some(key) = address.strip_prefix("service.") else {
        bail!("`{address}` is not a service address: import takes service.<key> (e.g. service.primary)");
    };
    let Some(svc) = ws.topology.services.get(key) else {
        let keys: Vec<&str> = ws.topology.services.keys().map(String::as_str).collect();
        bail!(
            "{} has no [services.{key}] (it has: {}); add it to the topology first",
            ws.file.display(),
            keys.join(", ")
        );
    };
    let lock = ws
        .backend
        .lock(LockInfo::for_this_process(), opts.lock_timeout, ui)
        .await?;
    let result = import_locked(ws, key, svc, service_id, ui, &opts).await;
    let _ = lock.release().await;
    result?;

    // What the topology still asks of it (and of everything else): the next plan.
    let (plan, _) = ops::plan(
        ws,
        &PlanOptions {
            refresh: true,
            destroy: false,
            parallelism: opts.parallelism,
            sql_parallelism: opts.sql_parallelism,
            flags: Default::default(),
        },
        ui,
    )
    .await?;
    ui.info("The next plan:");
    ui.out_text(&render::render(&plan, ui.colors));
    Ok(ExitStatus::Success)
}

/// Under the lock: check the service, record it, and tag it as ours.
async fn import_locked(
    ws: &Workspace,
    key: &str,
    svc: &crate::topology::Service,
    service_id: &str,
    ui: &Printer,
    opts: &ImportOptions,
) -> Result<()> {
    let mut state = ws.read_state().await?;
    if let Some(rec) = state.resources.services.get(key) {
        bail!(
            "service.{key} is already managed (id {}); `skyplan state rm service.{key}` first to import another service under it",
            rec.id
        );
    }
    if let Some((other, _)) = state
        .resources
        .services
        .iter()
        .find(|(_, r)| r.id == service_id)
    {
        bail!("{service_id} is already managed as service.{other}");
    }
    let remote = ops::connect(ws, &state, ui, opts.sql_parallelism).await?;
    let s = remote
        .client
        .get_service(service_id)
        .await?
        .with_context(|| format!("there is no service {service_id} at {}", remote.endpoint))?;
    if s.name != svc.spec.name {
        bail!(
            "service {service_id} is named {}, but service.{key} is named {}: set name = {:?} in the topology (a name cannot change in place)",
            s.name,
            svc.spec.name,
            s.name
        );
    }
    let real = crate::observed::RemoteService::from_api(&s);
    check_adoptable(key, &svc.spec, &real, &state.lineage)?;
    let entries: Vec<String> = remote
        .client
        .get_allowlist(service_id)
        .await?
        .iter()
        .flat_map(|e| e.entries())
        .collect();
    state
        .endpoint
        .get_or_insert_with(|| remote.identity.clone());
    state.resources.services.insert(
        key.to_string(),
        ServiceRecord {
            fqdn: real.fqdn.clone(),
            port: real.port,
            outbound_ips: real.outbound_ips.clone(),
            status: Some(real.status.clone()),
            ..ServiceRecord::new(s.id.clone(), adopted_spec(&svc.spec, &real, &entries))
        },
    );
    let config_id = own_config(&remote, &svc.spec.name, &s).await?;
    if let Some(r) = state.resources.services.get_mut(key) {
        r.config_id = config_id.clone();
    }
    ws.backend.write(&mut state).await?;
    record_what_refresh_sees(ws, &remote, key, config_id.as_deref(), &mut state, ui, opts).await?;
    // Provably ours from now on (tagged once the state that names it is written): this
    // workspace's tags beside the service's own.
    let tags = crate::ownership::claim(&real.tags, &svc.spec.tags, &state.lineage, key);
    if real.tags != tags {
        remote.client.set_tags(service_id, &tags).await?;
    }
    ui.info(&format!(
        "Imported {} ({}) as service.{key} (state serial {}).",
        s.name, s.id, state.serial
    ));
    Ok(())
}

/// Its configuration, if skyplan made one for it (attached, named as skyplan names them):
/// kept, with the values it holds, rather than made a second time.
async fn own_config(
    remote: &crate::remote::Remote,
    name: &str,
    s: &crate::skysql::types::ServiceResponse,
) -> Result<Option<String>> {
    let own_config = config_name(name);
    let attached = s.config_id.clone().filter(|c| !c.is_empty());
    Ok(match attached {
        Some(id) => remote
            .client
            .list_configs()
            .await?
            .into_iter()
            .find(|c| c.id == id && c.name == own_config)
            .map(|c| c.id),
        None => None,
    })
}

/// What refresh sees of it now: the configuration's values, and a link a replica already has
/// from its source (healthy, by GTID), recorded as it is so the next plan neither re-seeds it
/// nor reports its configuration as changed.
async fn record_what_refresh_sees(
    ws: &Workspace,
    remote: &crate::remote::Remote,
    key: &str,
    config_id: Option<&str>,
    state: &mut crate::state::State,
    ui: &Printer,
    opts: &ImportOptions,
) -> Result<()> {
    let observed = crate::refresh::refresh(remote, &ws.topology, state, opts.parallelism).await?;
    let mut changed = false;
    if let (Some(_), Some(values)) = (
        &config_id,
        observed.configs.get(key).and_then(|c| c.values.clone()),
    ) {
        if let Some(r) = state.resources.services.get_mut(key) {
            r.config = values;
            changed = true;
        }
    }
    for kept in crate::plan::drift::kept_links(&ws.topology, state, &observed) {
        ui.info(&format!(
            "replication.{}: kept the link it has from service.{} (healthy, by GTID); not re-seeded.",
            kept.key, kept.link.source
        ));
        kept.record(state);
        changed = true;
    }
    if changed {
        ws.backend.write(state).await?;
    }
    Ok(())
}
