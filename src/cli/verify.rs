//! `skyplan verify`: compare every table between each source and its replica (read-only).

use std::path::PathBuf;

use anyhow::Result;

use super::common::{parse_duration, topology_path};
use crate::ops::verify::{VerifyOptions, VerifyOutcome};
use crate::ops::ExitStatus;
use crate::printer::Printer;
use skyplan_core::verify::{Outcome, VerifyReport};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Topology file (default: skyplan.toml).
    file: Option<PathBuf>,
    /// Print the result as JSON (format: schemas/verify.schema.json).
    #[arg(long)]
    json: bool,
    /// How long to wait, each time, for a replica to apply its source's position (e.g. 30s, 5m).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    timeout: std::time::Duration,
    /// Use this state backend instead of the topology's (a path or mysql:// URL).
    #[arg(long)]
    state_backend: Option<String>,
}

/// Exit 0 when every table is identical, 2 when one differs, 1 on error (or when a table could
/// not be compared at one position: neither identical nor different).
pub(super) async fn run(args: Args, ui: &Printer) -> Result<ExitStatus> {
    let file = topology_path(args.file);
    let ws = super::common::load_workspace(ui, &file, args.state_backend.as_deref())?;
    let opts = VerifyOptions {
        timeout: args.timeout,
    };
    let report = match crate::ops::verify::verify(&ws, ui, &opts).await? {
        VerifyOutcome::NoLinks => {
            let message = "Nothing to verify: the topology has no replication links.";
            if args.json {
                ui.info(message);
                VerifyReport::new(vec![])
            } else {
                ui.out(&format!("{message}\n"));
                return Ok(ExitStatus::Success);
            }
        }
        VerifyOutcome::Report(r) => r,
    };
    if args.json {
        ui.out(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    } else {
        ui.out(&report.render());
    }
    Ok(match report.outcome() {
        Outcome::Identical => ExitStatus::Success,
        Outcome::Different => ExitStatus::Changes,
        // Not a difference, not identical: verify could not do its job.
        Outcome::Unsettled => {
            ui.error(&format!(
                "could not compare at one position (the source kept writing): {}",
                report.not_identical().join(", ")
            ));
            ExitStatus::Failure
        }
    })
}
