//! Power end to end: a service stopped through the API (outside skyplan) really stops its
//! database; `plan` reports it as drift and `apply` starts it with its data; `is_active =
//! false` stops it and keeps it stopped with no drift reported.

use std::time::Duration;

use mysql_async::prelude::*;
use skyplan::skysql::types::ServiceStatus;

use crate::support::e2e::Cloud;

const TOPOLOGY: &str = "global-replication.toml";

async fn wait_status(cloud: &Cloud, id: &str, want: ServiceStatus) {
    for _ in 0..600 {
        let s = cloud.api().get_service(id).await.unwrap().unwrap();
        if s.status == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("service {id} never became {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_outside_skyplan_is_repaired_and_is_active_false_keeps_it_stopped() {
    let mut cloud = Cloud::new(TOPOLOGY);
    // The guide's primary alone: power needs no replica, and one service is quick.
    let file = cloud.dir().join(TOPOLOGY);
    let guide = std::fs::read_to_string(&file).unwrap();
    let primary_only = &guide[..guide.find("# The globally available copy.").unwrap()];
    std::fs::write(&file, primary_only).unwrap();
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    let mut conn = cloud.sql("primary").await;
    conn.query_drop("CREATE DATABASE IF NOT EXISTS app")
        .await
        .unwrap();
    conn.query_drop("CREATE TABLE IF NOT EXISTS app.kept (v INT) ENGINE=InnoDB")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO app.kept VALUES (1), (2), (3)")
        .await
        .unwrap();
    drop(conn);
    let id = cloud.state().unwrap().resources.services["primary"]
        .id
        .clone();
    assert_eq!(cloud.mariadbd_pids_of(&id).len(), 1);

    // Stopped by hand through the API: the database really stops.
    cloud.api().stop_service(&id).await.unwrap();
    wait_status(&cloud, &id, ServiceStatus::Stopped).await;
    assert!(
        cloud.mariadbd_pids_of(&id).is_empty(),
        "mariadbd still runs"
    );
    let svc = cloud.api().get_service(&id).await.unwrap().unwrap();
    assert_eq!(svc.is_active, Some(false));

    // A drift job sees it; apply starts it, with its data.
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
        .expect_code(2);
    for want in [
        "stopped",
        "~ power.primary",
        "because stopped outside skyplan",
    ] {
        assert!(r.stdout.contains(want), "{want} in\n{}", r.stdout);
    }
    let r = cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    assert!(r.stdout.contains("power.primary"), "{}", r.stdout);
    assert_eq!(cloud.mariadbd_pids_of(&id).len(), 1);
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
        .expect_code(0);
    assert!(r.stdout.starts_with("No changes."), "{}", r.stdout);
    let mut conn = cloud.sql("primary").await;
    let n: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM app.kept")
        .await
        .unwrap();
    assert_eq!(n, Some(3), "the rows written before the stop are kept");
    drop(conn);

    // Kept stopped by the topology: stopped once, then no changes and no drift.
    let kept = primary_only.replacen(
        "[services.primary]\n",
        "[services.primary]\nis_active = false\n",
        1,
    );
    std::fs::write(&file, kept).unwrap();
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
        .expect_code(2);
    assert!(r.stdout.contains("stop     skysql-primary"), "{}", r.stdout);
    assert!(
        !r.stdout.contains("Changed outside skyplan"),
        "{}",
        r.stdout
    );
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    assert_eq!(
        cloud.api().get_service(&id).await.unwrap().unwrap().status,
        ServiceStatus::Stopped
    );
    assert!(cloud.mariadbd_pids_of(&id).is_empty());
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
        .expect_code(0);
    assert!(r.stdout.starts_with("No changes."), "{}", r.stdout);
}
