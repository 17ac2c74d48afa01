//! The guide's own start: "If you already have your Primary service running, you simply need to
//! create a new Secondary service." A primary made by hand, holding rows and written to the
//! whole time, is shown as `adopt` by `plan` (never `create`), adopted by apply as it is, and
//! the new secondary ends with every row of both tables (one without a primary key).

use std::time::Duration;

use mysql_async::prelude::*;

use crate::support::e2e::{
    audit_fingerprint, table_fingerprint, wait_converged, write_rows, Cloud,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hand_made_primary_with_rows_is_adopted_and_seeds_the_new_secondary() {
    let mut cloud = Cloud::new("global-replication.toml");
    cloud.start_emulator(&[]);
    let topo = skyplan::topology::load(&cloud.dir().join("global-replication.toml")).unwrap();
    let spec = topo.services["primary"].spec.clone();
    let theirs = cloud.create_by_hand(&spec).await;
    cloud.wait_service_ready(&theirs.id).await;

    // Rows before skyplan ever looks, and a writer that keeps going through plan and apply.
    let conn = cloud.sql_to_service(&theirs.id).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(write_rows(conn, stop_rx));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The plan shows the adoption, with the id, and counts it apart from what is added.
    let r = cloud
        .skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"])
        .expect_code(2);
    assert!(r.stdout.contains("<= service.primary"), "{}", r.stdout);
    assert!(r.stdout.contains(&theirs.id), "{}", r.stdout);
    assert!(
        // The five of the guide's seeding and wiring, and each service's configuration.
        r.stdout.contains("Plan: 1 to adopt, 7 to add"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("+ service.primary"), "{}", r.stdout);

    let r = cloud.skyplan(&["apply", "global-replication.toml", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("adopted an existing service with this name"),
        "{}",
        r.stderr
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_tx.send(true).unwrap();
    let written = writer.await.unwrap();
    assert!(written > 10, "the writer wrote only {written} rows");

    // Adopted as it is: same id, recorded from what the API reports; nothing else took its name.
    let state = cloud.state().unwrap();
    assert_eq!(state.resources.services["primary"].id, theirs.id);
    // The state records which cloud it manages: this emulator.
    let cloud_id = cloud.info().instance_id;
    assert_eq!(state.endpoint, Some(format!("local:{cloud_id}")));
    let named: Vec<_> = cloud.services_named(&spec.name).await;
    assert_eq!(named.len(), 1);

    let mut primary = cloud.sql("primary").await;
    let mut secondary = cloud.sql("secondary").await;
    let (count, checksum) = wait_converged(&mut primary, &mut secondary).await;
    assert_eq!(count, written);
    assert_eq!(table_fingerprint(&mut secondary).await, (count, checksum));
    let audit = audit_fingerprint(&mut primary).await;
    assert_eq!(audit.0, written);
    assert_eq!(audit_fingerprint(&mut secondary).await, audit);

    // Adopted and seeded: the next plan has nothing to do.
    cloud
        .skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"])
        .expect_code(0);

    // Both services now carry this workspace's ownership tags.
    for (key, rec) in &state.resources.services {
        let s = cloud.api().get_service(&rec.id).await.unwrap().unwrap();
        let owner = skyplan::ownership::owner(&s.tags.unwrap_or_default());
        assert_eq!(
            owner,
            Some(skyplan::ownership::Owner {
                lineage: state.lineage.clone(),
                key: key.clone()
            }),
            "{key}"
        );
    }
    // A renamed copy of the topology (a new, empty state) finds them by tag and says which
    // state owns them, instead of planning creates or adopting them.
    std::fs::copy(
        cloud.dir().join("global-replication.toml"),
        cloud.dir().join("renamed.toml"),
    )
    .unwrap();
    let r = cloud.skyplan(&["plan", "renamed.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("managed by another skyplan workspace")
            && r.stderr.contains(&state.lineage)
            && r.stderr.contains("renamed or copied"),
        "{}",
        r.stderr
    );
    drop(primary);
    drop(secondary);
}

/// Seeds are resolved at plan time: a missing, unknown or impossible backup stops `plan` (and
/// `apply`) with exit 1 before any service is created (and billed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_and_missing_seed_backups_fail_plan_and_create_nothing() {
    let mut cloud = Cloud::new("global-replication.toml");
    cloud.start_emulator(&[]);
    let file = cloud.dir().join("global-replication.toml");
    let guide = std::fs::read_to_string(&file).unwrap();
    let with_seed = |seed: &str| {
        assert!(guide.contains("seed = \"new-backup\""));
        guide.replacen("seed = \"new-backup\"", &format!("seed = \"{seed}\""), 1)
    };

    // A new primary has no backup yet: neither the latest nor a named one can exist.
    for seed in ["latest-backup", "backup:dbbkp-nope"] {
        std::fs::write(&file, with_seed(seed)).unwrap();
        let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
        assert_eq!(r.code, 1, "{seed}\n{}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("created by this plan"), "{}", r.stderr);
        assert!(r.stderr.contains("seed = \"new-backup\""), "{}", r.stderr);
    }

    // An existing primary (made by hand) without any backup.
    let topo = skyplan::topology::load(&file).unwrap();
    let theirs = cloud.create_by_hand(&topo.services["primary"].spec).await;
    std::fs::write(&file, with_seed("latest-backup")).unwrap();
    let r = cloud.skyplan(&["plan", "global-replication.toml"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("service.primary has no succeeded full backup"),
        "{}",
        r.stderr
    );
    std::fs::write(&file, with_seed("backup:dbbkp-nope")).unwrap();
    let r = cloud.skyplan(&["apply", "global-replication.toml", "--auto-approve"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("backup dbbkp-nope was not found"),
        "{}",
        r.stderr
    );

    // Nothing was created: theirs is the only service, and no state claims anything.
    let all = cloud.api().list_services().await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].id, theirs.id);
    assert!(cloud
        .state()
        .is_none_or(|s| s.resources.services.is_empty()));
}

/// `seed = "backup:<id>"` naming another service's backup: accepted on the source's provider,
/// with a warning in the plan (and its JSON) that names whose backup it is; refused at plan
/// time on another provider, since SkySQL restores a backup only where it was taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_foreign_seed_backup_is_accepted_on_the_same_provider_with_a_warning() {
    let mut cloud = Cloud::new("global-replication.toml");
    cloud.start_emulator(&[]);
    let file = cloud.dir().join("global-replication.toml");
    let guide = std::fs::read_to_string(&file).unwrap();
    let topo = skyplan::topology::load(&file).unwrap();
    let primary = cloud.create_by_hand(&topo.services["primary"].spec).await;
    let mut backups = Vec::new();
    for (name, provider, region) in [
        ("skysql-other", "gcp", "us-central1"),
        ("skysql-other-aws", "aws", "us-east-1"),
    ] {
        let mut spec = topo.services["primary"].spec.clone();
        spec.name = name.into();
        spec.provider = provider.into();
        spec.region = region.into();
        let other = cloud.create_by_hand(&spec).await;
        cloud.wait_service_ready(&other.id).await;
        cloud.api().schedule_backup(&other.id).await.unwrap();
        backups.push(wait_backup_succeeded(&cloud, &other.id).await);
    }
    cloud.wait_service_ready(&primary.id).await;
    let with_seed =
        |seed: &str| guide.replacen("seed = \"new-backup\"", &format!("seed = \"{seed}\""), 1);

    std::fs::write(&file, with_seed(&format!("backup:{}", backups[0]))).unwrap();
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let warning = format!(
        "Warning: backup {} is a backup of service skysql-other, not of service.primary",
        backups[0]
    );
    assert!(r.stdout.contains(&warning), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("of skysql-other (foreign to skysql-primary)"),
        "{}",
        r.stdout
    );
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let warnings = plan["warnings"]
        .as_array()
        .expect("warnings in the JSON plan");
    assert_eq!(warnings.len(), 1, "{warnings:?}");

    std::fs::write(&file, with_seed(&format!("backup:{}", backups[1]))).unwrap();
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains(&format!("backup {} belongs to service", backups[1]))
            && r.stderr.contains("on aws, but service.primary is on gcp"),
        "{}",
        r.stderr
    );
}

/// The id of the backup of `service_id` once it has succeeded (panics after two minutes).
async fn wait_backup_succeeded(cloud: &Cloud, service_id: &str) -> String {
    for _ in 0..1200 {
        let list = cloud.api().list_backups(service_id).await.unwrap();
        if let Some(b) = list.iter().find(|b| b.is_succeeded()) {
            return b.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no backup of {service_id} succeeded");
}

/// `skyplan import`: the existing service is recorded as the API reports it (its real size,
/// not the file's), and the next plan shows only what the topology still changes on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn import_records_the_real_service_and_the_next_plan_shows_what_remains() {
    let mut cloud = Cloud::new("global-replication.toml");
    cloud.start_emulator(&[]);
    let topo = skyplan::topology::load(&cloud.dir().join("global-replication.toml")).unwrap();
    let mut spec = topo.services["primary"].spec.clone();
    spec.size = "sky-4x16".into();
    let theirs = cloud.create_by_hand(&spec).await;

    // Refused: an unknown address, an unknown id, a service of another name.
    for (args, needle) in [
        (
            vec!["service.nope", theirs.id.as_str()],
            "has no [services.nope]",
        ),
        (
            vec!["service.primary", "dbpgf99999999"],
            "there is no service dbpgf99999999",
        ),
        (
            vec!["service.secondary", theirs.id.as_str()],
            "set name = \"skysql-primary\"",
        ),
    ] {
        let mut a = vec!["import"];
        a.extend(args);
        a.push("global-replication.toml");
        let r = cloud.skyplan(&a);
        assert_eq!(r.code, 1, "{a:?}\n{}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(needle), "{a:?}: {}", r.stderr);
        assert!(cloud
            .state()
            .is_none_or(|s| s.resources.services.is_empty()));
    }

    let r = cloud.skyplan(&[
        "import",
        "service.primary",
        &theirs.id,
        "global-replication.toml",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains(&format!("Imported skysql-primary ({})", theirs.id)),
        "{}",
        r.stderr
    );
    // The next plan: the resize the file asks for, the new secondary; no adoption, no create.
    assert!(r.stdout.contains("~ service.primary"), "{}", r.stdout);
    assert!(
        r.stdout.contains("size: \"sky-4x16\" -> \"sky-2x8\""),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("+ service.secondary"), "{}", r.stdout);
    assert!(!r.stdout.contains("<= service.primary"), "{}", r.stdout);
    let state = cloud.state().unwrap();
    let rec = &state.resources.services["primary"];
    assert_eq!(rec.id, theirs.id);
    assert_eq!(
        rec.spec.size, "sky-4x16",
        "the state records the API's value"
    );
    assert!(state.endpoint.is_some());
    let tagged = cloud.api().get_service(&theirs.id).await.unwrap().unwrap();
    assert_eq!(
        skyplan::ownership::owner(&tagged.tags.unwrap_or_default()).map(|o| o.lineage),
        Some(state.lineage.clone()),
        "an imported service carries this workspace's tag"
    );

    // Imported once: a second import under the same key is refused, the state unchanged.
    let before = std::fs::read(cloud.state_path()).unwrap();
    let r = cloud.skyplan(&[
        "import",
        "service.primary",
        &theirs.id,
        "global-replication.toml",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("already managed"), "{}", r.stderr);
    assert_eq!(std::fs::read(cloud.state_path()).unwrap(), before);
}

/// A plan never lies: a same-named service that appears after the plan was made (so the plan
/// showed a create) is neither adopted nor duplicated by apply; it is left as it is. (The
/// create step's own check for this — a same-named untagged service stops it — stays as a
/// second line for a service appearing during the apply itself.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_that_appears_after_the_plan_is_not_silently_adopted() {
    let mut cloud = Cloud::new("global-replication.toml");
    cloud.start_emulator(&[]);
    cloud
        .skyplan(&["plan", "global-replication.toml", "--out", "reviewed.plan"])
        .expect_code(0);
    let topo = skyplan::topology::load(&cloud.dir().join("global-replication.toml")).unwrap();
    let theirs = cloud.create_by_hand(&topo.services["primary"].spec).await;
    // The saved plan is checked against what skyplan would plan now (an adoption), so apply
    // refuses before doing anything, naming the service.
    let r = cloud.skyplan(&["apply", "reviewed.plan"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("not what skyplan would do now") && r.stderr.contains("service.primary"),
        "{}",
        r.stderr
    );
    let named: Vec<_> = cloud.services_named("skysql-primary").await;
    assert_eq!(named.len(), 1, "no duplicate");
    assert_eq!(named[0].id, theirs.id);
    assert!(
        skyplan::ownership::owner(&named[0].tags.clone().unwrap_or_default()).is_none(),
        "theirs was not tagged"
    );
    assert!(!cloud
        .state()
        .is_some_and(|s| s.resources.services.contains_key("primary")));
}

/// `id = "…"` pins the service to adopt: refresh finds it by id (listed, or one GET), and a
/// pinned id that does not exist stops the plan instead of planning a create.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pinned_id_is_found_by_refresh_or_stops_the_plan() {
    let mut cloud = Cloud::new("global-replication.toml");
    cloud.start_emulator(&[]);
    let file = cloud.dir().join("global-replication.toml");
    let guide = std::fs::read_to_string(&file).unwrap();
    let topo = skyplan::topology::load(&file).unwrap();
    let theirs = cloud.create_by_hand(&topo.services["primary"].spec).await;
    let pin = |id: &str| {
        let pinned = guide.replacen(
            "[services.primary]\n",
            &format!("[services.primary]\nid = \"{id}\"\n"),
            1,
        );
        assert_ne!(pinned, guide);
        std::fs::write(&file, pinned).unwrap();
    };

    pin(&theirs.id);
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("<= service.primary"), "{}", r.stdout);
    assert!(r.stdout.contains(&theirs.id), "{}", r.stdout);

    pin("dbpgf99999999");
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("pins id = \"dbpgf99999999\", but no such service exists"),
        "{}",
        r.stderr
    );
    assert_eq!(cloud.services_named("skysql-primary").await.len(), 1);
}

/// Issue 25: `import` of a healthy replica keeps its link. The guide is applied, rows are
/// written, the secondary is forgotten (`state rm`) and imported back: its server replicates
/// from the primary, healthy, with nothing the primary lacks, so the link is recorded as it is
/// and the next plan has nothing to do — no re-seed (before, a wipe).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn importing_a_healthy_replica_keeps_its_link_and_the_next_plan_is_empty() {
    let mut cloud = Cloud::new("global-replication.toml");
    cloud
        .skyplan(&["apply", "global-replication.toml", "--auto-approve"])
        .expect_code(0);
    let mut c = cloud.sql("primary").await;
    c.query_drop("CREATE DATABASE app").await.unwrap();
    c.query_drop("CREATE TABLE app.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO app.t VALUES (1), (2), (3)")
        .await
        .unwrap();
    drop(c);
    let id = cloud.state().unwrap().resources.services["secondary"]
        .id
        .clone();
    cloud
        .skyplan(&[
            "state",
            "rm",
            "service.secondary",
            "global-replication.toml",
        ])
        .expect_code(0);
    let r = cloud
        .skyplan(&[
            "import",
            "service.secondary",
            &id,
            "global-replication.toml",
        ])
        .expect_code(0);
    assert!(
        r.stderr
            .contains("kept the link it has from service.primary"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    let state = cloud.state().unwrap();
    let link = &state.resources.replications["secondary"];
    assert_eq!(link.source, "primary");
    assert!(link.healthy);
    assert!(link.replication_user.is_some(), "its user is the link's");
    assert!(state.resources.services["secondary"].config_id.is_some());
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // Still replicating: a new row arrives.
    let mut c = cloud.sql("primary").await;
    c.query_drop("INSERT INTO app.t VALUES (4)").await.unwrap();
    drop(c);
    let mut s = cloud.sql("secondary").await;
    let mut n = 0u64;
    for _ in 0..100 {
        n = s
            .query_first("SELECT COUNT(*) FROM app.t")
            .await
            .unwrap()
            .unwrap_or(0);
        if n == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(n, 4);
}
