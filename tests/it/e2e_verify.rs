//! `skyplan verify` against the emulator's real MariaDB servers: after the guide is applied,
//! every table (one with a primary key, one without) is identical, also while a writer keeps
//! writing on the primary (exit 0), and writers flat out never make a false difference (exit 0,
//! or 1 with the table named unsettled); a row written directly on the replica is a difference
//! that names the table and both counts (exit 2, in text and JSON); a replica that cannot catch
//! up is an error naming the link (exit 1). Without links, or before apply, nothing is
//! connected.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::support::cli::Test;
use crate::support::e2e::{audit_fingerprint, wait_converged, write_rows, Cloud};

const GUIDE: &str = "global-replication.toml";

/// Apply the guide, then write rows on the primary for a while; returns how many.
async fn applied_with_rows(cloud: &mut Cloud) -> u64 {
    cloud.start_emulator(&[]);
    cloud
        .skyplan(&["apply", GUIDE, "--auto-approve"])
        .expect_code(0);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(write_rows(cloud.sql("primary").await, stop_rx));
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop_tx.send(true).unwrap();
    let written = writer.await.unwrap();
    assert!(written > 5, "the writer wrote only {written} rows");
    let mut primary = cloud.sql("primary").await;
    let mut secondary = cloud.sql("secondary").await;
    wait_converged(&mut primary, &mut secondary).await;
    written
}

fn json_report(stdout: &str) -> serde_json::Value {
    let doc: serde_json::Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    let path = format!("{}/schemas/verify.schema.json", env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let compiled = jsonschema::JSONSchema::compile(&schema).unwrap();
    if let Err(errors) = compiled.validate(&doc) {
        let errors: Vec<String> = errors
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        panic!(
            "does not match verify.schema.json:\n{}\n{stdout}",
            errors.join("\n")
        );
    }
    doc
}

fn table<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["links"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("no {name} in {doc:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_table_is_identical_after_apply_even_with_a_writer_running() {
    let mut cloud = Cloud::new(GUIDE);
    let written = applied_with_rows(&mut cloud).await;

    // Quiet: both tables, with the writer's count, in the report and in the progress.
    let r = cloud.skyplan(&["verify", GUIDE]).expect_code(0);
    assert!(
        r.stdout.contains(&format!("app.audit   {written} rows OK")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("app.events  {written} rows OK")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "skysql-primary -> skysql-secondary (replication.secondary): 2 tables identical"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .ends_with("Verify: 2 tables identical on 1 link.\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains(&format!(
            "verify skysql-primary -> skysql-secondary: app.events {written} rows OK"
        )),
        "{}",
        r.stderr
    );

    // The same as JSON.
    let r = cloud.skyplan(&["verify", GUIDE, "--json"]).expect_code(0);
    let doc = json_report(&r.stdout);
    assert_eq!(doc["equal"], true);
    assert_eq!(doc["tables_compared"], 2);
    for name in ["app.audit", "app.events"] {
        let t = table(&doc, name);
        assert_eq!(t["equal"], true, "{t}");
        assert_eq!(t["rows_source"], written, "{t}");
        assert_eq!(t["rows_replica"], written, "{t}");
        assert_eq!(t["checksum_source"], t["checksum_replica"], "{t}");
    }

    // With a writer on the primary the whole time (both tables change every few ms), no false
    // difference: each table is compared at the source's snapshot the replica has applied,
    // and compared again if the replica's snapshot went past it.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(write_rows(cloud.sql("primary").await, stop_rx));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let r = cloud.skyplan(&["verify", GUIDE]);
        assert_eq!(
            r.code, 0,
            "a live writer made a difference\n{}\n{}",
            r.stdout, r.stderr
        );
        assert!(
            r.stdout.contains("Verify: 2 tables identical"),
            "{}",
            r.stdout
        );
    }
    stop_tx.send(true).unwrap();
    assert!(writer.await.unwrap() > 5);

    // Writers as fast as they can go (hundreds of rows a second): the replica's snapshot is
    // past the source's almost every time. Never a false difference: identical, or (exit 1)
    // unsettled, named as such.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..2 {
        let mut conn = cloud.sql("primary").await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                conn.query_drop("INSERT INTO app.events (note) VALUES ('fast')")
                    .await
                    .unwrap();
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..2 {
        let r = cloud.skyplan(&["verify", GUIDE]);
        match r.code {
            0 => assert!(
                r.stdout.contains("Verify: 2 tables identical"),
                "{}",
                r.stdout
            ),
            1 => {
                assert!(r.stdout.contains("app.events  UNSETTLED"), "{}", r.stdout);
                assert!(
                    r.stderr.contains(
                        "could not compare at one position (the source kept writing): skysql-primary -> skysql-secondary: app.events"
                    ),
                    "{}",
                    r.stderr
                );
            }
            _ => panic!(
                "a fast writer made a difference\n{}\n{}",
                r.stdout, r.stderr
            ),
        }
        assert!(!r.stdout.contains("DIFFERENT"), "{}", r.stdout);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_written_on_the_replica_is_a_difference_naming_the_table_and_both_counts() {
    let mut cloud = Cloud::new(GUIDE);
    let written = applied_with_rows(&mut cloud).await;

    // Drift: the admin user writes on the replica directly (an errant transaction).
    let mut secondary = cloud.sql("secondary").await;
    secondary
        .query_drop("INSERT INTO app.audit (note, at) VALUES ('written on the replica', -1)")
        .await
        .unwrap();

    let r = cloud.skyplan(&["verify", GUIDE]).expect_code(2);
    let n = written;
    assert!(
        r.stdout.contains(&format!(
            "app.audit   DIFFERENT: rows source {n}, replica {}; checksum source",
            n + 1
        )),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("(compared 3 times)"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("app.events  {n} rows OK")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .ends_with("Verify: 1 of 2 tables differs on 1 link.\n"),
        "{}",
        r.stdout
    );
    // Each re-check is shown as progress.
    assert!(
        r.stderr.contains("comparing again (3 of 3)"),
        "{}",
        r.stderr
    );

    let r = cloud.skyplan(&["verify", GUIDE, "--json"]).expect_code(2);
    let doc = json_report(&r.stdout);
    assert_eq!(doc["equal"], false);
    assert_eq!(doc["tables_different"], 1);
    assert_eq!(doc["links"][0]["equal"], false);
    let audit = table(&doc, "app.audit");
    assert_eq!(audit["equal"], false, "{audit}");
    assert_eq!(audit["status"], "different", "{audit}");
    assert_eq!(audit["rows_source"], n, "{audit}");
    assert_eq!(audit["rows_replica"], n + 1, "{audit}");
    assert_eq!(audit["attempts"], 3, "{audit}");
    // Compared at exactly the source's position: a difference no writer can explain.
    assert_eq!(audit["same_position"], true, "{audit}");
    assert_ne!(
        audit["checksum_source"], audit["checksum_replica"],
        "{audit}"
    );
    assert_eq!(table(&doc, "app.events")["equal"], true);

    // verify wrote nothing: the primary still has exactly the writer's rows.
    let mut primary = cloud.sql("primary").await;
    assert_eq!(audit_fingerprint(&mut primary).await.0, n);

    // A replica that cannot catch up is an error (exit 1) naming the link and the lag, not a
    // difference.
    secondary
        .query_drop("CALL sky.stop_replication()")
        .await
        .unwrap();
    primary
        .query_drop("INSERT INTO app.audit (note, at) VALUES ('not replicated', -2)")
        .await
        .unwrap();
    let r = cloud
        .skyplan(&["verify", GUIDE, "--timeout", "2s"])
        .expect_code(1);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    for needle in [
        "Error: verifying replication.secondary (skysql-primary -> skysql-secondary): the replica did not apply the source's position within 2s",
        "1 transaction behind in domain",
        "SQL thread stopped",
    ] {
        assert!(r.stderr.contains(needle), "no {needle:?} in\n{}", r.stderr);
    }
}

#[test]
fn a_topology_without_links_has_nothing_to_verify() {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(GUIDE),
    )
    .unwrap();
    let single = guide
        .split("# The globally available copy.")
        .next()
        .unwrap();
    let mut t = Test::new().file("single.toml", single);
    t.args(&["verify", "single.toml"])
        .run()
        .expect_code(0)
        .stdout_snapshot("e2e_verify__no_links", t.path());
    // Nothing was looked at: no emulator was started.
    assert!(!t.path().join("emulator").exists());
}

#[test]
fn verify_before_apply_is_an_error_naming_what_is_missing() {
    let mut t = Test::new().example(GUIDE);
    t.args(&["verify", GUIDE])
        .run()
        .expect_code(1)
        .stderr_snapshot("e2e_verify__before_apply", t.path());
    assert!(!t.path().join("emulator").exists());
}
