//! The SkySQL catalog checked at plan time: a region, size or version the cloud does not offer
//! is a located topology error with "did you mean", exit 1, before anything is created; an
//! offline plan or `validate` does not look; `validate --remote` does.

use crate::support::e2e::Cloud;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unoffered_region_or_size_is_a_located_did_you_mean_before_anything_is_created() {
    let mut cloud = Cloud::new("global-replication.toml");
    let file = cloud.dir().join("global-replication.toml");
    let guide = std::fs::read_to_string(&file).unwrap();
    let bad = guide
        .replace(
            "region = \"us-west1\"           # Oregon",
            "region = \"us-west-1\"",
        )
        .replace("size = \"sky-2x8\"", "size = \"sky-2x9\"");
    assert_ne!(bad, guide);
    std::fs::write(&file, &bad).unwrap();
    for args in [
        vec!["plan", "global-replication.toml", "--detailed-exitcode"],
        vec!["apply", "global-replication.toml", "--auto-approve"],
    ] {
        let r = cloud.skyplan(&args);
        assert_eq!(r.code, 1, "{args:?}\n{}\n{}", r.stdout, r.stderr);
        for want in [
            "service.secondary: region = \"us-west-1\" is not offered by SkySQL on gcp; it is a region of aws",
            "did you mean `us-west1`?",
            "global-replication.toml:",
            "size = \"sky-2x9\"",
            "nothing was planned or created",
        ] {
            assert!(r.stderr.contains(want), "{want} in\n{}", r.stderr);
        }
    }
    assert!(cloud.api().list_services().await.unwrap().is_empty());
    // Offline, nothing is looked up (and nothing refused).
    let r = cloud.skyplan(&[
        "plan",
        "global-replication.toml",
        "--refresh=false",
        "--detailed-exitcode",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);

    // `validate` stays offline unless asked; `validate --remote` reads the same catalog.
    let r = cloud.skyplan(&["validate", "global-replication.toml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = cloud.skyplan(&["validate", "--remote", "global-replication.toml"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    for want in [
        "error: service.secondary: region = \"us-west-1\" is not offered by SkySQL on gcp",
        "did you mean `us-west1`?",
        "global-replication.toml:",
    ] {
        assert!(r.stderr.contains(want), "{want} in\n{}", r.stderr);
    }
    assert!(
        !r.stderr.contains("Error: error:"),
        "labelled twice:\n{}",
        r.stderr
    );
    std::fs::write(&file, &guide).unwrap();
    let r = cloud.skyplan(&["validate", "--remote", "global-replication.toml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("valid (2 services; regions, sizes, versions and topologies offered by"),
        "{}",
        r.stdout
    );
    assert!(cloud.api().list_services().await.unwrap().is_empty());
}

/// Issue 30: a created service reports a version `GET /provisioning/v1/versions` lists, and it
/// is the version its server runs (`SELECT VERSION()`): the catalog offers the emulator's own
/// `mariadbd` release in place of the docs' release of that series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_service_reports_the_version_its_server_runs() {
    use mysql_async::prelude::Queryable;
    let mut cloud = Cloud::new("global-replication.toml");
    cloud.start_emulator(&["--op-seconds", "0"]);
    let topo = skyplan::topology::load(&cloud.dir().join("global-replication.toml")).unwrap();
    let mut spec = topo.services["primary"].spec.clone();
    spec.version = None;
    let svc = cloud.create_by_hand(&spec).await;
    cloud.wait_service_ready(&svc.id).await;
    let reported = cloud
        .api()
        .get_service(&svc.id)
        .await
        .unwrap()
        .expect("listed")
        .version
        .expect("a version");
    let mut sql = cloud.sql_to_service(&svc.id).await;
    let running: Option<String> = sql.query_first("SELECT VERSION()").await.unwrap();
    let running = running.unwrap();
    assert!(
        running.starts_with(&format!("{reported}-")),
        "the API says {reported}, the server {running}"
    );
    let versions: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/provisioning/v1/versions",
            cloud.info().endpoint
        ))
        .header("X-API-Key", cloud.info().api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        names.contains(&reported.as_str()),
        "{reported} in {names:?}"
    );
}
