//! `skyplan validate [FILE]...`: report every problem in the topology files, located.

use std::path::PathBuf;

use anyhow::Result;

use super::common::topology_path;
use super::{EXIT_ERROR, EXIT_OK};
use crate::printer::Printer;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Topology files (default: skyplan.toml).
    files: Vec<PathBuf>,
}

pub(super) fn run(args: Args, ui: &Printer) -> Result<i32> {
    let files = if args.files.is_empty() {
        vec![topology_path(None)]
    } else {
        args.files
    };
    let mut failed = 0;
    for file in &files {
        match crate::topology::load(file) {
            Ok(t) => {
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
    Ok(if failed > 0 { EXIT_ERROR } else { EXIT_OK })
}
