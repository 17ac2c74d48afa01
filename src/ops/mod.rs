//! The workflows the CLI commands run: load a workspace (topology + state backend), refresh,
//! plan (`mod.rs`), apply and destroy (`apply.rs`), outputs (`output.rs`), state edits
//! (`state_edit.rs`). The pure core is `skyplan_core::plan`; this
//! layer wires it to the edges (`remote`, `refresh`, `state`, `apply`) and prints through the
//! [`Printer`](crate::printer::Printer).

pub(crate) mod apply;
pub(crate) mod catalog;
pub(crate) mod import;
mod lock;
pub(crate) mod output;
pub(crate) mod state_edit;
pub(crate) mod verify;

pub(crate) use lock::with_lock;

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;

use crate::observed::Observed;
use crate::plan::{self, Plan, PlanInput};
use crate::state::{State, StateBackend};
use crate::topology::Topology;

/// How a command ended. The CLI turns it into the process's exit code in one place
/// ([`ExitStatus::code`], Terraform's habits), so no layer below spells a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// 0: done, or nothing to do.
    Success,
    /// 1: an error was reported, the work failed or was cancelled. Usage errors too: 2 only
    /// ever means [`ExitStatus::Changes`], as `--detailed-exitcode` promises.
    Failure,
    /// 2: `plan --detailed-exitcode` found changes or drift; `verify` found differences.
    Changes,
    /// 130 (128 + SIGINT, as shells report it): interrupted by Ctrl-C.
    Interrupted,
}

impl ExitStatus {
    /// The process exit code.
    pub(crate) fn code(self) -> i32 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Changes => 2,
            ExitStatus::Interrupted => 130,
        }
    }
}

/// A topology file and the state backend it uses.
pub(crate) struct Workspace {
    pub file: PathBuf,
    pub topology: Topology,
    pub topology_sha256: String,
    /// The file's text as read (once): where later problems are located.
    pub source: String,
    pub backend: Arc<dyn StateBackend>,
    /// What the user should know about how the workspace was found (printed by the CLI).
    pub notes: Vec<String>,
}

impl Workspace {
    /// Load and validate the topology; open (not read) its state backend.
    pub(crate) fn load(file: &Path, backend_override: Option<&str>) -> Result<Workspace> {
        let bytes = crate::topology::read(file)?;
        Workspace::from_bytes(file, bytes, backend_override)
    }

    /// [`Workspace::load`] of a topology file already read (`apply` reads its argument once
    /// to tell a saved plan from a topology): the file is read once per command, so what is
    /// validated, hashed and planned is one and the same content.
    pub(crate) fn from_bytes(
        file: &Path,
        bytes: Vec<u8>,
        backend_override: Option<&str>,
    ) -> Result<Workspace> {
        let topology_sha256 = sha256_hex(&bytes);
        let source = String::from_utf8_lossy(&bytes).into_owned();
        let topology = crate::topology::parse_bytes(bytes, file).map_err(|d| {
            anyhow::anyhow!(
                "{d}{} problem{} in {}",
                d.len(),
                if d.len() == 1 { "" } else { "s" },
                file.display()
            )
        })?;
        let backend: Arc<dyn StateBackend> =
            Arc::from(crate::state::open_backend(&topology, backend_override)?);
        let uses_default = backend_override.is_none()
            && topology.state.backend.is_none()
            && topology.state.path.is_none();
        let notes = uses_default
            .then(|| crate::state::default_state_location(file).1)
            .flatten()
            .into_iter()
            .collect();
        Ok(Workspace {
            notes,
            file: file.to_path_buf(),
            topology_sha256,
            source,
            topology,
            backend,
        })
    }

    /// The stored state, or a new empty one (not yet written) when there is none.
    pub(crate) async fn read_state(&self) -> Result<State> {
        Ok(self
            .backend
            .read()
            .await?
            .unwrap_or_else(crate::state::new_state))
    }
}

pub(crate) struct PlanOptions {
    pub refresh: bool,
    pub destroy: bool,
    pub parallelism: usize,
    /// `--sql-parallelism`: refresh's SQL sessions at once.
    pub sql_parallelism: usize,
    /// `--allow-data-loss`, `--replace`, `--target`.
    pub flags: crate::plan::PlanFlags,
}

/// Connect to the topology's cloud (starting the local emulator when it is the cloud), its
/// notes said (an emulator started in the background, a client region not reported).
pub(crate) async fn connect_to(
    topology: &crate::topology::Topology,
    ui: &crate::printer::Printer,
) -> Result<crate::remote::Remote> {
    let remote = crate::remote::Remote::connect(topology).await?;
    for note in &remote.notes {
        ui.note(note);
    }
    Ok(remote)
}

/// Connect to the topology's cloud, refusing a state that records another one (before
/// anything is read from it or planned). Refresh reads `sql_parallelism` databases at once.
pub(crate) async fn connect(
    ws: &Workspace,
    state: &State,
    ui: &crate::printer::Printer,
    sql_parallelism: usize,
) -> Result<crate::remote::Remote> {
    let mut remote = connect_to(&ws.topology, ui).await?;
    remote.sql_parallelism = sql_parallelism;
    crate::state::rules::check_endpoint(state, &remote.identity, &ws.backend.describe())?;
    Ok(remote)
}

/// Refresh (unless told not to) and plan.
pub(crate) async fn plan(
    ws: &Workspace,
    opts: &PlanOptions,
    ui: &crate::printer::Printer,
) -> Result<(Plan, State)> {
    let state = ws.read_state().await?;
    // Refreshed even with an empty state: a service that already carries a topology key's name
    // is shown as an adoption, and an unreachable endpoint is an error, never "all new".
    let nothing_to_look_at = opts.destroy && state.resources.services.is_empty();
    let observed = if opts.refresh && !nothing_to_look_at {
        let remote = connect(ws, &state, ui, opts.sql_parallelism).await?;
        let observed =
            crate::refresh::refresh(&remote, &ws.topology, &state, opts.parallelism).await?;
        // After refresh, whose first call says clearly when the API cannot be reached.
        if !opts.destroy {
            catalog::check(ws, &remote, &observed).await?;
        }
        observed
    } else {
        Observed {
            refreshed: opts.refresh,
            ..Observed::offline()
        }
    };
    let plan = plan_from(ws, &state, &observed, opts.destroy, &opts.flags)?;
    Ok((plan, state))
}

pub(crate) fn plan_from(
    ws: &Workspace,
    state: &State,
    observed: &Observed,
    destroy: bool,
    flags: &crate::plan::PlanFlags,
) -> Result<Plan> {
    let input = PlanInput {
        topology: &ws.topology,
        topology_sha256: &ws.topology_sha256,
        state,
        observed,
        flags: flags.clone(),
    };
    let mut plan = if destroy {
        plan::build_destroy(&input)?
    } else {
        plan::build(&input)?
    };
    plan::estimate::annotate(&mut plan, &ws.topology, state, estimate_base(ws));
    Ok(plan)
}

/// Whose durations the plan's estimate starts from: SkySQL's, or the local emulator's (its
/// `--op-seconds`, read from the running emulator's info file; its default otherwise).
fn estimate_base(ws: &Workspace) -> plan::estimate::Base {
    if !ws.topology.provider.is_local() {
        return plan::estimate::Base::Cloud;
    }
    let dir = skyplan_emulator::resolve_dir(None);
    let op_seconds = skyplan_emulator::info::read_info(&dir)
        .map_or(skyplan_emulator::ServeOptions::DEFAULT_OP_SECONDS, |i| {
            i.options.op_seconds
        });
    plan::estimate::Base::Emulator { op_seconds }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A human summary of a state (for `skyplan show`).
pub(crate) fn describe_state(state: &State, location: &str) -> String {
    let mut s = String::new();
    let r = &state.resources;
    let _ = writeln!(
        s,
        "State {location}: lineage {}, serial {}",
        state.lineage, state.serial
    );
    if r.is_empty() {
        let _ = writeln!(s, "\n(empty: nothing managed)");
        return s;
    }
    let _ = writeln!(s);
    for (key, svc) in &r.services {
        let endpoint = match (&svc.fqdn, svc.port) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            _ => "(no endpoint yet)".into(),
        };
        let _ = writeln!(
            s,
            "service.{key:<16} {:<24} {:<16} {}  {}{}",
            svc.spec.name,
            svc.id,
            endpoint,
            svc.status.as_ref().map_or("unknown", |s| s.as_str()),
            svc.in_flight
                .as_ref()
                .map(|f| format!("  (in flight: {} since {})", f.operation, f.started_at))
                .unwrap_or_default()
        );
    }
    for (replica, b) in &r.backups {
        // Named as the plan and `state list` name it (by its source).
        let address = crate::state::address::Record::Backup(replica.clone())
            .address(r)
            .unwrap_or_else(|| format!("backup.{}", b.source));
        let _ = writeln!(
            s,
            "{address} -> {replica}: {} at GTID {}",
            b.backup_id.as_deref().unwrap_or("(not yet known)"),
            b.gtid_position
                .as_deref()
                .map_or("(not yet known)", crate::gtid::shown)
        );
    }
    for (replica, a) in &r.allowlists {
        let _ = writeln!(s, "allowlist.{}.{replica}: {}", a.on, a.entries.join(", "));
    }
    for (replica, l) in &r.replications {
        let _ = writeln!(
            s,
            "replication.{replica}: from {} ({}:{}) {}",
            l.source,
            l.source_host,
            l.source_port,
            if l.healthy { "healthy" } else { "not verified" }
        );
    }
    s
}
