//! `skyplan import ADDRESS SERVICE_ID [FILE]`: adopt an existing service under a topology key
//! (Terraform's verb), then show what the next plan will change.

use crate::ops::ExitStatus;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::common::{lock_timeout, topology_path};
use crate::ops::import::{import, ImportOptions};
use crate::printer::Printer;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The topology address to record the service under, e.g. service.primary.
    address: String,
    /// The existing service's id (SkySQL's, e.g. dbpgf12345678).
    service_id: String,
    /// Topology file (default: skyplan.toml).
    file: Option<PathBuf>,
    /// Wait this long for a state lock held by another run (e.g. 30s, 5m).
    #[arg(long, value_parser = lock_timeout, default_value = "0s")]
    lock_timeout: Duration,
    /// How many refresh calls may run at once for the plan shown afterwards.
    #[arg(long, default_value_t = 10)]
    parallelism: usize,
    #[command(flatten)]
    sql: super::common::SqlBound,
    /// Use this state backend instead of the topology's.
    #[arg(long)]
    state_backend: Option<String>,
}

pub(super) async fn run(args: Args, ui: &Printer) -> Result<ExitStatus> {
    let file = topology_path(args.file);
    let ws = super::common::load_workspace(ui, &file, args.state_backend.as_deref())?;
    let opts = ImportOptions {
        lock_timeout: args.lock_timeout,
        parallelism: args.parallelism,
        sql_parallelism: args.sql.sql_parallelism,
    };
    import(&ws, &args.address, &args.service_id, ui, opts).await
}
