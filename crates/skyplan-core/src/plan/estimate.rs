//! How long a plan will take: each action's duration from a model, and the plan's estimate as
//! the critical path of its dependency graph (no apply can finish sooner however parallel,
//! and skyplan runs independent actions at once, so it is also about how long one takes).
//!
//! The model starts from defaults per action kind — for SkySQL from what SkySQL documents
//! ("launching a new service will take about 5 minutes"), backups and restores scaled by
//! storage; for the local emulator from its `--op-seconds` — and is refined by what this
//! workspace measured: every apply records how long each action took in the state
//! ([`Durations`]: the last few per kind, provider and storage size), and a kind with a
//! recorded history is estimated by its median.

use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Action, ActionId, ActionKind, Plan};
use crate::state::State;
use crate::topology::Topology;

/// How many recent durations are kept per key.
pub const HISTORY: usize = 5;

/// Recorded durations, in milliseconds, by `kind/provider/storage` (e.g. `create/gcp/100`),
/// newest last. Kept in the state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Durations(
    #[schemars(extend("additionalProperties" = { "type": "array", "maxItems": HISTORY, "items": { "type": "integer", "minimum": 0 } }))]
    pub BTreeMap<String, Vec<u64>>,
);

impl Durations {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds one measurement, keeping the last [`HISTORY`].
    pub fn record(&mut self, key: String, ms: u64) {
        let v = self.0.entry(key).or_default();
        v.push(ms);
        if v.len() > HISTORY {
            let extra = v.len() - HISTORY;
            v.drain(..extra);
        }
    }

    /// The median of what was recorded under `key`.
    fn median(&self, key: &str) -> Option<u64> {
        let mut v = self.0.get(key)?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        Some(v[v.len() / 2])
    }
}

/// Where the defaults come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Base {
    /// SkySQL (or any https endpoint).
    Cloud,
    /// The local emulator, whose long operations take `op_seconds` each.
    Emulator { op_seconds: f64 },
}

/// How long applying the plan is expected to take: the critical path of the action graph,
/// each action weighed by its estimated_ms (`estimate` in `--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Estimate {
    /// The critical path, in milliseconds.
    pub total_ms: u64,
    /// How many actions were estimated from durations this workspace recorded (the state's
    /// durations); the others from the defaults.
    pub from_history: usize,
    /// `SkySQL` or `emulator`: whose defaults the others use.
    pub defaults: String,
}

impl Estimate {
    /// `Estimated time: ~6 min (critical path of the action graph)`.
    pub fn line(&self) -> String {
        let basis = match self.from_history {
            0 => format!(
                "critical path of the action graph; {} defaults",
                self.defaults
            ),
            n => format!(
                "critical path of the action graph; {n} action{} from durations recorded here",
                if n == 1 { "" } else { "s" }
            ),
        };
        format!("Estimated time: {} ({basis})", human(self.total_ms))
    }
}

/// `~45 s`, `~6 min`, `~2 h 05 min`: an estimate reads as one.
pub fn human(ms: u64) -> String {
    let s = ms.div_ceil(1000).max(1);
    // Whole minutes first, so 2 h 59 min 50 s reads "~3 h 00 min", never "~2 h 60 min".
    let m = (s + 30) / 60;
    match s {
        0..=89 => format!("~{s} s"),
        90..=7199 => format!("~{m} min"),
        _ => format!("~{} h {:02} min", m / 60, m % 60),
    }
}

/// The history key of an action: `kind/provider/storage` of the service it works on.
pub fn history_key(a: &Action, topology: &Topology, state: &State) -> String {
    let key = super::graph::subject(&a.kind);
    let spec = match &a.kind {
        ActionKind::CreateService { spec, .. } | ActionKind::DeleteService { spec, .. } => {
            Some(spec)
        }
        _ => topology
            .services
            .get(key)
            .map(|s| &s.spec)
            .or_else(|| state.resources.services.get(key).map(|r| &r.spec)),
    };
    let (provider, storage) = spec.map_or(("unknown", 0), |s| (s.provider.as_str(), s.storage));
    format!("{}/{provider}/{storage}", kind_name(&a.kind))
}

fn kind_name(kind: &ActionKind) -> &'static str {
    match kind {
        ActionKind::CreateService { .. } => "create",
        ActionKind::AdoptService { .. } => "adopt",
        ActionKind::UpdateService { .. } => "update",
        ActionKind::ReplaceService { .. } => "replace",
        ActionKind::DeleteService { .. } => "delete",
        ActionKind::Backup { .. } => "backup",
        ActionKind::Restore { .. } => "restore",
        ActionKind::AllowlistGrant { .. } => "allowlist_grant",
        ActionKind::AllowlistRevoke { .. } => "allowlist_revoke",
        ActionKind::Replicate { .. } => "replicate",
        ActionKind::StopReplication { .. } => "stop_replication",
        ActionKind::DropReplicationUser { .. } => "drop_user",
        ActionKind::SetRole { .. } => "set_role",
        ActionKind::SetPower { .. } => "set_power",
        ActionKind::Switchover { .. } => "switchover",
        ActionKind::Failover { .. } => "failover",
        ActionKind::ConfigureService { .. } => "configure",
        ActionKind::RestartService { .. } => "restart",
    }
}

/// The default duration of an action, in milliseconds, for a service of `storage` GB.
fn default_ms(kind: &ActionKind, storage: u32, base: Base) -> u64 {
    let per_100gb = |ms: u64| ms * u64::from(storage.max(100)) / 100;
    match base {
        // SkySQL documents one figure: "launching a new service will take about 5 minutes".
        // The others are skyplan's own rough figures, which the recorded history replaces
        // after one apply: a resize or a power change provisions like a launch; a physical
        // backup and its restore move the data, so they grow with the storage.
        Base::Cloud => match kind {
            ActionKind::CreateService { .. } => 300_000,
            ActionKind::ReplaceService { .. } => 360_000,
            ActionKind::UpdateService { .. } | ActionKind::SetPower { .. } => 300_000,
            ActionKind::DeleteService { .. } => 60_000,
            ActionKind::Backup { .. } => 60_000 + per_100gb(120_000),
            ActionKind::Restore { .. } => 120_000 + per_100gb(180_000),
            ActionKind::RestartService { .. } => 120_000,
            ActionKind::AllowlistGrant { .. }
            | ActionKind::AllowlistRevoke { .. }
            | ActionKind::ConfigureService { .. } => 15_000,
            ActionKind::Replicate { .. }
            | ActionKind::Switchover { .. }
            | ActionKind::Failover { .. } => 10_000,
            ActionKind::AdoptService { .. }
            | ActionKind::StopReplication { .. }
            | ActionKind::DropReplicationUser { .. }
            | ActionKind::SetRole { .. } => 2_000,
        },
        // The emulator's long operations take `op_seconds` at least (its work — a new
        // mariadbd's bootstrap, a mariadb-backup run — happens within them for small data);
        // around them, the polling and SQL measured on the emulator (2 cores: the fan-out
        // and guide rows of skyplan-bench, whose estimate row checks these).
        Base::Emulator { op_seconds } => {
            let op = (op_seconds.max(0.0) * 1000.0) as u64;
            match kind {
                ActionKind::CreateService { .. } => op + 300,
                ActionKind::ReplaceService { .. } => 2 * op + 500,
                ActionKind::UpdateService { .. }
                | ActionKind::SetPower { .. }
                | ActionKind::DeleteService { .. }
                | ActionKind::RestartService { .. } => op + 200,
                ActionKind::Backup { .. } => op + 200,
                ActionKind::Restore { .. } => op + 300,
                ActionKind::Replicate { .. }
                | ActionKind::Switchover { .. }
                | ActionKind::Failover { .. } => 300,
                ActionKind::AllowlistGrant { .. }
                | ActionKind::AllowlistRevoke { .. }
                | ActionKind::ConfigureService { .. } => 150,
                ActionKind::AdoptService { .. }
                | ActionKind::StopReplication { .. }
                | ActionKind::DropReplicationUser { .. }
                | ActionKind::SetRole { .. } => 50,
            }
        }
    }
}

/// The storage (GB) of the service `a` works on, 0 when unknown.
fn storage(a: &Action, topology: &Topology, state: &State) -> u32 {
    history_key(a, topology, state)
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Each action's estimate (ms) and whether it came from the recorded history.
fn per_action(
    actions: &[Action],
    topology: &Topology,
    state: &State,
    base: Base,
) -> Vec<(u64, bool)> {
    actions
        .iter()
        .map(
            |a| match state.durations.median(&history_key(a, topology, state)) {
                Some(ms) => (ms, true),
                None => (
                    default_ms(&a.kind, storage(a, topology, state), base),
                    false,
                ),
            },
        )
        .collect()
}

/// Fills in each action's `estimated_ms` and the plan's [`Estimate`].
pub fn annotate(plan: &mut Plan, topology: &Topology, state: &State, base: Base) {
    if plan.actions.is_empty() {
        plan.estimate = None;
        return;
    }
    let each = per_action(&plan.actions, topology, state, base);
    for (a, (ms, _)) in plan.actions.iter_mut().zip(&each) {
        a.estimated_ms = Some(*ms);
    }
    let (total, _) = critical_path(&plan.actions, |a| a.estimated_ms.unwrap_or(0));
    plan.estimate = Some(Estimate {
        total_ms: total,
        from_history: each.iter().filter(|(_, h)| *h).count(),
        defaults: match base {
            Base::Cloud => "SkySQL".into(),
            Base::Emulator { .. } => "emulator".into(),
        },
    });
}

/// Each action's history key, read before the apply changes the state: the key an action is
/// estimated by must be the key its duration is recorded under (after the apply, a removed
/// service's record — and so its provider and storage — is gone).
pub fn history_keys(actions: &[Action], topology: &Topology, state: &State) -> Vec<String> {
    actions
        .iter()
        .map(|a| history_key(a, topology, state))
        .collect()
}

/// Records how long each finished action took, under its key from [`history_keys`].
pub fn record(state: &mut State, keys: &[String], took: &HashMap<ActionId, std::time::Duration>) {
    for (id, key) in keys.iter().enumerate() {
        if let Some(d) = took.get(&id) {
            state.durations.record(key.clone(), d.as_millis() as u64);
        }
    }
}

/// The longest weighted chain through `actions` (in plan order: every dependency has a
/// smaller id) and its actions. Linear in actions + edges.
pub fn critical_path(actions: &[Action], weight: impl Fn(&Action) -> u64) -> (u64, Vec<usize>) {
    let mut finish = vec![0u64; actions.len()];
    let mut via: Vec<Option<usize>> = vec![None; actions.len()];
    for (i, a) in actions.iter().enumerate() {
        let mut start = 0;
        for &d in &a.depends_on {
            // Plans are ordered, but a foreign or hand-made list may not be: skip, never panic.
            if d < i && finish[d] >= start {
                start = finish[d];
                via[i] = Some(d);
            }
        }
        finish[i] = start + weight(a);
    }
    let Some((mut last, &total)) = finish.iter().enumerate().max_by_key(|(_, f)| **f) else {
        return (0, Vec::new());
    };
    let mut path = vec![last];
    while let Some(p) = via[last] {
        path.push(p);
        last = p;
    }
    path.reverse();
    (total, path)
}

/// What is left of a running apply, in ms: the critical path of the actions not done, a
/// running one weighing what its estimate has left (at least a second: it is not done).
pub fn remaining(
    actions: &[Action],
    done: &dyn Fn(ActionId) -> bool,
    running_for: &dyn Fn(ActionId) -> Option<u64>,
) -> u64 {
    critical_path(actions, |a| {
        if done(a.id) {
            return 0;
        }
        let est = a.estimated_ms.unwrap_or(0);
        match running_for(a.id) {
            Some(elapsed) => est.saturating_sub(elapsed).max(1000),
            None => est,
        }
    })
    .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Change;

    fn action(id: usize, kind: ActionKind, deps: &[usize]) -> Action {
        Action {
            id,
            address: kind.address(),
            change: Change::Create,
            kind,
            summary: String::new(),
            depends_on: deps.to_vec(),
            before: None,
            after: None,
            wipes_data: false,
            reason: None,
            estimated_ms: None,
        }
    }

    fn role(key: &str) -> ActionKind {
        ActionKind::SetRole {
            key: key.into(),
            writable: true,
        }
    }

    #[test]
    fn the_critical_path_is_the_longest_weighted_chain() {
        // a(5) -> b(1) -> d(1); a -> c(7); d also after c.
        let acts = vec![
            action(0, role("a"), &[]),
            action(1, role("b"), &[0]),
            action(2, role("c"), &[0]),
            action(3, role("d"), &[1, 2]),
        ];
        let w = |a: &Action| [5, 1, 7, 1][a.id];
        assert_eq!(critical_path(&acts, w), (13, vec![0, 2, 3]));
        assert_eq!(critical_path(&[], w), (0, vec![]));
        // A dependency that points forward (a hand-made list) is skipped, not a panic.
        let odd = vec![action(0, role("a"), &[1]), action(1, role("b"), &[])];
        assert_eq!(critical_path(&odd, |_| 1).0, 1);
    }

    #[test]
    fn what_remains_counts_running_steps_by_what_their_estimate_has_left() {
        let mut acts = vec![action(0, role("a"), &[]), action(1, role("b"), &[0])];
        acts[0].estimated_ms = Some(10_000);
        acts[1].estimated_ms = Some(4_000);
        let none = |_| None;
        assert_eq!(remaining(&acts, &|_| false, &none), 14_000);
        assert_eq!(
            remaining(&acts, &|_| false, &|id| (id == 0).then_some(7_000)),
            7_000
        );
        // Over its estimate, a running step still counts a second.
        assert_eq!(
            remaining(&acts, &|_| false, &|id| (id == 0).then_some(60_000)),
            5_000
        );
        assert_eq!(remaining(&acts, &|id| id == 0, &none), 4_000);
    }

    #[test]
    fn history_keeps_the_last_few_and_estimates_by_their_median() {
        let mut d = Durations::default();
        for ms in [100, 900, 200, 300, 400, 500] {
            d.record("create/gcp/100".into(), ms);
        }
        assert_eq!(d.0["create/gcp/100"], [900, 200, 300, 400, 500]);
        assert_eq!(d.median("create/gcp/100"), Some(400));
        assert_eq!(d.median("backup/gcp/100"), None);
    }

    #[test]
    fn estimates_read_like_a_person_would_say_them() {
        let h = human;
        assert_eq!(
            [
                h(0),
                h(12_300),
                h(89_000),
                h(90_000),
                h(330_000),
                h(7_500_000),
                h(10_790_000)
            ],
            [
                "~1 s",
                "~13 s",
                "~89 s",
                "~2 min",
                "~6 min",
                "~2 h 05 min",
                "~3 h 00 min"
            ]
        );
    }

    #[test]
    fn backups_and_restores_grow_with_storage_on_skysql() {
        let b = |gb| {
            default_ms(
                &ActionKind::Restore {
                    source: "a".into(),
                    replica: "b".into(),
                },
                gb,
                Base::Cloud,
            )
        };
        assert!(b(1000) > 5 * b(100), "{} vs {}", b(1000), b(100));
        let create = ActionKind::SetRole {
            key: "x".into(),
            writable: true,
        };
        assert_eq!(
            default_ms(&create, 100, Base::Emulator { op_seconds: 2.0 }),
            50
        );
    }
}
