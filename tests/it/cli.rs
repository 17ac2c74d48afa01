//! The binary's contract: verbs, exit codes, stdout/stderr discipline, saved plans, locking.
//! Everything here runs offline (no emulator, no cloud).

use crate::support::cli::Test;
use crate::support::fixtures::{applied, example};

fn write_applied_state(t: &Test, example_name: &str) -> skyplan::state::State {
    let topo = example(example_name);
    let state = applied(&topo);
    let path = t.state_file(example_name.trim_end_matches(".toml"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, skyplan::state::codec::to_json(&state).unwrap()).unwrap();
    state
}

#[test]
fn validate_accepts_the_examples() {
    let r = Test::new()
        .example("global-replication.toml")
        .example("fan-out.toml")
        .args(&["validate", "global-replication.toml", "fan-out.toml"])
        .run()
        .expect_code(0);
    assert!(r
        .stdout
        .contains("global-replication.toml: valid (2 services, 1 replication links)"));
}

#[test]
fn validate_reports_located_errors_and_exits_1() {
    let r = Test::new()
        .file(
            "skyplan.toml",
            "[services.a]\nname = \"Bad_Name\"\nregoin = \"x\"\n",
        )
        .args(&["validate"])
        .run()
        .expect_code(1);
    assert!(r.stderr.contains("skyplan.toml:3:1"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `region`"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn offline_plan_on_empty_state_exits_2_with_detailed_exitcode() {
    let mut t = Test::new().example("global-replication.toml");
    t.args(&[
        "plan",
        "global-replication.toml",
        "--refresh=false",
        "--detailed-exitcode",
    ])
    .run()
    .expect_code(2)
    .stdout_snapshot("cli__plan_empty_state", t.path());
    // A plan writes nothing.
    assert!(!t.path().join("state").exists());
    let r = t
        .args(&["plan", "global-replication.toml", "--refresh=false"])
        .run()
        .expect_code(0);
    assert!(r.stdout.contains("Plan: 6 to add"));
}

#[test]
fn plan_against_applied_state_says_no_changes_and_exits_0() {
    let mut t = Test::new().example("global-replication.toml");
    write_applied_state(&t, "global-replication.toml");
    let r = t
        .args(&[
            "plan",
            "global-replication.toml",
            "--refresh=false",
            "--detailed-exitcode",
        ])
        .run()
        .expect_code(0);
    assert!(r.stdout.contains("No changes."), "{}", r.stdout);
}

#[test]
fn json_plan_goes_to_stdout_and_parses() {
    let r = Test::new()
        .example("global-replication.toml")
        .args(&[
            "plan",
            "global-replication.toml",
            "--refresh=false",
            "--json",
        ])
        .run()
        .expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("stdout is JSON only");
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["summary"]["add"], 6);
    // A greenfield plan: the restore seeds a service this plan creates, so it wipes nothing.
    assert_eq!(v["actions"][3]["kind"], "restore");
    assert_eq!(v["actions"][3]["wipes_data"], false);
    assert_eq!(v["summary"]["wipes_data"], 0);
}

#[test]
fn saved_plan_is_shown_and_refused_when_stale() {
    let mut t = Test::new().example("global-replication.toml");
    let mut state = write_applied_state(&t, "global-replication.toml");
    let bigger = std::fs::read_to_string(t.path().join("global-replication.toml"))
        .unwrap()
        .replace(
            "region = \"us-west1\"",
            "region = \"us-west1\"\nsize = \"sky-4x16\"",
        );
    std::fs::write(t.path().join("global-replication.toml"), bigger).unwrap();
    t.args(&[
        "plan",
        "global-replication.toml",
        "--refresh=false",
        "--out",
        "resize.plan",
    ])
    .run()
    .expect_code(0);
    let shown = t.args(&["show", "resize.plan"]).run().expect_code(0);
    assert!(
        shown.stdout.contains("~ service.secondary"),
        "{}",
        shown.stdout
    );
    // Someone else applies in between: the state's serial moves on.
    state.serial += 1;
    std::fs::write(
        t.state_file("global-replication"),
        skyplan::state::codec::to_json(&state).unwrap(),
    )
    .unwrap();
    let r = t.args(&["apply", "resize.plan"]).run().expect_code(1);
    assert!(r.stderr.contains("stale plan"), "{}", r.stderr);
    assert!(r.stderr.contains("serial 7 then, 8 now"), "{}", r.stderr);
}

#[test]
fn saved_plan_is_refused_when_the_topology_changed() {
    let mut t = Test::new().example("global-replication.toml");
    write_applied_state(&t, "global-replication.toml");
    t.args(&[
        "plan",
        "global-replication.toml",
        "--refresh=false",
        "--out",
        "p.json",
    ])
    .run()
    .expect_code(0);
    let edited =
        std::fs::read_to_string(t.path().join("global-replication.toml")).unwrap() + "\n# edited\n";
    std::fs::write(t.path().join("global-replication.toml"), edited).unwrap();
    let r = t.args(&["apply", "p.json"]).run().expect_code(1);
    assert!(
        r.stderr.contains("changed since the plan was made"),
        "{}",
        r.stderr
    );
}

#[test]
fn apply_refuses_without_a_terminal_and_changes_nothing() {
    // It plans first (a no-op apply succeeds without a terminal, so it must know), then
    // refuses to carry out changes nobody confirmed: nothing is created, no state written.
    let mut t = Test::new().example("global-replication.toml");
    let r = t
        .args(&["apply", "global-replication.toml"])
        .stdin("yes\n")
        .run()
        .expect_code(1);
    assert!(r.stderr.contains("stdin is not a terminal"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert!(
        r.stdout.contains("service.primary"),
        "the plan is shown: {}",
        r.stdout
    );
    assert!(!t.state_file("global-replication").exists());
}

#[test]
fn a_second_writer_is_told_who_holds_the_lock() {
    let mut t = Test::new().example("global-replication.toml");
    let mut holder = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let lock = serde_json::json!({
        "id": "abc", "pid": holder.id(), "host": gethostname::gethostname().to_string_lossy(),
        "user": "alice", "command": "skyplan apply global-replication.toml", "created_at": now_rfc3339()
    });
    std::fs::create_dir_all(t.path().join("state")).unwrap();
    std::fs::write(
        t.path().join("state/global-replication.state.json.lock"),
        lock.to_string(),
    )
    .unwrap();
    let r = t
        .args(&["apply", "global-replication.toml", "--auto-approve"])
        .run();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&holder.id().to_string()), "{}", r.stderr);
    assert!(
        r.stderr.contains("skyplan apply global-replication.toml"),
        "{}",
        r.stderr
    );
}

#[test]
fn graph_prints_dot() {
    let r = Test::new()
        .example("global-replication.toml")
        .args(&["graph", "global-replication.toml"])
        .run()
        .expect_code(0);
    assert!(r.stdout.starts_with("digraph skyplan {"));
    assert!(
        r.stdout
            .contains("\"restore.secondary\" -> \"replication.secondary\""),
        "{}",
        r.stdout
    );
}

#[test]
fn show_without_a_file_prints_the_state() {
    let mut t = Test::new().example("global-replication.toml");
    let state = write_applied_state(&t, "global-replication.toml");
    let r = t
        .args(&["show", "--topology", "global-replication.toml"])
        .run()
        .expect_code(0);
    assert!(r.stdout.contains(&state.lineage), "{}", r.stdout);
    assert!(
        r.stdout.contains("replication.secondary: from primary"),
        "{}",
        r.stdout
    );
    let j = t
        .args(&["show", "--topology", "global-replication.toml", "--json"])
        .run()
        .expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["serial"], 7);
}

#[test]
fn destroy_refuses_without_a_terminal() {
    let mut t = Test::new().example("global-replication.toml");
    write_applied_state(&t, "global-replication.toml");
    t.args(&["destroy", "global-replication.toml"])
        .run()
        .expect_code(1);
}

#[test]
fn state_commands_list_show_pull_push_and_migrate_locally() {
    let mut t = Test::new().example("global-replication.toml");
    let state = write_applied_state(&t, "global-replication.toml");
    let list = t
        .args(&["state", "list", "global-replication.toml"])
        .run()
        .expect_code(0);
    assert!(list.stdout.contains("service.primary\n"), "{}", list.stdout);
    assert!(
        list.stdout.contains("allowlist.primary.secondary\n"),
        "{}",
        list.stdout
    );
    let show = t
        .args(&[
            "state",
            "show",
            "replication.secondary",
            "global-replication.toml",
        ])
        .run()
        .expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["source"], "primary");
    t.args(&["state", "show", "service.nope", "global-replication.toml"])
        .run()
        .expect_code(1);
    let pulled = t
        .args(&["state", "pull", "global-replication.toml"])
        .run()
        .expect_code(0);
    assert_eq!(
        pulled.stdout.trim_end(),
        skyplan::state::codec::to_json(&state).unwrap().trim_end()
    );

    // Another lineage is refused unless forced; the stored file is untouched.
    let mut other = state.clone();
    other.lineage = "11111111-1111-4111-8111-111111111111".into();
    std::fs::write(
        t.path().join("other.json"),
        skyplan::state::codec::to_json(&other).unwrap(),
    )
    .unwrap();
    let before = std::fs::read(t.state_file("global-replication")).unwrap();
    let r = t
        .args(&[
            "state",
            "push",
            "global-replication.toml",
            "--from",
            "other.json",
        ])
        .run()
        .expect_code(1);
    assert!(r.stderr.contains("lineage"), "{}", r.stderr);
    assert_eq!(
        std::fs::read(t.state_file("global-replication")).unwrap(),
        before
    );

    // Migrate to another file and back: same lineage, serial and content.
    t.args(&[
        "state",
        "migrate",
        "global-replication.toml",
        "--to",
        "elsewhere/copy.json",
    ])
    .run()
    .expect_code(0);
    let copy = std::fs::read_to_string(t.path().join("elsewhere/copy.json")).unwrap();
    assert_eq!(copy.trim_end(), pulled.stdout.trim_end());
}

#[test]
fn every_broken_topology_in_the_corpus_exits_1_with_a_located_error_and_writes_nothing() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/topology");
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "the corpus must hold at least 30 broken files"
    );
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let mut t = Test::new();
        std::fs::copy(&f, t.path().join(&name)).unwrap();
        let r = t.args(&["plan", &name, "--refresh=false"]).run();
        assert_eq!(r.code, 1, "{name}: exit {}\n{}", r.code, r.stderr);
        assert!(!r.stderr.contains("panicked"), "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!("--> {name}")),
            "{name}: no location in\n{}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{name}: {}", r.stdout);
        assert!(
            !t.path().join("state").exists(),
            "{name}: something was written"
        );
    }
}

#[test]
fn destroy_refuses_protected_services_before_touching_anything() {
    let mut t = Test::new().example("global-replication.toml");
    write_applied_state(&t, "global-replication.toml");
    let protected = std::fs::read_to_string(t.path().join("global-replication.toml"))
        .unwrap()
        .replace(
            "name = \"skysql-primary\"",
            "name = \"skysql-primary\"\ndeletion_protection = true",
        );
    std::fs::write(t.path().join("global-replication.toml"), protected).unwrap();
    let before = std::fs::read(t.state_file("global-replication")).unwrap();
    let r = t
        .args(&["destroy", "global-replication.toml", "--auto-approve"])
        .run()
        .expect_code(1);
    assert!(
        r.stderr.contains("deletion_protection = true"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("service.primary"), "{}", r.stderr);
    assert!(
        !t.path().join("emulator").exists(),
        "nothing may be contacted"
    );
    assert_eq!(
        std::fs::read(t.state_file("global-replication")).unwrap(),
        before
    );
}

#[test]
fn the_state_is_found_beside_the_topology_from_any_working_directory() {
    let mut t = Test::new();
    let topo = example("global-replication.toml");
    let state = applied(&topo);
    let text = guide_text();
    t = t.file("infra/global-replication.toml", &text).file(
        "infra/state/global-replication.state.json",
        &skyplan::state::codec::to_json(&state).unwrap(),
    );
    // From the parent directory: the applied state beside the file is used (no changes).
    t.args(&[
        "plan",
        "infra/global-replication.toml",
        "--refresh=false",
        "--detailed-exitcode",
    ])
    .run()
    .expect_code(0);
    assert!(
        !t.path().join("state").exists(),
        "no state created elsewhere"
    );
}

#[test]
fn a_state_at_the_old_working_directory_location_is_used_with_a_note() {
    let mut t = Test::new();
    let topo = example("global-replication.toml");
    let state = applied(&topo);
    let text = guide_text();
    t = t.file("infra/global-replication.toml", &text).file(
        "state/global-replication.state.json",
        &skyplan::state::codec::to_json(&state).unwrap(),
    );
    let r = t
        .args(&[
            "plan",
            "infra/global-replication.toml",
            "--refresh=false",
            "--detailed-exitcode",
        ])
        .run()
        .expect_code(0);
    assert!(
        r.stderr
            .contains("Note: using the state at state/global-replication.state.json")
            && r.stderr
                .contains("infra/state/global-replication.state.json"),
        "{}",
        r.stderr
    );
}

fn guide_text() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/global-replication.toml"),
    )
    .unwrap()
}

/// Now, as a lock record writes it: a live holder took its lock after it started.
fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A lock naming a live but unrelated process (its pid was reused: the process started long
/// after the lock was taken) is stale: the next writer takes it over and says so. A lock
/// written by a skyplan that recorded no start time is judged by its clock.
#[test]
fn a_lock_whose_pid_was_reused_is_taken_over_with_a_note() {
    let hour_ago = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    take_over_a_reused_pid(|_| serde_json::json!({ "created_at": hour_ago }));
}

/// A holder killed with -9 whose pid went at once to an unrelated process: the lock records
/// the holder's boot id and start time, so the new process is not its holder even though the
/// lock was taken a moment ago. No slack.
#[test]
fn a_lock_whose_pid_was_reused_at_once_is_taken_over_by_its_exact_identity() {
    take_over_a_reused_pid(|pid| {
        let ticks = skyplan_os::process_start_ticks(pid).unwrap();
        serde_json::json!({
            "created_at": now_rfc3339(),
            "boot_id": skyplan_os::boot_id(),
            // The dead holder started a tick before the process that now has its pid.
            "pid_start_ticks": ticks.saturating_sub(1),
        })
    });
}

fn take_over_a_reused_pid(identity: impl FnOnce(u32) -> serde_json::Value) {
    let mut t = Test::new().example("global-replication.toml");
    let state = write_applied_state(&t, "global-replication.toml");
    std::fs::write(
        t.path().join("copy.json"),
        skyplan::state::codec::to_json(&state).unwrap(),
    )
    .unwrap();
    let mut unrelated = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let mut lock = serde_json::json!({
        "id": "abc", "pid": unrelated.id(), "host": gethostname::gethostname().to_string_lossy(),
        "user": "alice", "command": "skyplan apply global-replication.toml",
    });
    if let (Some(l), serde_json::Value::Object(extra)) =
        (lock.as_object_mut(), identity(unrelated.id()))
    {
        l.extend(extra);
    }
    std::fs::write(
        t.path().join("state/global-replication.state.json.lock"),
        lock.to_string(),
    )
    .unwrap();
    let r = t
        .args(&[
            "state",
            "push",
            "global-replication.toml",
            "--from",
            "copy.json",
        ])
        .run();
    let _ = unrelated.kill();
    let _ = unrelated.wait();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains(&format!("took over a stale lock of pid {}", unrelated.id())),
        "{}",
        r.stderr
    );
}

#[test]
fn graph_with_nothing_planned_draws_the_managed_services_and_their_links() {
    let mut t = Test::new().example("global-replication.toml");
    write_applied_state(&t, "global-replication.toml");
    let dir = t.path().to_path_buf();
    t.args(&["graph", "global-replication.toml"])
        .run()
        .expect_code(0)
        .stdout_snapshot("cli__graph_of_an_applied_state", &dir);
}

/// Issue 27: `graph --format mermaid` for pull requests — the same graphs in Mermaid, for the
/// managed topology and for a plan.
#[test]
fn graph_in_mermaid_for_the_state_and_for_a_plan() {
    let mut t = Test::new().example("global-replication.toml");
    let dir = t.path().to_path_buf();
    t.args(&["graph", "global-replication.toml", "--format", "mermaid"])
        .run()
        .expect_code(0)
        .stdout_snapshot("cli__graph_mermaid_of_a_plan", &dir);
    write_applied_state(&t, "global-replication.toml");
    t.args(&["graph", "global-replication.toml", "--format", "mermaid"])
        .run()
        .expect_code(0)
        .stdout_snapshot("cli__graph_mermaid_of_an_applied_state", &dir);
}

/// Every argument of every command, as `--help` lists it, says what it is for: a flag
/// without help text is one a user has to guess (or read the source) to use.
#[test]
fn every_flag_and_argument_has_help_text() {
    use clap::CommandFactory;

    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let has_help = arg.get_help().is_some() || arg.get_long_help().is_some();
            if !has_help {
                let name = match arg.get_long() {
                    Some(long) => format!("--{long}"),
                    None => arg.get_id().to_string().to_uppercase(),
                };
                missing.push(format!("{path} {name}"));
            }
        }
        for sub in cmd.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                missing.push(format!("{sub_path} (the command itself)"));
            }
            walk(sub, &sub_path, missing);
        }
    }

    let mut cmd = skyplan::cli::Cli::command();
    // Built, so clap's own arguments (--help, --version) and global ones are in place.
    cmd.build();
    let mut missing = vec![];
    walk(&cmd, "skyplan", &mut missing);
    assert!(
        missing.is_empty(),
        "without help text:\n  {}",
        missing.join("\n  ")
    );
}

/// Issue 26: a device or an oversized file is refused before it is read (was: a saved plan
/// naming /dev/zero as its topology took 12 GB).
#[test]
fn a_device_is_never_read_as_a_topology() {
    let mut t = Test::new();
    let r = t.args(&["validate", "/dev/zero"]).run();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
}

/// Issue 27: Terraform's spellings — `-no-color`, `-input=false`, `-chdir=DIR` — work, and
/// `-lock=false` and `-var` are refused with the reason, never a clap error about `-l`.
#[test]
fn terraform_global_options_work_or_are_refused_with_the_reason() {
    let mut t = Test::new().example("global-replication.toml");
    let dir = t.path().to_path_buf();
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
    // -chdir before the command, from another directory; -no-color.
    let r = t
        .args(&[
            &format!("-chdir={}", dir.display()),
            "plan",
            "global-replication.toml",
            "-refresh=false",
            "-no-color",
        ])
        .run();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("service.primary") && !r.stdout.contains('\u{1b}'));
    let missing = t
        .args(&["-chdir=/nonexistent-dir-for-skyplan", "plan"])
        .run();
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("cannot change to it"),
        "{}",
        missing.stderr
    );
    for (arg, why) in [
        ("-lock=false", "skyplan always locks the state"),
        ("-var=x=1", "skyplan has no variables"),
        ("-var-file=v.tfvars", "skyplan has no variables"),
    ] {
        let r = t.args(&["plan", "global-replication.toml", arg]).run();
        assert_eq!(r.code, 1, "{arg}");
        assert!(r.stderr.contains(why), "{arg}: {}", r.stderr);
    }
    // -input=false: never prompt; an apply that needs confirmation fails as without a terminal.
    let r = t
        .args(&["apply", "global-replication.toml", "-input=false"])
        .run();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("refusing to apply without confirmation"),
        "{}",
        r.stderr
    );
}

/// Issue 27: starting the local emulator in the background is said (pid, directory, how to
/// stop it), once: a second command reuses it silently.
#[test]
fn the_emulator_started_in_the_background_is_said_once() {
    let mut t = Test::new().example("global-replication.toml");
    let r = t.args(&["plan", "global-replication.toml"]).run();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("Note: started the local emulator in the background (pid ")
            && r.stderr.contains("skyplan emulator stop"),
        "{}",
        r.stderr
    );
    let again = t.args(&["plan", "global-replication.toml"]).run();
    assert!(
        !again.stderr.contains("started the local emulator"),
        "{}",
        again.stderr
    );
}

/// Issue 27: the topology file may stand on either side of the other positional, as users
/// type it: `output NAME FILE` and `state show FILE ADDRESS` work like their usual order.
#[test]
fn the_file_may_come_before_or_after_the_name() {
    let mut t = Test::new().example("global-replication.toml");
    write_applied_state(&t, "global-replication.toml");
    let usual = t
        .args(&["output", "global-replication.toml", "primary", "--json"])
        .run()
        .expect_code(0);
    let swapped = t
        .args(&["output", "primary", "global-replication.toml", "--json"])
        .run()
        .expect_code(0);
    assert_eq!(usual.stdout, swapped.stdout);
    let usual = t
        .args(&[
            "state",
            "show",
            "service.primary",
            "global-replication.toml",
        ])
        .run()
        .expect_code(0);
    let swapped = t
        .args(&[
            "state",
            "show",
            "global-replication.toml",
            "service.primary",
        ])
        .run()
        .expect_code(0);
    assert_eq!(usual.stdout, swapped.stdout);
}

/// Issue 27: the pull-request workflow's command, as it is written there: `-no-color
/// -input=false` before the command, `--detailed-exitcode` (2: changes) and `--format
/// markdown` (a document with the estimate, the table and the picture).
#[test]
fn the_pull_request_workflows_plan_command_prints_markdown_and_exits_2_on_changes() {
    let wf: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/ci/github-plan-comment.yml"
        ))
        .unwrap(),
    )
    .expect("valid YAML");
    let steps = wf["jobs"]["plan"]["steps"].as_sequence().unwrap();
    let plan_step = steps.iter().find(|s| s["id"] == "plan").unwrap();
    let run = plan_step["run"].as_str().unwrap();
    for want in [
        "-no-color -input=false plan",
        "--detailed-exitcode",
        "--format markdown",
    ] {
        assert!(run.contains(want), "{want} in {run}");
    }
    assert!(wf["on"]["pull_request"].is_mapping(), "{:?}", wf["on"]);
    assert_eq!(wf["permissions"]["pull-requests"], "write");

    let mut t = Test::new().example("global-replication.toml");
    let r = t
        .args(&[
            "-no-color",
            "-input=false",
            "plan",
            "global-replication.toml",
            "--detailed-exitcode",
            "--format",
            "markdown",
            "--refresh=false",
        ])
        .run()
        .expect_code(2);
    for want in [
        "### skyplan plan for global-replication.toml",
        "**Plan: 6 to add,",
        "Estimated time: \\~",
        "| 1 | + | service.primary |",
        "```mermaid",
    ] {
        assert!(r.stdout.contains(want), "{want} in\n{}", r.stdout);
    }
    assert!(!r.stdout.contains('\u{1b}'), "no colour: {}", r.stdout);
    // --json and --format are one choice.
    t.args(&[
        "plan",
        "global-replication.toml",
        "--json",
        "--format",
        "markdown",
    ])
    .run()
    .expect_code(1);
}
