//! CLI errors as a user sees them, snapshot-tested: a held lock, a stale plan, a state
//! directory that cannot be written, a file that is not a plan. Each must fail with exit 1 and
//! leave everything as it was. All offline: they fail before anything is contacted.

use crate::support::cli::Test;
use crate::support::fixtures::{applied, example};

const GUIDE: &str = "global-replication.toml";

/// A test dir holding the guide's topology and an applied state for it.
fn applied_guide() -> Test {
    let t = Test::new().example(GUIDE);
    let state = applied(&example(GUIDE));
    let path = t.state_file("global-replication");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, skyplan::state::codec::to_json(&state).unwrap()).unwrap();
    t
}

#[test]
fn a_held_lock_names_its_holder() {
    let mut t = applied_guide();
    // The holder is this test process: alive, on this host, so never taken over.
    let holder = serde_json::json!({
        "id": "0a1b2c3d-0000-4000-8000-000000000001",
        "pid": std::process::id(),
        "host": gethostname::gethostname().to_string_lossy(),
        "user": "ops",
        "command": "skyplan apply global-replication.toml",
        // Taken now, after this process started: its holder, alive.
        "created_at": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    });
    let state = t.state_file("global-replication");
    let lock = state.with_extension("json.lock");
    std::fs::write(&lock, holder.to_string()).unwrap();
    let before = std::fs::read(&state).unwrap();

    let dir = t.path().to_path_buf();
    let r = t
        .args(&["apply", GUIDE, "--auto-approve"])
        .run()
        .expect_code(1)
        .stderr_contains("locked by pid")
        .stderr_snapshot("cli_errors__held_lock", &dir);
    assert_eq!(std::fs::read(&state).unwrap(), before, "state untouched");
    assert!(lock.exists(), "the holder's lock stays");

    // Issue 27: the hint works as printed — it names the file this run was given, so run
    // verbatim it finds the lock (and, its holder alive, asks for --force) instead of
    // failing on a skyplan.toml that does not exist.
    let hint = r
        .stderr
        .split("run `")
        .nth(1)
        .unwrap()
        .split('`')
        .next()
        .unwrap();
    assert!(hint.ends_with(GUIDE), "{hint}");
    let words: Vec<&str> = hint.split_whitespace().skip(1).collect();
    let r = t.args(&words).run();
    assert!(!r.stderr.contains("skyplan.toml"), "{}", r.stderr);
    assert!(
        r.stderr.contains("0a1b2c3d-0000-4000-8000-000000000001"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_stale_plan_is_refused() {
    let mut t = applied_guide();
    t.args(&[
        "plan",
        GUIDE,
        "--refresh=false",
        "--out",
        "reviewed.plan.json",
    ])
    .run()
    .expect_code(0);
    // The topology changes after the review.
    let file = t.path().join(GUIDE);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("storage = 100", "storage = 200")).unwrap();
    let state = t.state_file("global-replication");
    let before = std::fs::read(&state).unwrap();

    let dir = t.path().to_path_buf();
    t.args(&["apply", "reviewed.plan.json"])
        .run()
        .expect_code(1)
        .stderr_contains("stale plan")
        .stderr_snapshot("cli_errors__stale_plan", &dir);
    assert_eq!(std::fs::read(&state).unwrap(), before, "state untouched");
}

#[test]
fn an_unwritable_state_directory_is_named() {
    // `state` is a file, so nothing can be created under it (even as root).
    let mut t = Test::new()
        .example(GUIDE)
        .file("state", "not a directory\n");
    let dir = t.path().to_path_buf();
    t.args(&["apply", GUIDE, "--auto-approve"])
        .run()
        .expect_code(1)
        .stderr_snapshot("cli_errors__unwritable_state_dir", &dir);
    assert_eq!(
        std::fs::read_to_string(t.path().join("state")).unwrap(),
        "not a directory\n"
    );
    assert!(!t.path().join("emulator").exists(), "no emulator started");
}

/// `--sql-parallelism` takes 1 or more: 0 (which would read nothing) or a word is refused
/// before anything is read or contacted.
#[test]
fn a_sql_parallelism_below_one_is_refused() {
    for (cmd, bad) in [("plan", "0"), ("apply", "many"), ("import", "1.5")] {
        let mut t = applied_guide();
        let before = std::fs::read(t.state_file("global-replication")).unwrap();
        let r = t.args(&[cmd, "--sql-parallelism", bad]).run();
        assert_ne!(r.code, 0, "{cmd} {bad}: {}", r.stderr);
        assert!(
            r.stderr.contains("--sql-parallelism")
                && r.stderr.contains("is not a number of sessions (1 or more)"),
            "{cmd} {bad}: {}",
            r.stderr
        );
        assert_eq!(
            std::fs::read(t.state_file("global-replication")).unwrap(),
            before
        );
    }
}

#[test]
fn a_file_that_is_not_a_plan_is_refused() {
    let mut t = applied_guide().file("plan.json", "{\"format_version\": 1, \"actions\": 7}\n");
    let dir = t.path().to_path_buf();
    t.args(&["apply", "plan.json"])
        .run()
        .expect_code(1)
        .stderr_contains("is not a skyplan plan file")
        .stderr_snapshot("cli_errors__bad_plan_file", &dir);

    let mut t = applied_guide().file("newer.json", "{\"format_version\": 99}\n");
    let dir = t.path().to_path_buf();
    t.args(&["apply", "newer.json"])
        .run()
        .expect_code(1)
        .stderr_snapshot("cli_errors__newer_plan_file", &dir);
}

#[test]
fn a_state_of_another_cloud_is_refused_before_anything_is_planned() {
    let mut t = applied_guide();
    let path = t.state_file("global-replication");
    let mut state = skyplan::state::codec::from_json(&std::fs::read(&path).unwrap(), "s").unwrap();
    state.endpoint = Some("local:an-emulator-that-is-not-this-one".into());
    let bytes = skyplan::state::codec::to_json(&state).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let dir = t.path().to_path_buf();
    // Refreshing reaches this test's own emulator: another cloud than the state's.
    t.args(&["plan", GUIDE, "--detailed-exitcode"])
        .run()
        .expect_code(1)
        .stderr_contains("refusing to plan against another cloud")
        .stderr_snapshot("cli_errors__other_cloud", &dir);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), bytes);
}

#[test]
fn an_unreachable_endpoint_is_an_error_even_with_an_empty_state() {
    let topology = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(GUIDE),
    )
    .unwrap()
    .replacen(
        "endpoint = \"local\"",
        "endpoint = \"http://127.0.0.1:9\"",
        1,
    );
    assert!(topology.contains("http://127.0.0.1:9"));
    let mut t = Test::new()
        .file(GUIDE, &topology)
        .env("API_KEY", "not-a-real-key");
    let r = t
        .args(&["plan", GUIDE, "--detailed-exitcode"])
        .run()
        .expect_code(1);
    assert!(r.stdout.is_empty(), "nothing planned: {}", r.stdout);
    assert!(!t.path().join("state").exists());
}
