//! Replication changes without data loss (issue 12), against the emulator's real MariaDB
//! servers with a writer running through every change: re-pointing a replica by GTID (no
//! backup, no restore), refusing to do so over an errant transaction (re-seed, naming the
//! GTID), and a three-level chain whose middle replica gets no local transaction. Every
//! service ends with the same COUNT and CHECKSUM in both tables (one without a primary key).

use std::time::Duration;

use mysql_async::prelude::*;

use crate::support::e2e::{audit_fingerprint, table_fingerprint, write_rows, Cloud};

/// The guide plus a third service replicating from `third_from`.
fn three(guide: &str, third_from: &str) -> String {
    format!(
        "{guide}\n[services.third]\nname = \"skysql-third\"\nregion = \"europe-west1\"\n\n\
         [services.third.replication]\nfrom = \"{third_from}\"\nseed = \"new-backup\"\n"
    )
}

/// The guide plus a third replica of the primary, applied: the harness, the topology file and
/// the guide's text.
fn applied_three(third_from: &str) -> (Cloud, std::path::PathBuf, String) {
    let mut cloud = Cloud::new("global-replication.toml");
    let file = cloud.dir().join("global-replication.toml");
    let guide = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, three(&guide, third_from)).unwrap();
    let r = cloud.skyplan(&["apply", "global-replication.toml", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    (cloud, file, guide)
}

struct Writer {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Writer {
    async fn start(cloud: &Cloud) -> Writer {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(write_rows(cloud.sql("primary").await, rx));
        // Let it create its tables and write a little first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Writer { stop, task }
    }

    async fn stop(self) -> u64 {
        self.stop.send(true).unwrap();
        self.task.await.unwrap()
    }
}

/// Both tables' (COUNT, CHECKSUM) on one service.
async fn fingerprints(c: &mut mysql_async::Conn) -> ((u64, u64), (u64, u64)) {
    (table_fingerprint(c).await, audit_fingerprint(c).await)
}

/// Wait until every service has the primary's rows in both tables; returns the row count.
async fn assert_all_equal(cloud: &Cloud, keys: &[&str]) -> u64 {
    let mut primary = cloud.sql("primary").await;
    let want = fingerprints(&mut primary).await;
    for key in keys {
        let mut c = cloud.sql(key).await;
        let mut got = None;
        for _ in 0..300 {
            got = Some(fingerprints(&mut c).await);
            if got == Some(want) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(got, Some(want), "service.{key} differs from the primary");
    }
    want.0 .0
}

async fn var(c: &mut mysql_async::Conn, name: &str) -> String {
    let v: Option<String> = c
        .query_first(format!("SELECT @@GLOBAL.{name}"))
        .await
        .unwrap();
    v.unwrap_or_default()
}

/// The restores the API lists for a service of the state.
async fn restores(cloud: &Cloud, key: &str) -> usize {
    let id = cloud.state().unwrap().resources.services[key].id.clone();
    cloud.api().list_restores(&id).await.unwrap().len()
}

/// GTIDs in `key`'s binlog that its own server wrote (a local transaction on a replica).
async fn own_gtids(cloud: &Cloud, key: &str) -> Vec<String> {
    let mut c = cloud.sql(key).await;
    let server_id = var(&mut c, "server_id").await;
    let state = var(&mut c, "gtid_binlog_state").await;
    state
        .split(',')
        .filter(|g| g.split('-').nth(1) == Some(server_id.as_str()))
        .map(str::to_string)
        .collect()
}

/// `mysqlbinlog` over every binlog file of `key`'s server, as text.
fn mysqlbinlog(cloud: &Cloud, key: &str) -> String {
    let id = cloud.state().unwrap().resources.services[key].id.clone();
    let data = cloud.emulator_dir().join("services").join(id).join("data");
    let mut files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("mariadb-bin.0"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no binlog in {}", data.display());
    let out = std::process::Command::new("mysqlbinlog")
        .args(&files)
        .output()
        .expect("mysqlbinlog (mariadb-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The replication password a replica's `sky.change_external_primary_gtid` hands out.
async fn replication_password(cloud: &Cloud, key: &str) -> String {
    let mut c = cloud.sql(key).await;
    c.query_first("SELECT replication_password FROM sky.settings WHERE id = 1")
        .await
        .unwrap()
        .unwrap()
}

/// The statements in `key`'s binlog that hold a clear-text password.
async fn clear_passwords_in_binlog(cloud: &Cloud, key: &str) -> Vec<String> {
    let mut c = cloud.sql(key).await;
    let logs: Vec<(String, u64)> = c.query("SHOW BINARY LOGS").await.unwrap();
    let mut found = Vec::new();
    for (log, _) in logs {
        let events: Vec<mysql_async::Row> = c
            .query(format!("SHOW BINLOG EVENTS IN '{log}'"))
            .await
            .unwrap();
        for e in events {
            let info: String = e.get(5).unwrap_or_default();
            let upper = info.to_ascii_uppercase();
            if upper.contains("IDENTIFIED BY '") || upper.contains("PASSWORD('") {
                found.push(info);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_is_repointed_to_a_sibling_and_back_by_gtid_without_copying_data() {
    let (mut cloud, file, guide) = applied_three("primary");
    let writer = Writer::start(&cloud).await;
    let restores_before = restores(&cloud, "third").await;

    for (to, from_name, to_name) in [
        ("secondary", "skysql-primary", "skysql-secondary"),
        ("primary", "skysql-secondary", "skysql-primary"),
    ] {
        std::fs::write(&file, three(&guide, to)).unwrap();
        let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
        assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
        let line = format!("re-point skysql-third: {from_name} -> {to_name} from its own position");
        assert!(r.stdout.contains(&line), "{}", r.stdout);
        assert!(r.stdout.contains("no data copied"), "{}", r.stdout);
        for word in ["restore", "backup", "wipe"] {
            assert!(!r.stdout.contains(word), "{word} in\n{}", r.stdout);
        }
        let r = cloud.skyplan(&["apply", "global-replication.toml", "--auto-approve"]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("no data copied"), "{}", r.stderr);
        let state = cloud.state().unwrap();
        assert_eq!(state.resources.replications["third"].source, to);
        assert!(state.resources.replications["third"].healthy);
        // Then nothing is left to do, and nothing drifted.
        let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        if to == "secondary" {
            // In the chain, the middle replica wrote nothing of its own (the grant for the
            // third ran on the primary and replicated down).
            assert_eq!(own_gtids(&cloud, "secondary").await, Vec::<String>::new());
        }
    }
    assert_eq!(
        restores(&cloud, "third").await,
        restores_before,
        "a re-point must not restore"
    );
    let written = writer.stop().await;
    let rows = assert_all_equal(&cloud, &["secondary", "third"]).await;
    assert_eq!(rows, written);
    for key in ["primary", "secondary", "third"] {
        assert_eq!(
            clear_passwords_in_binlog(&cloud, key).await,
            Vec::<String>::new(),
            "service.{key}'s binlog"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_errant_transaction_is_drift_and_a_repoint_over_it_reseeds_naming_the_gtid() {
    let (mut cloud, file, guide) = applied_three("primary");
    let writer = Writer::start(&cloud).await;

    // Someone writes on the third replica directly.
    let mut third = cloud.sql("third").await;
    third
        .query_drop("CREATE DATABASE IF NOT EXISTS oops")
        .await
        .unwrap();
    let errant = own_gtids(&cloud, "third").await;
    assert_eq!(errant.len(), 1, "{errant:?}");
    let errant = &errant[0];

    let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("errant transactions"), "{}", r.stdout);
    assert!(r.stdout.contains(errant.as_str()), "{}", r.stdout);

    std::fs::write(&file, three(&guide, "secondary")).unwrap();
    // The errant transaction exists only on the third: re-seeding it needs consent.
    let r = cloud.skyplan(&["plan", "global-replication.toml"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains(&format!("the last-copy rule: service.third holds {errant}")),
        "{}",
        r.stderr
    );
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--allow-data-loss"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("restore"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "skysql-third has a transaction that skysql-secondary lacks: {errant}"
        )),
        "{}",
        r.stdout
    );
    let r = cloud.skyplan(&[
        "apply",
        "global-replication.toml",
        "--auto-approve",
        "--allow-data-loss",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let written = writer.stop().await;
    let rows = assert_all_equal(&cloud, &["secondary", "third"]).await;
    assert_eq!(rows, written);
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

/// A replica of a replica, built in one apply: the grant for the third runs on the primary,
/// so the middle replica's binlog has no GTID of its own server id, and no binlog holds the
/// replication password in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_level_chain_leaves_no_local_transaction_on_the_middle_replica() {
    let mut cloud = Cloud::new("global-replication.toml");
    let file = cloud.dir().join("global-replication.toml");
    let guide = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, three(&guide, "secondary")).unwrap();
    let apply = cloud
        .command(&["apply", "global-replication.toml", "--auto-approve"])
        .output();
    let apply = tokio::spawn(apply);
    cloud
        .wait_ready_in_state("primary", Duration::from_secs(120))
        .await;
    let writer = Writer::start(&cloud).await;
    let out = apply.await.unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let written = writer.stop().await;
    let rows = assert_all_equal(&cloud, &["secondary", "third"]).await;
    assert_eq!(rows, written);
    assert_eq!(own_gtids(&cloud, "secondary").await, Vec::<String>::new());
    assert_eq!(own_gtids(&cloud, "third").await, Vec::<String>::new());
    // mysqlbinlog over every server's binlogs: the GRANTs are there, their passwords are not.
    for key in ["primary", "secondary", "third"] {
        let text = mysqlbinlog(&cloud, key);
        assert!(text.contains("IDENTIFIED BY PASSWORD '*"), "service.{key}");
        for replica in ["secondary", "third"] {
            let pw = replication_password(&cloud, replica).await;
            assert!(
                !text.contains(&pw),
                "service.{replica}'s password in service.{key}'s binlog"
            );
        }
    }
    for key in ["primary", "secondary", "third"] {
        assert_eq!(
            clear_passwords_in_binlog(&cloud, key).await,
            Vec::<String>::new(),
            "service.{key}'s binlog"
        );
    }
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

async fn replication_users(cloud: &Cloud, key: &str) -> Vec<String> {
    let mut c = cloud.sql(key).await;
    c.query("SELECT CONCAT(User, '@', Host) FROM mysql.user WHERE User LIKE 'skysql\\_replication\\_%' ORDER BY 1")
        .await
        .unwrap()
}

/// Shrink: removing a replica drops its replication user on the primary (and so on every
/// replica); a `skysql_replication_*` user no link owns is drift that apply drops.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_a_replica_drops_its_replication_user_everywhere_and_orphans_are_dropped() {
    let (mut cloud, file, guide) = applied_three("primary");
    let writer = Writer::start(&cloud).await;
    let state = cloud.state().unwrap();
    let third_user = state.resources.replications["third"]
        .replication_user
        .clone()
        .unwrap();
    let second_user = state.resources.replications["secondary"]
        .replication_user
        .clone()
        .unwrap();
    let both = {
        let mut v = vec![third_user.clone(), second_user.clone()];
        v.sort();
        v
    };
    assert_eq!(replication_users(&cloud, "primary").await, both);

    std::fs::write(&file, &guide).unwrap();
    let r = cloud.skyplan(&["apply", "global-replication.toml", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!("dropped {third_user}")),
        "{}",
        r.stderr
    );
    for key in ["primary", "secondary"] {
        assert_eq!(
            replication_users(&cloud, key).await,
            vec![second_user.clone()],
            "service.{key}"
        );
    }
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    // A replication user no link owns (left behind by hand, or by an older skyplan).
    let mut primary = cloud.sql("primary").await;
    primary
        .query_drop("CREATE USER 'skysql_replication_zz'@'10.9.9.9' IDENTIFIED BY 'x'")
        .await
        .unwrap();
    primary
        .query_drop("GRANT REPLICATION SLAVE ON *.* TO 'skysql_replication_zz'@'10.9.9.9'")
        .await
        .unwrap();
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("orphaned replication user"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("drop     replication user skysql_replication_zz@10.9.9.9 on skysql-primary"),
        "{}",
        r.stdout
    );
    let r = cloud.skyplan(&["apply", "global-replication.toml", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let written = writer.stop().await;
    for key in ["primary", "secondary"] {
        assert_eq!(
            replication_users(&cloud, key).await,
            vec![second_user.clone()],
            "service.{key}"
        );
    }
    let rows = assert_all_equal(&cloud, &["secondary"]).await;
    assert_eq!(rows, written);
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

/// Wiring is proven: a link whose replication breaks while it catches up fails its action and
/// names the server's SQL error, rather than being reported healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_that_breaks_while_catching_up_fails_naming_the_sql_error() {
    let mut cloud = Cloud::new("global-replication.toml");
    let file = cloud.dir().join("global-replication.toml");
    let guide = std::fs::read_to_string(&file).unwrap();
    // Both services first, the secondary standing alone.
    let start = guide.find("[services.secondary.replication]").unwrap();
    std::fs::write(&file, &guide[..start]).unwrap();
    let r = cloud.skyplan(&["apply", "global-replication.toml", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let mut primary = cloud.sql("primary").await;
    for sql in [
        "CREATE DATABASE IF NOT EXISTS app",
        "CREATE TABLE IF NOT EXISTS app.t (id INT PRIMARY KEY, v VARCHAR(16))",
        "INSERT INTO app.t VALUES (1, 'primary')",
    ] {
        primary.query_drop(sql).await.unwrap();
    }
    // The same table on the secondary with a row of that key, outside its binlog (no GTID,
    // so nothing looks errant): replaying the primary's insert breaks on it (error 1062).
    let mut secondary = cloud.sql("secondary").await;
    for sql in [
        "SET SESSION sql_log_bin = 0",
        "CREATE DATABASE app",
        "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(16))",
        "INSERT INTO app.t VALUES (1, 'replica')",
    ] {
        secondary.query_drop(sql).await.unwrap();
    }
    std::fs::write(
        &file,
        guide.replacen("seed = \"new-backup\"", "seed = \"none\"", 1),
    )
    .unwrap();
    let r = cloud.skyplan(&["apply", "global-replication.toml", "--auto-approve"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("replication.secondary") && r.stderr.contains("error 1062"),
        "{}",
        r.stderr
    );
    let state = cloud.state().unwrap();
    assert!(
        state
            .resources
            .replications
            .get("secondary")
            .is_none_or(|l| !l.healthy),
        "a broken link must not be recorded healthy"
    );

    // Waiting for a position on a replica whose SQL thread stopped on an error ends at once
    // with that error, not after the whole timeout (a switchover's fence waits on this).
    let remote = cloud.remote().await;
    let mut replica = remote.sql(&state, "secondary").await.unwrap();
    let started = std::time::Instant::now();
    let applied = replica
        .wait_applied("1-1001-999999", std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        matches!(
            applied,
            skyplan::sql::gtids::Applied::Broke { errno: 1062, .. }
        ),
        "{applied:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
