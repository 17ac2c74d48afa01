//! The emulator at a distance (`emulator start --latency`): a fixed 20 ms round trip between
//! two regions, paid by SQL from the client region to the far service and not to the near one,
//! a control-plane delay on the SkySQL API, and the profile in `emulator status --json`.

use std::time::{Duration, Instant};

use mysql_async::prelude::*;

use crate::support::e2e::Cloud;

/// The fastest of `n` `SELECT 1` round trips on `conn` (the minimum: a loaded machine only
/// ever adds time).
async fn fastest_round_trip(conn: &mut mysql_async::Conn, n: usize) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..n {
        let t = Instant::now();
        let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
        assert_eq!(one, Some(1));
        best = best.min(t.elapsed());
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_proxy_delays_sql_by_the_profile_and_the_api_answers_after_its_delay() {
    let mut cloud = Cloud::new("global-replication.toml");
    std::fs::write(
        cloud.dir().join("twenty.toml"),
        "# A fixed distance for the test.\n[[pair]]\nregions = [\"us-east4\", \"us-west1\"]\nrtt_ms = 20\n",
    )
    .unwrap();
    cloud.start_emulator(&[
        "--latency",
        "twenty.toml",
        "--client-region",
        "us-east4",
        "--api-delay-ms",
        "20",
    ]);

    // The profile as the emulator runs it.
    let r = cloud
        .skyplan(&["emulator", "status", "--json"])
        .expect_code(0);
    let status: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let latency = &status["latency"];
    assert_eq!(latency["profile"]["name"], "file", "{latency}");
    assert_eq!(latency["profile"]["pair"][0]["rtt_ms"], 20.0, "{latency}");
    assert_eq!(latency["client_region"], "us-east4", "{latency}");
    assert_eq!(latency["api_delay_ms"], 20, "{latency}");
    let r = cloud.skyplan(&["emulator", "status"]).expect_code(0);
    assert!(r.stdout.contains("latency:  file "), "{}", r.stdout);
    assert!(
        r.stdout.contains("client us-east4, API +20 ms"),
        "{}",
        r.stdout
    );

    // Two services by hand, one in each region.
    let topo = skyplan::topology::load(&cloud.dir().join("global-replication.toml")).unwrap();
    let near = cloud.create_by_hand(&topo.services["primary"].spec).await;
    let far = cloud.create_by_hand(&topo.services["secondary"].spec).await;
    assert_eq!(
        (near.region.as_str(), far.region.as_str()),
        ("us-east4", "us-west1")
    );
    cloud.wait_service_ready(&near.id).await;
    cloud.wait_service_ready(&far.id).await;

    // Every exchange with the far service pays the 20 ms round trip; the near one does not.
    let mut far_sql = cloud.sql_to_service(&far.id).await;
    let mut near_sql = cloud.sql_to_service(&near.id).await;
    let far_rtt = fastest_round_trip(&mut far_sql, 10).await;
    let near_rtt = fastest_round_trip(&mut near_sql, 10).await;
    assert!(far_rtt >= Duration::from_millis(20), "far: {far_rtt:?}");
    assert!(far_rtt < Duration::from_millis(200), "far: {far_rtt:?}");
    assert!(near_rtt < Duration::from_millis(15), "near: {near_rtt:?}");

    // The SkySQL API answers after its control-plane delay.
    let api = cloud.api();
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        api.get_service(&near.id).await.unwrap().expect("listed");
        fastest = fastest.min(t.elapsed());
    }
    assert!(fastest >= Duration::from_millis(20), "API: {fastest:?}");
}

/// A bad profile is refused with its reason, and nothing is started.
#[test]
fn a_bad_latency_profile_is_refused_before_anything_starts() {
    let mut cloud = Cloud::new("global-replication.toml");
    std::fs::write(
        cloud.dir().join("bad.toml"),
        "[[pair]]\nregions = [\"us-east4\", \"us-wets1\"]\nrtt_ms = 20\n",
    )
    .unwrap();
    let r = cloud
        .skyplan(&["emulator", "start", "--latency", "bad.toml"])
        .expect_code(1);
    assert!(
        r.stderr
            .contains("\"us-wets1\" is not a region of the catalog (did you mean \"us-west1\"?)"),
        "{}",
        r.stderr
    );
    let r = cloud
        .skyplan(&[
            "emulator",
            "start",
            "--latency",
            "regions",
            "--client-region",
            "mars",
        ])
        .expect_code(1);
    assert!(r.stderr.contains("--client-region"), "{}", r.stderr);
    assert!(!cloud.emulator_dir().join("emulator.json").exists());
}

/// The server's count of connection attempts (every session skyplan opened on it).
async fn connections(conn: &mut mysql_async::Conn) -> u64 {
    let row: Option<(String, u64)> = conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Connections'")
        .await
        .unwrap();
    row.expect("a Connections row").1
}

/// Refresh opens at most one SQL session per service, whatever its phases read there
/// (replication status, GTIDs and role, replication users, grants, configuration): each new
/// session is a TCP, TLS and login exchange, about five round trips at a distance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_opens_one_sql_session_per_service() {
    let mut cloud = Cloud::new("global-replication.toml");
    cloud.start_emulator(&["--op-seconds", "0"]);
    cloud
        .skyplan(&["apply", "--auto-approve", "global-replication.toml"])
        .expect_code(0);
    let mut primary = cloud.sql("primary").await;
    let mut secondary = cloud.sql("secondary").await;
    let before = (
        connections(&mut primary).await,
        connections(&mut secondary).await,
    );
    let r = cloud
        .skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"])
        .expect_code(0);
    assert!(r.stdout.contains("No changes"), "{}", r.stdout);
    let after = (
        connections(&mut primary).await,
        connections(&mut secondary).await,
    );
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 1),
        "sessions opened by one plan on (primary, secondary)"
    );
}

/// Shared mode (`--shared-mariadbd K`, for benchmarks of many services with their SQL): after
/// K services with their own server, the next share them, each with its own account, behind
/// its own endpoint (allowlist and distance included); deleting one leaves the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_beyond_k_share_the_first_servers_with_their_own_accounts() {
    let mut cloud = Cloud::new("global-replication.toml");
    cloud.start_emulator(&["--op-seconds", "0", "--shared-mariadbd", "1"]);
    let topo = skyplan::topology::load(&cloud.dir().join("global-replication.toml")).unwrap();
    let mut ids = Vec::new();
    for name in ["host-one", "tenant-two", "tenant-three"] {
        let mut spec = topo.services["primary"].spec.clone();
        spec.name = name.into();
        let svc = cloud.create_by_hand(&spec).await;
        cloud.wait_service_ready(&svc.id).await;
        ids.push(svc.id);
    }
    assert_eq!(cloud.mariadbd_count(), 1, "one server for three services");
    for id in &ids {
        let mut sql = cloud.sql_to_service(id).await;
        let user: Option<String> = sql.query_first("SELECT CURRENT_USER()").await.unwrap();
        assert_eq!(
            user.as_deref(),
            Some(format!("{id}@%").as_str()),
            "its own account"
        );
    }
    let gone = ids.pop().unwrap();
    cloud.api().delete_service(&gone).await.unwrap();
    for _ in 0..100 {
        if cloud.api().get_service(&gone).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cloud.mariadbd_count(), 1, "the shared server stays");
    let mut sql = cloud.sql_to_service(&ids[1]).await;
    let one: Option<i64> = sql.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
}

/// Without `--client-region`, skyplan's own SQL comes from the first region of the topology it
/// applies: connecting with a topology tells the emulator (and only an emulator that
/// emulates distances is told anything).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_client_region_defaults_to_the_first_region_of_the_topology_applied() {
    let mut cloud = Cloud::new("global-replication.toml");
    std::fs::write(
        cloud.dir().join("twenty.toml"),
        "[[pair]]\nregions = [\"us-east4\", \"us-west1\"]\nrtt_ms = 20\n",
    )
    .unwrap();
    cloud.start_emulator(&["--latency", "twenty.toml"]);
    let topo = skyplan::topology::load(&cloud.dir().join("global-replication.toml")).unwrap();
    let east = cloud.create_by_hand(&topo.services["primary"].spec).await;
    cloud.wait_service_ready(&east.id).await;
    let mut sql = cloud.sql_to_service(&east.id).await;
    let opts = sql.opts().clone();
    // Until told otherwise, the operator sits in the guide's first region: beside this one.
    let near = fastest_round_trip(&mut sql, 10).await;
    assert!(near < Duration::from_millis(15), "before: {near:?}");

    // A topology whose first service is in us-west1: skyplan applies it from there.
    let guide = std::fs::read_to_string(cloud.dir().join("global-replication.toml")).unwrap();
    let west_first = guide
        .replacen("region = \"us-east4\"", "region = \"REGION_A\"", 1)
        .replacen("region = \"us-west1\"", "region = \"us-east4\"", 1)
        .replacen("region = \"REGION_A\"", "region = \"us-west1\"", 1);
    std::fs::write(cloud.dir().join("west-first.toml"), west_first).unwrap();
    let west = skyplan::topology::load(&cloud.dir().join("west-first.toml")).unwrap();
    assert_eq!(
        west.services.values().next().unwrap().spec.region,
        "us-west1"
    );
    let remote = skyplan::remote::Remote::connect_with(
        &west,
        Default::default(),
        Some(&cloud.emulator_dir()),
    )
    .await
    .unwrap();
    assert!(remote.notes.is_empty(), "{:?}", remote.notes);
    // The same endpoint and account again (the harness's own helper would connect with the
    // guide's topology, which reports us-east4 back).
    let mut sql = mysql_async::Conn::new(opts).await.unwrap();
    let far = fastest_round_trip(&mut sql, 10).await;
    assert!(far >= Duration::from_millis(20), "after: {far:?}");
}
