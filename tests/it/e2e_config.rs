//! Server configuration as code, end to end against real MariaDB (issue 24): the topology's
//! `config` variables and each service's role (`read_only`) live in its custom configuration
//! (the Configuration Manager), so they survive restarts; a hand change is drift that apply
//! repairs.

use mysql_async::prelude::*;

use crate::support::e2e::Cloud;

const TOPOLOGY: &str = "global-replication.toml";

async fn variables(cloud: &Cloud, key: &str) -> (u64, u64) {
    let mut c = cloud.sql(key).await;
    let row: Option<(u64, u64)> = c
        .query_first("SELECT @@GLOBAL.max_connections, @@GLOBAL.read_only")
        .await
        .unwrap();
    row.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_and_roles_survive_a_restart_and_a_hand_change_is_drift() {
    let mut cloud = Cloud::new(TOPOLOGY);
    let file = cloud.dir().join(TOPOLOGY);
    let guide = std::fs::read_to_string(&file).unwrap();
    let with_config = guide.replace(
        "# The globally available copy.",
        "[services.primary.config]\nmax_connections = 321\n\n# The globally available copy.",
    );
    assert_ne!(with_config, guide);
    std::fs::write(&file, with_config).unwrap();

    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--no-color"])
        .expect_code(0);
    assert!(
        r.stdout.contains("config.primary") && r.stdout.contains("max_connections = 321"),
        "{}",
        r.stdout
    );
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);

    // On the service, and kept in a configuration of the Configuration Manager.
    assert_eq!(variables(&cloud, "primary").await, (321, 0));
    assert_eq!(variables(&cloud, "secondary").await.1, 1);
    let state = cloud.state().unwrap();
    let configs = cloud.api().list_configs().await.unwrap();
    for key in ["primary", "secondary"] {
        let rec = &state.resources.services[key];
        let id = rec.config_id.clone().expect("a configuration recorded");
        let listed = configs.iter().find(|c| c.id == id).expect("listed");
        assert_eq!(listed.services, vec![rec.id.clone()], "attached to {key}");
    }
    cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
        .expect_code(0);

    // The emulator stops and starts: every database restarts. The replica is read-only before
    // skyplan runs, and the primary keeps its variable.
    cloud.skyplan(&["emulator", "stop"]).expect_code(0);
    cloud.start_emulator(&[]);
    assert_eq!(variables(&cloud, "secondary").await.1, 1, "fenced at start");
    assert_eq!(variables(&cloud, "primary").await, (321, 0));
    let r = cloud.skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"]);
    assert_eq!(
        r.code, 0,
        "no drift after a restart\n{}\n{}",
        r.stdout, r.stderr
    );

    // By hand on the running server: drift naming the variable, repaired by apply.
    let mut c = cloud.sql("primary").await;
    c.query_drop("SET GLOBAL max_connections = 100")
        .await
        .unwrap();
    drop(c);
    let r = cloud.skyplan(&["plan", TOPOLOGY, "--detailed-exitcode", "--no-color"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("max_connections is 100, not 321"),
        "{}",
        r.stdout
    );
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    assert_eq!(variables(&cloud, "primary").await.0, 321);
    cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
        .expect_code(0);

    // A variable that takes effect only at a start: the plan says so with a flagged restart
    // step, and apply restarts the primary (its data kept) with it in force.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "max_connections = 321",
            "max_connections = 321\ninnodb_buffer_pool_size = \"32M\"",
        ),
    )
    .unwrap();
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--no-color"])
        .expect_code(0);
    assert!(
        r.stdout.contains("restart.primary")
            && r.stdout.contains("!! this step restarts the server")
            && r.stdout.contains("1 step restarts a server."),
        "{}",
        r.stdout
    );
    let mut c = cloud.sql("primary").await;
    c.query_drop("CREATE DATABASE IF NOT EXISTS app")
        .await
        .unwrap();
    c.query_drop("CREATE TABLE app.kept (id INT PRIMARY KEY)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO app.kept VALUES (1), (2)")
        .await
        .unwrap();
    drop(c);
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    let mut c = cloud.sql("primary").await;
    let pool: Option<u64> = c
        .query_first("SELECT @@GLOBAL.innodb_buffer_pool_size")
        .await
        .unwrap();
    assert_eq!(pool, Some(32 << 20));
    let kept: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM app.kept")
        .await
        .unwrap();
    assert_eq!(kept, Some(2), "a restart keeps the data");
    drop(c);
    assert_eq!(
        variables(&cloud, "primary").await,
        (321, 0),
        "still the primary"
    );
    cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_misspelt_variable_is_refused_at_plan_time_with_a_suggestion() {
    let mut cloud = Cloud::new(TOPOLOGY);
    let file = cloud.dir().join(TOPOLOGY);
    let guide = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        guide.replace(
            "# The globally available copy.",
            "[services.primary.config]\nmax_conections = 321\n\n# The globally available copy.",
        ),
    )
    .unwrap();
    let r = cloud.skyplan(&["plan", TOPOLOGY, "--no-color"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("max_conections") && r.stderr.contains("did you mean `max_connections`?"),
        "{}",
        r.stderr
    );
    assert!(cloud.state().is_none(), "nothing was created");
}

/// Issue 26: a primary with no replicas that refuses writes (read_only ON: a fence left
/// behind) is drift, repaired by opening it; before, nobody looked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_primary_that_refuses_writes_is_drift_and_opened() {
    let mut cloud = Cloud::new(TOPOLOGY);
    let file = cloud.dir().join(TOPOLOGY);
    let guide = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        &guide[..guide.find("# The globally available copy.").unwrap()],
    )
    .unwrap();
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    let mut c = cloud.sql("primary").await;
    c.query_drop("SET GLOBAL read_only = ON").await.unwrap();
    drop(c);
    let r = cloud.skyplan(&["plan", TOPOLOGY, "--detailed-exitcode", "--no-color"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("is the primary but refuses client writes"),
        "{}",
        r.stdout
    );
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    assert_eq!(variables(&cloud, "primary").await.1, 0, "open again");
    cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
        .expect_code(0);
}
