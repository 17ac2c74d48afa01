//! Apply and destroy: lock, (re)plan or check a saved plan, confirm, run the plan's actions
//! in dependency order, report; and `plan --refresh-only`, which records what refresh saw.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::apply::events::{JsonEvents, Tee};
use crate::apply::executor::{Executor, ProgressHandle, Report};
use crate::apply::progress::{Bars, Lines, Progress};
use crate::apply::state_handle::StateHandle;
use crate::apply::steps::{RealSteps, StepOptions};
use crate::ops::{self, ExitStatus, Workspace};
use crate::plan::{planfile, render, ActionKind, Plan};
use crate::printer::Printer;
use crate::state::State;

pub(crate) struct ExecuteOptions {
    pub auto_approve: bool,
    pub parallelism: usize,
    /// `--sql-parallelism`: refresh's SQL sessions at once.
    pub sql_parallelism: usize,
    pub lock_timeout: Duration,
    pub destroy: bool,
    /// `--allow-data-loss`, `--replace`, `--target` (a saved plan carries its own).
    pub flags: crate::plan::PlanFlags,
    /// `apply --json`: events on stdout (`apply::events`); the plan, the progress and the
    /// summary for people go to stderr.
    pub events: Option<Arc<JsonEvents>>,
}

/// How an apply (or destroy) ended, for the CLI to turn into an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApplyOutcome {
    /// The plan had no actions: nothing was asked, nothing changed.
    NothingToDo,
    /// Every action is done.
    Applied,
    /// A step failed (or the run was interrupted mid-way): the error is reported, the state
    /// holds every completed step.
    Failed,
    /// The user answered something else than "yes": nothing was changed.
    Cancelled,
    /// Ctrl-C at the prompt: nothing was changed.
    Interrupted,
}

impl From<ApplyOutcome> for ExitStatus {
    fn from(o: ApplyOutcome) -> ExitStatus {
        match o {
            ApplyOutcome::NothingToDo | ApplyOutcome::Applied => ExitStatus::Success,
            ApplyOutcome::Failed | ApplyOutcome::Cancelled => ExitStatus::Failure,
            ApplyOutcome::Interrupted => ExitStatus::Interrupted,
        }
    }
}

/// Lock, (re)plan or check the saved plan, confirm, run, report.
pub(crate) async fn execute(
    ws: &Workspace,
    saved: Option<Plan>,
    ui: &Printer,
    opts: ExecuteOptions,
) -> Result<ApplyOutcome> {
    ops::with_lock(
        ws.backend.as_ref(),
        opts.lock_timeout,
        ui,
        execute_locked(ws, saved, ui, &opts),
    )
    .await
}

async fn execute_locked(
    ws: &Workspace,
    saved: Option<Plan>,
    ui: &Printer,
    opts: &ExecuteOptions,
) -> Result<ApplyOutcome> {
    let (saved, state) = starting_state(ws, saved, opts).await?;
    let remote = Arc::new(ops::connect(ws, &state, ui, opts.sql_parallelism).await?);
    // The first apply records which cloud this state manages (an older state adopts it).
    let mut state = state;
    state
        .endpoint
        .get_or_insert_with(|| remote.identity.clone());
    // The topology file's own bytes (its SHA-256 matched the plan's), never the copy inside a
    // saved plan, which an edit could have changed.
    let topology = ws.topology.clone();
    let handle = StateHandle::new(state, ws.backend.clone());
    let steps = Arc::new(RealSteps::new(
        remote.clone(),
        topology,
        handle.clone(),
        StepOptions::default(),
    ));
    resume(&steps, ui).await?;
    let state = handle.snapshot().await;
    let destroy = saved.as_ref().map_or(opts.destroy, |p| p.destroy);
    let observed = observe(ws, &remote, &state, saved.as_ref(), destroy, opts).await?;
    let flags = saved.as_ref().map_or(&opts.flags, |p| &p.flags).clone();
    let plan = settle_plan(ws, &handle, &state, &observed, saved, destroy, &flags).await?;
    match &opts.events {
        // The plan is an event; the people reading stderr still see it.
        Some(ev) => {
            ev.plan(&plan);
            ui.info_raw(&render::render(&plan, false));
        }
        None => ui.out_text(&render::render(&plan, ui.colors)),
    }
    refuse_dead_databases(&plan)?;
    if plan.actions.is_empty() {
        if let Some(ev) = &opts.events {
            ev.summary(&plan, &Report::default(), remote.client.requests_made());
        } else {
            print_outputs(ui, &state, &ws.topology, opts.destroy);
        }
        return Ok(ApplyOutcome::NothingToDo);
    }
    let progress = progress_for(ui, opts);
    // Caught from the prompt on: a Ctrl-C there cancels the apply and releases the lock.
    let stop = interrupt_on_ctrl_c(progress.clone(), ui);
    if let Some(code) = refused_confirmation(ui, opts, &stop).await? {
        return Ok(code);
    }
    let executor = Executor {
        parallelism: opts.parallelism,
        progress,
        stop,
    };
    ui.info("");
    // What refresh read of the GTIDs is kept for a failover's loss estimate (only when the
    // apply changes something: a no-op apply leaves the state alone).
    handle.persist_if_new().await?;
    handle.update(|s| observed.record_last_seen(s)).await?;
    // A --replace survives an interrupted run: the next plan carries it out.
    if !opts.destroy && !flags.replace.is_empty() {
        let at = crate::state::backend::now_rfc3339();
        handle
            .update(|s| crate::plan::record_replaces(s, &flags.replace, &at))
            .await?;
    }
    let keys = crate::plan::estimate::history_keys(&plan.actions, &ws.topology, &state);
    let report = executor.run(&plan.actions, steps).await;
    // How long each step took here: the next plans estimate from it. Best effort: an apply
    // whose steps are done does not fail for want of a statistic.
    let took = &report.took;
    if let Err(e) = handle
        .update(|s| crate::plan::estimate::record(s, &keys, took))
        .await
    {
        ui.info(&format!("(the steps' durations were not recorded: {e})"));
    }
    report_outcome(ws, ui, opts, &plan, &report, &handle, &remote).await
}

/// The state to start from, and the saved plan checked fresh against it.
async fn starting_state(
    ws: &Workspace,
    saved: Option<Plan>,
    opts: &ExecuteOptions,
) -> Result<(Option<Plan>, State)> {
    let stored = ws.backend.read().await?;
    if opts.destroy {
        if let Some(state) = &stored {
            crate::plan::check_destroy_allowed(&ws.topology, state)?;
        }
    }
    Ok(match saved {
        Some(plan) => {
            let state = match stored {
                Some(s) => s,
                // Nothing applied yet: the new state continues the plan's lineage.
                None if plan.serial == 0 => State {
                    lineage: plan.lineage.clone(),
                    ..crate::state::new_state()
                },
                None => bail!(
                    "stale plan: it was made against state serial {}, but there is no state now",
                    plan.serial
                ),
            };
            planfile::check_fresh(&plan, &state, Some(&ws.topology_sha256))?;
            (Some(plan), state)
        }
        None => (None, stored.unwrap_or_else(crate::state::new_state)),
    })
}

/// What exists now: refreshed (and checked against the catalog), unless a saved plan was made
/// without refresh or a destroy has nothing to look at.
async fn observe(
    ws: &Workspace,
    remote: &crate::remote::Remote,
    state: &State,
    saved: Option<&Plan>,
    destroy: bool,
    opts: &ExecuteOptions,
) -> Result<crate::observed::Observed> {
    // Even with an empty state: a same-named service must show as an adoption.
    if destroy && state.resources.services.is_empty() {
        return Ok(crate::observed::Observed {
            refreshed: true,
            ..Default::default()
        });
    }
    if saved.is_some_and(|p| !p.refreshed) {
        return Ok(crate::observed::Observed::offline());
    }
    let observed = crate::refresh::refresh(remote, &ws.topology, state, opts.parallelism).await?;
    if !destroy {
        ops::catalog::check(ws, remote, &observed).await?;
    }
    Ok(observed)
}

/// The plan to carry out: derived now, and a saved plan only if it is exactly that.
async fn settle_plan(
    ws: &Workspace,
    handle: &StateHandle,
    state: &State,
    observed: &crate::observed::Observed,
    saved: Option<Plan>,
    destroy: bool,
    flags: &crate::plan::PlanFlags,
) -> Result<Plan> {
    let derived = ops::plan_from(ws, state, observed, destroy, flags)?;
    // The steps use what refresh saw of the endpoints too (the plan was made with it).
    if derived
        .drift
        .iter()
        .any(|d| d.kind == crate::plan::DriftKind::ServiceEndpointChanged)
    {
        handle
            .update(|s| crate::plan::drift::correct_endpoints(s, observed))
            .await?;
    }
    // A link the plan keeps as it is (a replica already replicating, healthy, by GTID: an
    // import, an adoption, the old primary of a switchover killed after it was pointed at
    // the new one) is recorded now: the plan counted on it, and no step wires it.
    if derived
        .drift
        .iter()
        .any(|d| d.kind == crate::plan::DriftKind::LinkKept)
    {
        handle
            .update(|s| {
                for kept in crate::plan::drift::kept_links(&ws.topology, s, observed) {
                    kept.record(s);
                }
            })
            .await?;
    }
    // A switchover recorded at its fencing step that refresh shows promoted already, or given
    // up by the file, is recorded as it is: the plan was made from that.
    if derived.drift.iter().any(|d| {
        d.kind == crate::plan::DriftKind::RoleChangeInterrupted
            && d.after.get("corrected").is_some()
    }) {
        handle
            .update(|s| {
                crate::plan::drift::settle_role_changes(&ws.topology, s, observed);
            })
            .await?;
    }
    Ok(match saved {
        Some(plan) => {
            planfile::check_same_actions(&plan, &derived)?;
            plan
        }
        None => derived,
    })
}

/// A database that does not answer: nothing that depends on it can be repaired, and waiting
/// on it would only end in a timeout. Refused at once, before anything changes.
fn refuse_dead_databases(plan: &Plan) -> Result<()> {
    let dead: Vec<&str> = plan
        .drift
        .iter()
        .filter(|d| d.kind == crate::plan::DriftKind::DatabaseUnreachable)
        .map(|d| d.detail.as_str())
        .collect();
    if !dead.is_empty() {
        anyhow::bail!(
            "{}; nothing was changed. Bring it back (or, if the primary is lost, fail over: see the README's disaster recovery section), then apply again",
            dead.join("; ")
        );
    }
    Ok(())
}

/// Spinners on a terminal, timestamped lines otherwise; with `--json`, the events as well.
fn progress_for(ui: &Printer, opts: &ExecuteOptions) -> Arc<dyn Progress> {
    let human: Arc<dyn Progress> = if ui.stderr_tty {
        Arc::new(Bars::new())
    } else {
        Arc::new(Lines::new(ui.err_stream()))
    };
    match &opts.events {
        Some(ev) => Arc::new(Tee(vec![human, ev.clone()])),
        None => human,
    }
}

/// The confirmation, unless `--auto-approve`: `Some(outcome)` when the apply must not go on.
async fn refused_confirmation(
    ui: &Printer,
    opts: &ExecuteOptions,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Option<ApplyOutcome>> {
    if opts.auto_approve {
        return Ok(None);
    }
    // Only now, with something to do: a no-op apply in CI succeeds without a terminal.
    if !crate::printer::can_prompt() {
        if opts.destroy {
            bail!("refusing to destroy without confirmation: no prompt is possible (stdin is not a terminal, or -input=false; review with `skyplan plan --destroy`, then use --auto-approve); nothing was changed");
        }
        bail!("refusing to apply without confirmation: no prompt is possible (stdin is not a terminal, or -input=false; review with `skyplan plan`, then use --auto-approve or apply a saved plan); nothing was changed");
    }
    let q = if opts.destroy {
        "\nDo you really want to destroy all these services? Their data will be lost."
    } else {
        "\nDo you want to perform these actions?"
    };
    Ok(
        match ui.confirm_unless(q, became_true(stop.clone())).await? {
            Some(true) => None,
            Some(false) => {
                ui.error("apply cancelled; nothing was changed");
                Some(ApplyOutcome::Cancelled)
            }
            None => {
                ui.error("interrupted at the prompt; nothing was changed");
                Some(ApplyOutcome::Interrupted)
            }
        },
    )
}

/// How the apply ended, said to people (and the event stream): done with the outputs, or
/// what stopped and what the state records.
async fn report_outcome(
    ws: &Workspace,
    ui: &Printer,
    opts: &ExecuteOptions,
    plan: &Plan,
    report: &Report,
    handle: &StateHandle,
    remote: &crate::remote::Remote,
) -> Result<ApplyOutcome> {
    let final_state = handle.snapshot().await;
    let secs = report.elapsed.as_secs_f64();
    if let Some(ev) = &opts.events {
        ev.summary(plan, report, remote.client.requests_made());
    }
    if report.success() {
        let verb = if opts.destroy { "Destroy" } else { "Apply" };
        let done = format!(
            "\n{verb} complete after {secs:.1}s: {} actions done. API calls: {}.\n",
            report.completed.len(),
            remote.client.requests_made()
        );
        if opts.events.is_some() {
            ui.info_raw(&done);
        } else {
            ui.out(&done);
            print_outputs(ui, &final_state, &ws.topology, opts.destroy);
        }
        return Ok(ApplyOutcome::Applied);
    }
    let why = summary(plan, report, handle.write_failure());
    if let Some(ev) = &opts.events {
        ev.diagnostic(&crate::hints::complete(&why));
    }
    ui.error(&why);
    Ok(ApplyOutcome::Failed)
}

/// First Ctrl-C: the returned flag becomes true (at the prompt: cancel; during the apply:
/// start nothing new, stop waiting, save, report). Second Ctrl-C: clear the progress display
/// and exit at once; the state is as of the last completed write (each write is atomic, so
/// the file is never half-written).
fn interrupt_on_ctrl_c(
    progress: Arc<dyn Progress>,
    ui: &Printer,
) -> tokio::sync::watch::Receiver<bool> {
    let ui = ui.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Registered here, not when the task first runs, so a Ctrl-C from now on is caught (the
    // prompt follows at once).
    let sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    tokio::spawn(async move {
        let Ok(mut sigint) = sigint else {
            // No signal handling: keep the sender, never interrupt.
            return std::future::pending::<()>().await;
        };
        if sigint.recv().await.is_none() {
            return std::future::pending::<()>().await;
        }
        let _ = stop_tx.send(true);
        if sigint.recv().await.is_some() {
            // No spinner may stay frozen on the terminal after the process is gone.
            progress.done();
            ui.info("\nInterrupted again: exiting now. The state holds every completed step; run `skyplan apply` again to finish.");
            std::process::exit(ExitStatus::Interrupted.code());
        }
    });
    stop_rx
}

/// Resolves when `flag` becomes true; never if its sender is gone first.
async fn became_true(mut flag: tokio::sync::watch::Receiver<bool>) {
    if flag.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves on the next Ctrl-C, counted from this call (never if signals cannot be caught).
fn next_ctrl_c() -> impl std::future::Future<Output = ()> {
    let sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    async move {
        let caught = match sigint {
            Ok(mut s) => s.recv().await.is_some(),
            Err(_) => false,
        };
        if !caught {
            std::future::pending::<()>().await;
        }
    }
}

/// Settle what a killed or interrupted run left in flight, before planning (see
/// `RealSteps::resume_service_operations` and `adopt_started_replications`).
async fn resume(steps: &RealSteps, ui: &Printer) -> Result<()> {
    let in_flight = steps
        .state
        .read(|s| {
            s.resources
                .services
                .iter()
                .filter(|(_, r)| r.in_flight.is_some())
                .map(|(k, r)| {
                    let op = r.in_flight.as_ref().map(|f| f.operation.as_str());
                    format!("service.{k} ({})", op.unwrap_or("?"))
                })
                .collect::<Vec<_>>()
        })
        .await;
    if !in_flight.is_empty() {
        ui.info(&format!(
            "Resuming operations a previous run left in flight: {}",
            in_flight.join(", ")
        ));
    }
    let p = ProgressHandle::detached();
    let mut lines = steps.resume_service_operations(&p).await?;
    lines.extend(steps.adopt_started_replications().await?);
    for line in lines {
        ui.info(&format!("  {line}"));
    }
    Ok(())
}

/// What stopped an apply, action by action, and what to do next.
fn summary(plan: &Plan, report: &Report, write_failure: Option<String>) -> String {
    let addr = |id: usize| {
        plan.actions
            .get(id)
            .map(|a| a.address.as_str())
            .unwrap_or("(internal)")
    };
    let mut msg = String::new();
    if report.interrupted {
        msg.push_str("Interrupted.\n");
    }
    for (id, e) in &report.failed {
        msg.push_str(&format!("  failed:         {}: {e}\n", addr(*id)));
    }
    for (id, e) in &report.abandoned {
        msg.push_str(&format!("  still running:  {}: {e}\n", addr(*id)));
    }
    for id in &report.not_started {
        msg.push_str(&format!("  not started:    {}\n", addr(*id)));
    }
    // A create that failed may have reached the API without its answer reaching skyplan: the
    // state cannot record what it never heard of, so it is not said to.
    let creates: Vec<&str> = report
        .failed
        .iter()
        .filter(|(id, _)| {
            plan.actions.get(*id).is_some_and(|a| {
                matches!(
                    a.kind,
                    ActionKind::CreateService { .. } | ActionKind::ReplaceService { .. }
                )
            })
        })
        .map(|(id, _)| addr(*id))
        .collect();
    // Only true when every write went through.
    let record = match write_failure {
        None if !creates.is_empty() => format!(
            "The state records every completed step and every operation in flight it saw start; {} failed, and a create can reach the API without its answer reaching skyplan, so such a service may exist without a record. Run `skyplan plan`: it finds a created service by its name and adopts it, never creating it twice; then `skyplan apply` again to finish.",
            creates.join(", ")
        ),
        None => "The state records every completed step and every operation in flight; run `skyplan apply` again to finish (`skyplan plan` shows what is left).".to_string(),
        Some(e) => format!(
            "THE STATE COULD NOT BE SAVED ({e}): it records only the steps completed before that write; an operation started since (a service being created, say) may be running in the cloud without a record. Free the space or fix the cause, then run `skyplan plan`: a created service is found by its name and adopted, never created twice."
        ),
    };
    format!(
        "apply stopped after {:.1}s: {} done, {} failed, {} still running in the cloud, {} not started. {record}\n{msg}",
        report.elapsed.as_secs_f64(),
        report.completed.len(),
        report.failed.len(),
        report.abandoned.len(),
        report.not_started.len()
    )
}

/// Endpoints and how to get credentials, as `skyplan output` prints them; never the password.
fn print_outputs(ui: &Printer, state: &State, topology: &crate::topology::Topology, destroy: bool) {
    if destroy || state.resources.services.is_empty() {
        return;
    }
    // Every managed service, so this cannot fail; were it to, the apply's result stands.
    if let Ok(o) = super::output::outputs(state, topology, None) {
        ui.out(&format!("\n{}", super::output::render(&o)));
    }
}

/// `plan --refresh-only`: show drift, then (after confirmation) record reality in the state
/// without touching anything remote.
/// How `plan --refresh-only` runs.
pub(crate) struct RefreshOnlyOptions {
    pub auto_approve: bool,
    pub lock_timeout: Duration,
    pub parallelism: usize,
    /// `--sql-parallelism`: refresh's SQL sessions at once.
    pub sql_parallelism: usize,
    /// The drift as JSON on stdout instead of the rendered plan.
    pub json: bool,
    /// Exit 2 when there is drift (and record nothing without a confirmation).
    pub detailed_exitcode: bool,
}

pub(crate) async fn refresh_only(
    ws: &Workspace,
    ui: &Printer,
    opts: RefreshOnlyOptions,
) -> Result<ExitStatus> {
    let RefreshOnlyOptions {
        auto_approve,
        lock_timeout,
        parallelism,
        sql_parallelism,
        json,
        detailed_exitcode,
    } = opts;
    let work = async {
        let state = ws.read_state().await?;
        let remote = ops::connect(ws, &state, ui, sql_parallelism).await?;
        let observed = crate::refresh::refresh(&remote, &ws.topology, &state, parallelism).await?;
        // Only the drift is used: a failover the topology asks for is not refused here.
        let all = crate::plan::PlanFlags {
            allow_data_loss: true,
            ..Default::default()
        };
        let plan = ops::plan_from(ws, &state, &observed, false, &all)?;
        if json {
            ui.out(&format!("{}\n", serde_json::to_string_pretty(&plan.drift)?));
        } else if plan.drift.is_empty() {
            ui.out("No changes. No drift: the state matches what exists.\n");
        } else {
            let only_drift = Plan {
                actions: vec![],
                ..plan.clone()
            };
            ui.out_text(&render::render(&only_drift, ui.colors));
        }
        // With --detailed-exitcode, drift is exit 2 whether or not the state is then updated,
        // so a scheduler can tell drift from an error (1).
        let found = if detailed_exitcode && plan.summary.drift > 0 {
            ExitStatus::Changes
        } else {
            ExitStatus::Success
        };
        let mut next = state.clone();
        crate::observed::record_observed(&mut next, &ws.topology, &observed);
        // Nothing to record but the time refresh last read the GTIDs: no prompt, no write
        // (a cron job without --auto-approve must not fail on a question with no answer).
        let mut same_but_seen = next.clone();
        for (k, r) in same_but_seen.resources.services.iter_mut() {
            r.last_seen = state
                .resources
                .services
                .get(k)
                .and_then(|o| o.last_seen.clone());
        }
        if next == state || same_but_seen == state {
            return Ok(found);
        }
        if !auto_approve && detailed_exitcode && !crate::printer::can_prompt() {
            ui.info("State left unchanged (no terminal to confirm; add --auto-approve to record what exists).");
            return Ok(found);
        }
        if !auto_approve {
            let q = "\nUpdate the state to match what exists? Nothing remote will change.";
            match ui.confirm_unless(q, next_ctrl_c()).await? {
                Some(true) => {}
                Some(false) => {
                    ui.error("state left unchanged");
                    return Ok(ExitStatus::Failure);
                }
                // Returning releases the lock.
                None => {
                    ui.error("interrupted at the prompt; state left unchanged");
                    return Ok(ExitStatus::Interrupted);
                }
            }
        }
        ws.backend.write(&mut next).await?;
        ui.info(&format!("State updated (serial {}).", next.serial));
        Ok(found)
    };
    ops::with_lock(ws.backend.as_ref(), lock_timeout, ui, work).await
}
