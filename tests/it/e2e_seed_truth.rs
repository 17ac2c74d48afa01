//! Issue 25: what plan accepts, apply does — seeds proven at plan time against real MariaDB.
//! Each refused case exits 1 from `plan` and `apply` and creates nothing (the service list is
//! unchanged): before, apply created and restored the replica, then failed.

use std::time::Duration;

use mysql_async::prelude::*;

use crate::support::e2e::Cloud;

const TOPOLOGY: &str = "global-replication.toml";

/// The guide with only its primary (applied first, so the seed has a managed source).
fn primary_only(guide: &str) -> String {
    guide[..guide.find("# The globally available copy.").unwrap()].to_string()
}

async fn backup_of(cloud: &Cloud, service_id: &str) -> String {
    let before: Vec<String> = cloud
        .api()
        .list_backups(service_id)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    cloud.api().schedule_backup(service_id).await.unwrap();
    for _ in 0..1200 {
        let list = cloud.api().list_backups(service_id).await.unwrap();
        if let Some(b) = list
            .iter()
            .find(|b| b.is_succeeded() && !before.contains(&b.id))
        {
            return b.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no new backup of {service_id} succeeded");
}

async fn service_names(cloud: &Cloud) -> Vec<String> {
    let mut v: Vec<String> = cloud
        .api()
        .list_services()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    v.sort();
    v
}

/// plan and apply both refuse, saying `needle`, and nothing is created.
async fn refused(cloud: &mut Cloud, needle: &str) {
    let before = service_names(cloud).await;
    for args in [
        vec!["plan", TOPOLOGY],
        vec!["apply", TOPOLOGY, "--auto-approve"],
    ] {
        let r = cloud.skyplan(&args);
        assert_eq!(r.code, 1, "{args:?}\n{}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
    assert_eq!(service_names(cloud).await, before, "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_seed_the_sources_binlogs_no_longer_reach_is_refused_at_plan_time() {
    let mut cloud = Cloud::new(TOPOLOGY);
    let file = cloud.dir().join(TOPOLOGY);
    let guide = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, primary_only(&guide)).unwrap();
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    let id = cloud.state().unwrap().resources.services["primary"]
        .id
        .clone();
    let mut c = cloud.sql("primary").await;
    c.query_drop("CREATE DATABASE app").await.unwrap();
    c.query_drop("CREATE TABLE app.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO app.t VALUES (1)").await.unwrap();
    let backup = backup_of(&cloud, &id).await;
    // Writes after the backup, then the binlogs that held them are purged.
    c.query_drop("INSERT INTO app.t VALUES (2), (3)")
        .await
        .unwrap();
    c.query_drop("FLUSH BINARY LOGS").await.unwrap();
    // A binlog stays "in use" until its binlog checkpoint is written (InnoDB's crash
    // recovery may need it): purge until it is gone.
    let mut logs: Vec<(String, u64)> = c.query("SHOW BINARY LOGS").await.unwrap();
    for _ in 0..100 {
        let newest = logs.last().unwrap().0.clone();
        c.query_drop(format!("PURGE BINARY LOGS TO '{newest}'"))
            .await
            .unwrap();
        logs = c.query("SHOW BINARY LOGS").await.unwrap();
        if logs.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(logs.len(), 1, "purged: {logs:?}");
    drop(c);

    std::fs::write(
        &file,
        guide.replacen(
            "seed = \"new-backup\"",
            &format!("seed = \"backup:{backup}\""),
            1,
        ),
    )
    .unwrap();
    refused(&mut cloud, "binlogs no longer reach it").await;

    // The seed that works: a new backup.
    std::fs::write(&file, &guide).unwrap();
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_seed_from_a_backup_of_a_service_that_no_longer_exists_is_refused_at_plan_time() {
    let mut cloud = Cloud::new(TOPOLOGY);
    let file = cloud.dir().join(TOPOLOGY);
    let guide = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, primary_only(&guide)).unwrap();
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    let topo = skyplan::topology::load(&file).unwrap();
    let mut spec = topo.services["primary"].spec.clone();
    spec.name = "skysql-gone".into();
    spec.region = "us-central1".into();
    let other = cloud.create_by_hand(&spec).await;
    cloud.wait_service_ready(&other.id).await;
    let backup = backup_of(&cloud, &other.id).await;
    cloud.api().delete_service(&other.id).await.unwrap();
    for _ in 0..600 {
        if cloud.api().get_service(&other.id).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::write(
        &file,
        guide.replacen(
            "seed = \"new-backup\"",
            &format!("seed = \"backup:{backup}\""),
            1,
        ),
    )
    .unwrap();
    refused(&mut cloud, "which no longer exists").await;
}

/// `ssl = true` towards a source with `ssl_enabled = false`: refused by `validate` (offline)
/// and `plan`, located at `ssl`; nothing created.
#[test]
fn tls_to_a_source_without_tls_is_refused_before_anything_is_created() {
    let mut cloud = Cloud::new(TOPOLOGY);
    let file = cloud.dir().join(TOPOLOGY);
    let guide = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        guide.replacen(
            "region = \"us-east4\"",
            "region = \"us-east4\"\nssl_enabled = false",
            1,
        ),
    )
    .unwrap();
    for args in [vec!["validate", TOPOLOGY], vec!["plan", TOPOLOGY]] {
        let r = cloud.skyplan(&args);
        assert_eq!(r.code, 1, "{args:?}\n{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stderr
                .contains("asks for TLS, but [services.primary] has ssl_enabled = false"),
            "{}",
            r.stderr
        );
    }
    assert!(cloud.state().is_none());
}

/// The backups skyplan takes are resources: recorded, listed by `state list` and `output`, and
/// named by `destroy` as what it leaves behind (SkySQL's API cannot delete a backup).
#[test]
fn the_backups_skyplan_takes_are_listed_and_destroy_names_them() {
    let mut cloud = Cloud::new(TOPOLOGY);
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    let state = cloud.state().unwrap();
    let (id, made) = state
        .resources
        .made_backups
        .iter()
        .next()
        .expect("the seed backup is recorded");
    assert_eq!(made.source, "primary");
    let list = cloud.skyplan(&["state", "list", TOPOLOGY]).expect_code(0);
    let address = format!("backup_made.primary.{id}");
    assert!(list.stdout.lines().any(|l| l == address), "{}", list.stdout);
    let show = cloud
        .skyplan(&["state", "show", &address, TOPOLOGY])
        .expect_code(0);
    assert!(show.stdout.contains(id.as_str()), "{}", show.stdout);
    let out = cloud
        .skyplan(&["output", TOPOLOGY, "--json"])
        .expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["backups"][0]["id"], id.as_str());
    assert_eq!(v["backups"][0]["address"], address.as_str());
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--destroy", "--no-color"])
        .expect_code(0);
    assert!(
        r.stdout.contains(&format!("{id} (of service.primary"))
            && r.stdout
                .contains("left in SkySQL, and billed, after this destroy"),
        "{}",
        r.stdout
    );
}
