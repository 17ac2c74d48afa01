//! Terraform's everyday verbs through the binary: `state rm`, `state mv`, `output`,
//! `completions`, `version`, and one name for one thing in the plan, `state list` and
//! `state show`. Offline against a recorded state, and once against the emulator's real
//! services (mv then plan shows no changes; rm changes nothing remote).

use serde_json::Value;
use skyplan::state::{ReplicationUserRecord, State};

use crate::support::cli::Test;
use crate::support::e2e::Cloud;
use crate::support::fixtures::{applied, example};

const GUIDE: &str = "global-replication.toml";

/// The guide, applied and healthy, recorded in the state of topology `as_file` (a copy of
/// the guide under that name).
fn guide_applied_as(t: Test, as_file: &str) -> (Test, State) {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/global-replication.toml"
    ))
    .unwrap();
    let t = t.file(as_file, &src);
    let mut state = applied(&example(GUIDE));
    state.resources.replication_users.insert(
        "skysql_replication_x@10.0.0.2".into(),
        ReplicationUserRecord {
            on: "primary".into(),
            replica: "secondary".into(),
        },
    );
    let path = t.state_file(as_file.trim_end_matches(".toml"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, skyplan::state::codec::to_json(&state).unwrap()).unwrap();
    (t, state)
}

fn guide_applied() -> (Test, State) {
    guide_applied_as(Test::new(), GUIDE)
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}):\n{s}"))
}

fn assert_matches_schema(schema: &str, doc: &Value) {
    let path = format!("{}/schemas/{schema}", env!("CARGO_MANIFEST_DIR"));
    let schema_json: Value = json(&std::fs::read_to_string(path).unwrap());
    let compiled = jsonschema::JSONSchema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .compile(&schema_json)
        .expect("schema compiles");
    let errors: Vec<String> = match compiled.validate(doc) {
        Ok(()) => return,
        Err(e) => e.map(|e| format!("{e} at {}", e.instance_path)).collect(),
    };
    panic!("does not match {schema}:\n{}\n{doc:#}", errors.join("\n"));
}

/// The addresses of a plan's actions (`plan --json`).
fn plan_addresses(plan: &Value) -> Vec<String> {
    plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| a["address"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn state_list_and_show_name_each_record_as_the_plan_does() {
    let mut t = Test::new().example(GUIDE);
    let plan = t
        .args(&["plan", GUIDE, "--refresh=false", "--json"])
        .run()
        .expect_code(0);
    let planned = plan_addresses(&json(&plan.stdout));
    assert!(
        planned.contains(&"backup.primary".to_string()),
        "{planned:?}"
    );

    let (mut t, _) = guide_applied_as(t, GUIDE);
    let list = t.args(&["state", "list", GUIDE]).run().expect_code(0);
    for address in &planned {
        assert!(
            lines(&list.stdout).contains(&address.as_str()),
            "the plan's {address} is not in `state list`:\n{}",
            list.stdout
        );
    }
    assert_eq!(
        lines(&list.stdout),
        [
            "service.primary",
            "service.secondary",
            "backup.primary",
            "restore.secondary",
            "allowlist.primary.secondary",
            "replication.secondary",
            "replication_user.primary.skysql_replication_x",
        ]
    );

    // Every listed address shows; the backup says which replicas it seeded.
    for address in lines(&list.stdout) {
        t.args(&["state", "show", address, GUIDE])
            .run()
            .expect_code(0);
    }
    let backup = t
        .args(&["state", "show", "backup.primary", GUIDE])
        .run()
        .expect_code(0);
    let backup = json(&backup.stdout);
    assert_eq!(backup["source"], "primary");
    assert_eq!(backup["replicas"], serde_json::json!(["secondary"]));
    // The old spelling (the state's key) still works.
    let old = t
        .args(&["state", "show", "backup.secondary", GUIDE])
        .run()
        .expect_code(0);
    assert_eq!(json(&old.stdout)["backup_id"], backup["backup_id"]);
    let user = t
        .args(&[
            "state",
            "show",
            "replication_user.primary.skysql_replication_x",
            GUIDE,
        ])
        .run()
        .expect_code(0);
    assert_eq!(json(&user.stdout)["user"], "skysql_replication_x@10.0.0.2");
    t.args(&["state", "show", "service.primray", GUIDE])
        .run()
        .expect_code(1)
        .stderr_contains("no `service.primray` in the state (did you mean `service.primary`?)");
}

#[test]
fn state_rm_forgets_a_replica_and_what_belongs_to_it() {
    let (mut t, state) = guide_applied();
    let before = std::fs::read(t.state_file("global-replication")).unwrap();

    // The primary is still named by the replica's records: refused, with the command that
    // would be accepted, and the state untouched.
    t.args(&["state", "rm", "service.primary", GUIDE])
        .run()
        .expect_code(1)
        .stderr_contains("refusing to forget service.primary alone")
        .stderr_contains("replication.secondary: replicates from service.primary")
        .stderr_contains(
            "`skyplan state rm service.primary service.secondary global-replication.toml`",
        );
    t.args(&["state", "rm", "service.nope", GUIDE])
        .run()
        .expect_code(1)
        .stderr_contains("no `service.nope` in the state");
    t.args(&["state", "rm", GUIDE])
        .run()
        .expect_code(1)
        .stderr_contains("is not an address");
    assert_eq!(
        std::fs::read(t.state_file("global-replication")).unwrap(),
        before
    );

    let r = t
        .args(&["state", "rm", "service.secondary", GUIDE])
        .run()
        .expect_code(0)
        .stderr_contains("[services.secondary] is still in global-replication.toml")
        .stderr_contains("the replication user skysql_replication_x@10.0.0.2");
    r.stdout_snapshot("cli_verbs__state_rm", t.path());
    let list = t.args(&["state", "list", GUIDE]).run().expect_code(0);
    assert_eq!(lines(&list.stdout), ["service.primary"]);
    let after: State = skyplan::state::codec::from_json(
        &std::fs::read(t.state_file("global-replication")).unwrap(),
        "state",
    )
    .unwrap();
    assert_eq!(after.serial, state.serial + 1, "a write bumps the serial");
    assert_eq!(after.lineage, state.lineage);
    assert_eq!(
        after.resources.services["primary"],
        state.resources.services["primary"]
    );
    // The previous version is kept.
    let history = t.args(&["state", "history", GUIDE]).run().expect_code(0);
    assert!(history.stdout.contains("serial 8"), "{}", history.stdout);
    assert!(history.stdout.contains("serial 7"), "{}", history.stdout);
}

#[test]
fn state_rm_takes_several_addresses_and_the_file_last() {
    let (mut t, _) = guide_applied();
    t.args(&[
        "state",
        "rm",
        "replication.secondary",
        "backup.primary",
        "allowlist.primary.secondary",
        GUIDE,
    ])
    .run()
    .expect_code(0);
    let list = t.args(&["state", "list", GUIDE]).run().expect_code(0);
    assert_eq!(
        lines(&list.stdout),
        [
            "service.primary",
            "service.secondary",
            "restore.secondary",
            "replication_user.primary.skysql_replication_x",
        ]
    );
}

#[test]
fn state_rm_waits_for_and_respects_the_lock() {
    let (mut t, _) = guide_applied();
    let lock = t.path().join("state/global-replication.state.json.lock");
    // A live holder (this test's own process) holds the lock: rm waits, then gives up and
    // changes nothing.
    std::fs::write(
        &lock,
        serde_json::json!({
            "id": "abc", "pid": std::process::id(),
            "host": gethostname::gethostname().to_string_lossy(),
            "user": "someone", "command": "skyplan apply",
            // Taken now, after this process started: a live holder, not a stale lock.
            "created_at": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        })
        .to_string(),
    )
    .unwrap();
    t.args(&[
        "state",
        "rm",
        "service.secondary",
        GUIDE,
        "--lock-timeout",
        "1s",
    ])
    .run()
    .expect_code(1)
    .stderr_contains("lock");
    std::fs::remove_file(&lock).unwrap();
    let list = t.args(&["state", "list", GUIDE]).run().expect_code(0);
    assert!(list.stdout.contains("service.secondary"), "{}", list.stdout);
}

#[test]
fn state_mv_renames_the_key_in_every_record() {
    let (mut t, state) = guide_applied();
    let r = t
        .args(&["state", "mv", "service.secondary", "service.west", GUIDE])
        .run()
        .expect_code(0)
        .stderr_contains("has no [services.west] yet");
    r.stdout_snapshot("cli_verbs__state_mv", t.path());
    let list = t.args(&["state", "list", GUIDE]).run().expect_code(0);
    assert_eq!(
        lines(&list.stdout),
        [
            "service.primary",
            "service.west",
            "backup.primary",
            "restore.west",
            "allowlist.primary.west",
            "replication.west",
            "replication_user.primary.skysql_replication_x",
        ]
    );
    let pulled = t.args(&["state", "pull", GUIDE]).run().expect_code(0);
    let after: State = skyplan::state::codec::from_json(pulled.stdout.as_bytes(), "s").unwrap();
    assert_eq!(after.serial, state.serial + 1);
    assert_eq!(
        after.resources.services["west"].id,
        state.resources.services["secondary"].id
    );
    assert!(
        !pulled.stdout.contains("\"secondary\""),
        "every record names the new key:\n{}",
        pulled.stdout
    );

    t.args(&["state", "mv", "service.west", "service.primary", GUIDE])
        .run()
        .expect_code(1)
        .stderr_contains("service.primary is already in the state");
    t.args(&["state", "mv", "restore.west", "restore.east", GUIDE])
        .run()
        .expect_code(1)
        .stderr_contains("not a service address");
    t.args(&["state", "mv", "service.west", "service.West", GUIDE])
        .run()
        .expect_code(1)
        .stderr_contains("invalid service key `West`");
}

#[test]
fn output_names_endpoints_roles_and_credentials() {
    let (t, state) = guide_applied_as(Test::new(), "skyplan.toml");
    let (mut t, _) = guide_applied_as(t, GUIDE);
    let text = t.args(&["output", GUIDE]).run().expect_code(0);
    let text = text.stdout_snapshot("cli_verbs__output_text", t.path());
    assert!(!text.stdout.contains("password"), "{}", text.stdout);

    let all = t.args(&["output", GUIDE, "--json"]).run().expect_code(0);
    let all = json(&all.stdout);
    assert_matches_schema("output.schema.json", &all);
    let primary_id = &state.resources.services["primary"].id;
    assert_eq!(all["services"]["primary"]["role"], "primary");
    assert_eq!(all["services"]["primary"]["id"], primary_id.as_str());
    let secondary = &all["services"]["secondary"];
    assert_eq!(secondary["role"], "replica");
    assert_eq!(secondary["replica_of"], "primary");
    assert_eq!(secondary["credentials"]["from"], "primary");
    assert_eq!(
        secondary["credentials"]["path"],
        format!("/provisioning/v1/services/{primary_id}/security/credentials")
    );
    assert_eq!(secondary["replication"]["source"], "primary");

    // NAME alone: the default topology file; the one service's object.
    let one = t
        .args(&["output", "service.secondary", "--json"])
        .run()
        .expect_code(0);
    let one = json(&one.stdout);
    assert_matches_schema("output.schema.json", &one);
    assert_eq!(&one, secondary);
    let named = t.args(&["output", GUIDE, "primary"]).run().expect_code(0);
    assert!(named.stdout.contains("service.primary"), "{}", named.stdout);
    assert!(
        !named.stdout.contains("service.secondary"),
        "{}",
        named.stdout
    );
    t.args(&["output", GUIDE, "nope"])
        .run()
        .expect_code(1)
        .stderr_contains("no output for service.nope: the state manages primary, secondary");
}

#[test]
fn output_without_a_state_is_empty_not_an_error() {
    let mut t = Test::new().example(GUIDE);
    let r = t.args(&["output", GUIDE, "--json"]).run().expect_code(0);
    let v = json(&r.stdout);
    assert_matches_schema("output.schema.json", &v);
    assert_eq!(v["services"], serde_json::json!({}));
}

#[test]
fn completions_for_each_shell() {
    let mut t = Test::new();
    for shell in ["bash", "zsh", "fish"] {
        let r = t.args(&["completions", shell]).run().expect_code(0);
        assert!(r.stdout.len() > 100, "{shell}: {}", r.stdout);
        assert!(r.stdout.contains("skyplan"), "{shell}");
        assert!(
            r.stdout.contains("output"),
            "{shell}: the new verbs complete too"
        );
    }
    // A usage error: 1 (2 only ever means changes or drift).
    t.args(&["completions", "tcsh"]).run().expect_code(1);
}

#[test]
fn version_in_text_and_json() {
    let mut t = Test::new();
    let v = t.args(&["version", "--json"]).run().expect_code(0);
    let v = json(&v.stdout);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        v["state_format_version"],
        skyplan::state::STATE_FORMAT_VERSION
    );
    assert_eq!(v["plan_format_version"], skyplan::plan::PLAN_FORMAT_VERSION);
    let text = t.args(&["version"]).run().expect_code(0);
    assert!(
        text.stdout
            .starts_with(&format!("skyplan {}\n", env!("CARGO_PKG_VERSION"))),
        "{}",
        text.stdout
    );
}

/// Against real services: one name for one thing after a real apply, `output` from the
/// applied state, `state mv` then a plan with no changes, `state rm` changing nothing remote.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_mv_then_plan_shows_no_changes_and_rm_touches_nothing_remote() {
    let mut cloud = Cloud::new(GUIDE);
    let plan = cloud.skyplan(&["plan", GUIDE, "--json"]).expect_code(0);
    let planned = plan_addresses(&json(&plan.stdout));
    cloud
        .skyplan(&["apply", GUIDE, "--auto-approve"])
        .expect_code(0);

    let list = cloud.skyplan(&["state", "list", GUIDE]).expect_code(0);
    for address in &planned {
        assert!(
            lines(&list.stdout).contains(&address.as_str()),
            "the plan's {address} is not in `state list`:\n{}",
            list.stdout
        );
    }

    let out = cloud.skyplan(&["output", GUIDE, "--json"]).expect_code(0);
    let out = json(&out.stdout);
    assert_matches_schema("output.schema.json", &out);
    let state = cloud.state().unwrap();
    assert_eq!(out["services"]["primary"]["role"], "primary");
    assert_eq!(
        out["services"]["primary"]["id"],
        state.resources.services["primary"].id.as_str()
    );
    assert_eq!(
        out["services"]["secondary"]["credentials"]["from"],
        "primary"
    );

    // Rename the key in the file and in the state: the same services, no changes.
    let file = cloud.dir().join(GUIDE);
    let src = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        src.replace("[services.secondary]", "[services.west]")
            .replace(
                "[services.secondary.replication]",
                "[services.west.replication]",
            ),
    )
    .unwrap();
    // Renamed in the file only, the plan would delete the service under one key and adopt
    // it under the other: refused, with the edit that makes them agree (issue 23).
    let r = cloud
        .skyplan(&["plan", GUIDE, "--detailed-exitcode"])
        .expect_code(1);
    assert!(
        r.stderr.contains(
            "run `skyplan state mv service.secondary service.west global-replication.toml`"
        ),
        "{}",
        r.stderr
    );
    cloud
        .skyplan(&["state", "mv", "service.secondary", "service.west", GUIDE])
        .expect_code(0);
    let plan = cloud.skyplan(&["plan", GUIDE, "--detailed-exitcode"]);
    assert_eq!(
        plan.code, 0,
        "after state mv the plan should be empty\n--- stdout:\n{}\n--- stderr:\n{}",
        plan.stdout, plan.stderr
    );

    // Forgetting the replica deletes nothing: the API lists the same services, still ready.
    let services = |list: Vec<skyplan::skysql::types::ServiceResponse>| {
        let mut v: Vec<(String, String, String)> = list
            .into_iter()
            .map(|s| (s.id, s.name, s.status.as_str().to_string()))
            .collect();
        v.sort();
        v
    };
    let remote_before = services(cloud.api().list_services().await.unwrap());
    assert_eq!(remote_before.len(), 2, "{remote_before:?}");
    cloud
        .skyplan(&["state", "rm", "service.west", GUIDE])
        .expect_code(0);
    let list = cloud.skyplan(&["state", "list", GUIDE]).expect_code(0);
    // The seed backup skyplan took stays listed (it stays in SkySQL) until named itself.
    let kept: Vec<&str> = lines(&list.stdout)
        .into_iter()
        .filter(|l| !l.starts_with("backup_made.primary."))
        .collect();
    assert_eq!(kept, ["service.primary", "config.primary"]);
    assert_eq!(
        services(cloud.api().list_services().await.unwrap()),
        remote_before
    );
}

/// Issue 23: `state mv` before the file is edited. Before, the plan deleted the service under
/// the new key and adopted it under the old one, and apply deleted it. Now plan and apply
/// refuse with the edit to make, and delete nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_mv_with_the_file_unedited_deletes_nothing() {
    let mut cloud = Cloud::new(GUIDE);
    cloud
        .skyplan(&["apply", GUIDE, "--auto-approve"])
        .expect_code(0);
    let before = cloud.api().list_services().await.unwrap().len();
    cloud
        .skyplan(&["state", "mv", "service.secondary", "service.west", GUIDE])
        .expect_code(0);
    for args in [
        vec!["plan", GUIDE, "--detailed-exitcode"],
        vec!["apply", GUIDE, "--auto-approve"],
    ] {
        let r = cloud.skyplan(&args).expect_code(1);
        assert!(
            r.stderr
                .contains("as service.west, and the file calls it service.secondary")
                && r.stderr
                    .contains("rename [services.secondary] to [services.west]"),
            "{args:?}\n{}",
            r.stderr
        );
    }
    assert_eq!(cloud.api().list_services().await.unwrap().len(), before);
}
