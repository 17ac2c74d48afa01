//! The critical path of a plan: the longest chain of dependent actions, weighed by how long
//! each action takes. No apply can finish sooner, however parallel, so `wall time / critical
//! path` measures what scheduling and polling add.

use std::time::Duration;

use skyplan::plan::{Action, ActionKind};

/// Emulated durations: the long operations take `op` each, the rest (API calls and SQL) none.
pub fn emulated_delay(op: Duration) -> impl Fn(&Action) -> Duration {
    move |a: &Action| match a.kind {
        ActionKind::CreateService { .. }
        | ActionKind::ReplaceService { .. }
        | ActionKind::Backup { .. }
        | ActionKind::Restore { .. } => op,
        _ => Duration::ZERO,
    }
}

/// The longest weighted chain through `actions` and its length: the core's rule (the one the
/// plan's estimate uses), weighed in durations.
pub fn critical_path(
    actions: &[Action],
    delay: impl Fn(&Action) -> Duration,
) -> (Duration, Vec<usize>) {
    let (ms, path) =
        skyplan::plan::estimate::critical_path(actions, |a| delay(a).as_millis() as u64);
    (Duration::from_millis(ms), path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyplan::plan::Change;
    use skyplan::topology::Seed;

    fn action(id: usize, kind: ActionKind, deps: &[usize]) -> Action {
        Action {
            id,
            address: format!("a{id}"),
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

    fn backup(id: usize, deps: &[usize]) -> Action {
        let kind = ActionKind::Backup {
            source: "p".into(),
            seed: Seed::NewBackup,
            replicas: vec![],
        };
        action(id, kind, deps)
    }

    fn grant(id: usize, deps: &[usize]) -> Action {
        let kind = ActionKind::AllowlistGrant {
            source: "p".into(),
            replica: "r".into(),
        };
        action(id, kind, deps)
    }

    #[test]
    fn the_longest_weighted_chain_wins_not_the_longest_by_count() {
        // 0 -> 1 -> 2 (three long ops) beats 3 -> 4 -> 5 -> 6 (one long op, three instant).
        let actions = vec![
            backup(0, &[]),
            backup(1, &[0]),
            backup(2, &[1]),
            backup(3, &[]),
            grant(4, &[3]),
            grant(5, &[4]),
            grant(6, &[5]),
        ];
        let (total, path) = critical_path(&actions, emulated_delay(Duration::from_secs(2)));
        assert_eq!(total, Duration::from_secs(6));
        assert_eq!(path, vec![0, 1, 2]);
    }

    #[test]
    fn a_join_waits_for_its_slowest_dependency() {
        // 2 needs 0 (2 s) and 1 (4 s, given by the delay function): it ends at 4 + 2.
        let actions = vec![backup(0, &[]), backup(1, &[]), backup(2, &[0, 1])];
        let delay = |a: &Action| Duration::from_secs(if a.id == 1 { 4 } else { 2 });
        let (total, path) = critical_path(&actions, delay);
        assert_eq!(total, Duration::from_secs(6));
        assert_eq!(path, vec![1, 2]);
    }

    #[test]
    fn an_empty_plan_has_no_critical_path() {
        assert_eq!(
            critical_path(&[], emulated_delay(Duration::from_secs(1))),
            (Duration::ZERO, vec![])
        );
    }

    #[test]
    fn the_fan_out_example_is_create_backup_restore() {
        let t = skyplan::topology::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/fan-out.toml"
        )))
        .unwrap();
        let plan = skyplan::plan::build(&skyplan::plan::PlanInput {
            topology: &t,
            topology_sha256: "x",
            state: &skyplan::state::new_state(),
            observed: &skyplan::observed::Observed::offline(),
            flags: Default::default(),
        })
        .unwrap();
        let (total, path) = critical_path(&plan.actions, emulated_delay(Duration::from_secs(2)));
        assert_eq!(total, Duration::from_secs(6));
        let kinds: Vec<&str> = path
            .iter()
            .map(|&i| plan.actions[i].address.split('.').next().unwrap_or(""))
            .collect();
        // The zero-cost wiring after the restore may or may not end the path; the ops do.
        assert_eq!(&kinds[..3], &["service", "backup", "restore"]);
    }
}
