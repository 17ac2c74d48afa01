//! `skyplan validate [FILE]... [--remote]`: report every problem in the topology files,
//! located. Offline by default; `--remote` also checks each file against the SkySQL catalog
//! of its endpoint (regions, sizes, versions, topologies).

use std::path::PathBuf;

use anyhow::Result;

use super::common::topology_path;
use crate::ops::ExitStatus;
use crate::printer::Printer;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Topology files (default: skyplan.toml).
    files: Vec<PathBuf>,
    /// Also check regions, sizes, versions and topologies against the catalog of each file's
    /// SkySQL endpoint (needs its API key; for endpoint = "local", the local emulator). Without
    /// it, validate never touches the network.
    #[arg(long)]
    remote: bool,
}

pub(super) fn run(args: Args, ui: &Printer) -> Result<ExitStatus> {
    let files = if args.files.is_empty() {
        vec![topology_path(None)]
    } else {
        args.files
    };
    let mut failed = 0;
    for file in &files {
        match crate::topology::load_with_text(file) {
            Ok((t, text)) if args.remote => {
                match super::common::block_on(remote_check(file, &text, &t, ui)) {
                    Ok(note) => ui.out(&format!("{}: valid ({note})\n", file.display())),
                    Err(e) => {
                        failed += 1;
                        ui.error(&format!("{e:#}"));
                    }
                }
            }
            Ok((t, _)) => {
                let links = t
                    .services
                    .values()
                    .filter(|s| s.replication.is_some())
                    .count();
                ui.out(&format!(
                    "{}: valid ({} services, {} replication links)\n",
                    file.display(),
                    t.services.len(),
                    links
                ));
            }
            Err(diags) => {
                failed += 1;
                ui.info_raw(&diags.to_string());
                ui.error(&format!(
                    "{}: {} problem{} found",
                    file.display(),
                    diags.len(),
                    if diags.len() == 1 { "" } else { "s" }
                ));
            }
        }
    }
    Ok(if failed > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// The catalog check of one valid file: what was checked, for the "valid" line.
async fn remote_check(
    file: &std::path::Path,
    text: &str,
    t: &crate::topology::Topology,
    ui: &Printer,
) -> Result<String> {
    let remote = crate::ops::connect_to(t, ui).await?;
    let checked = crate::ops::catalog::check_file(file, text, t, &remote, None).await?;
    Ok(if checked {
        format!(
            "{} services; regions, sizes, versions and topologies offered by {}",
            t.services.len(),
            remote.endpoint
        )
    } else {
        format!(
            "{} services; {} publishes no catalog, so only the offline checks ran",
            t.services.len(),
            remote.endpoint
        )
    })
}
