//! `skyplan destroy [FILE]`: stop replication, revoke skyplan's allowlist entries and delete
//! every service the state records, replicas first.

use crate::ops::ExitStatus;
use std::path::PathBuf;

use anyhow::Result;

use super::common::{lock_timeout, topology_path};
use crate::ops::apply::{execute, ExecuteOptions};
use crate::printer::Printer;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Topology file (default: skyplan.toml).
    file: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    auto_approve: bool,
    /// How many actions may run at once.
    #[arg(long, default_value_t = 10)]
    parallelism: usize,
    #[command(flatten)]
    sql: super::common::SqlBound,
    /// Wait this long for a state lock held by another run (e.g. 30s, 5m).
    #[arg(long, value_parser = lock_timeout, default_value = "0s")]
    lock_timeout: std::time::Duration,
    /// Use this state backend instead of the topology's (a path or mysql:// URL).
    #[arg(long)]
    state_backend: Option<String>,
    /// Destroy only ADDRESS and what depends on it being gone first (repeatable): a partial
    /// destroy.
    #[arg(long, value_name = "ADDRESS")]
    target: Vec<String>,
}

pub(super) async fn run(args: Args, ui: &Printer) -> Result<ExitStatus> {
    let file = topology_path(args.file);
    let ws = super::common::load_workspace(ui, &file, args.state_backend.as_deref())?;
    execute(
        &ws,
        None,
        ui,
        ExecuteOptions {
            auto_approve: args.auto_approve,
            parallelism: args.parallelism,
            sql_parallelism: args.sql.sql_parallelism,
            lock_timeout: args.lock_timeout,
            destroy: true,
            flags: crate::plan::PlanFlags {
                target: args.target,
                ..Default::default()
            },
            events: None,
        },
    )
    .await
    .map(ExitStatus::from)
}
