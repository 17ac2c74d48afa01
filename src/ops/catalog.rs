//! The plan-time catalog check: read what SkySQL offers (regions, sizes, topologies,
//! versions) once per run and refuse, with located "did you mean" errors, a topology that asks
//! for something the cloud would refuse at create time — before anything is created.

use std::path::Path;

use anyhow::{Context, Result};

use crate::catalog::{self, Catalog};
use crate::remote::Remote;
use crate::skysql::types::{Region, Size, TopologyOffer, Version};
use crate::topology::Topology;

use super::Workspace;

/// Read the catalog (one listing per kind, every page).
pub(crate) async fn read(remote: &Remote) -> Result<Catalog> {
    let client = &remote.client;
    let regions: Vec<Region> = client.list_offering("regions", &[]).await?;
    let sizes: Vec<Size> = client.list_offering("sizes", &[]).await?;
    let topologies: Vec<TopologyOffer> = client.list_offering("topologies", &[]).await?;
    let versions: Vec<Version> = client.list_offering("versions", &[]).await?;
    let mut c = Catalog::default();
    for r in regions {
        c.regions.entry(r.provider).or_default().insert(r.name);
    }
    for s in sizes {
        c.sizes
            .entry((s.provider, s.architecture))
            .or_default()
            .insert(s.name);
    }
    c.topologies = topologies.into_iter().map(|t| t.name).collect();
    for v in versions {
        let set = c.versions.entry(v.topology).or_default();
        set.insert(v.name);
        if !v.version.is_empty() {
            set.insert(v.version);
        }
    }
    Ok(c)
}

/// Check the workspace's topology against the cloud's catalog (see [`check_file`]), its
/// server variables against the variables refresh read (`config_vars`).
pub(crate) async fn check(
    ws: &Workspace,
    remote: &Remote,
    observed: &crate::observed::Observed,
) -> Result<()> {
    check_file(&ws.file, &ws.source, &ws.topology, remote, Some(observed))
        .await
        .map(|_| ())
}

/// Check `topology` (loaded from `file`, whose text is `text`) against the cloud's catalog;
/// every problem is reported, located in the file. A cloud that publishes no catalog (404) is
/// not checked: `Ok(false)`.
pub(crate) async fn check_file(
    file: &Path,
    text: &str,
    topology: &Topology,
    remote: &Remote,
    observed: Option<&crate::observed::Observed>,
) -> Result<bool> {
    let config_vars = observed.map(|o| &o.config_vars);
    let catalog = match read(remote).await {
        Ok(c) => c,
        Err(e)
            if e.downcast_ref::<crate::skysql::error::SkysqlError>()
                .is_some_and(|e| e.is_not_found()) =>
        {
            tracing::info!("the SkySQL API publishes no catalog here; not checked: {e:#}");
            return Ok(false);
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                "reading the SkySQL catalog (regions, sizes, versions) at {} (nothing was planned; this is an error, not drift)",
                remote.endpoint
            )
            })
        }
    };
    // What refresh saw, against the same catalog: a junk value the API reports is an error
    // naming it, before anything is planned from it.
    if let Some(o) = observed {
        let untrusted = catalog::untrusted_observations(o, &catalog);
        if !untrusted.is_empty() {
            anyhow::bail!(
                "{}; nothing was planned (an answer skyplan cannot trust is an error, not drift)",
                skyplan_api::text::escape_controls(&untrusted.join("; "))
            );
        }
    }
    let mut problems = catalog::check(topology, &catalog);
    // The server variables, against what the Configuration Manager accepts per topology (read
    // here when refresh did not).
    if topology.services.values().any(|s| !s.config.is_empty()) {
        let read;
        let vars = match config_vars {
            Some(v) => v,
            None => {
                read = crate::refresh::config_catalogs(remote, topology).await?;
                &read
            }
        };
        problems.extend(crate::config::check(topology, vars));
    }
    if problems.is_empty() {
        return Ok(true);
    }
    let diags: Vec<crate::topology::Diagnostic> = problems
        .into_iter()
        .map(|p| crate::topology::locate(text, file, &p.key, &p.field, p.message, p.help))
        .collect();
    let n = diags.len();
    Err(anyhow::anyhow!(
        "{}{n} value{} SkySQL does not offer, in {} (nothing was planned or created)",
        crate::topology::Diagnostics::new(diags),
        if n == 1 { "" } else { "s" },
        file.display()
    ))
}
