//! The operator flags end to end: `--replace` re-seeds one replica under a writer with equal
//! checksums afterwards; `--target` leaves other regions untouched; Terraform's single-dash
//! spellings work; a usage error exits 1; a no-op apply without a terminal exits 0.

use std::time::Duration;

use crate::support::app::{self, assert_nothing_lost, restores, AppWriter};
use crate::support::cli::Test;
use crate::support::e2e::Cloud;

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let mut t = Test::new().example("global-replication.toml");
    let r = t
        .args(&[
            "plan",
            "global-replication.toml",
            "--detailed-exitcode",
            "--lock-timout",
            "30s",
        ])
        .run();
    assert_eq!(
        r.code, 1,
        "2 means drift, never a usage error: {}",
        r.stderr
    );
    assert!(r.stderr.contains("--lock-timout"), "{}", r.stderr);
    let r = t.args(&["plan", "--help"]).run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("--replace"), "{}", r.stdout);
}

#[test]
fn terraform_single_dash_spellings_are_accepted() {
    let mut t = Test::new().example("global-replication.toml");
    let r = t
        .args(&[
            "plan",
            "global-replication.toml",
            "-refresh=false",
            "-detailed-exitcode",
            "-json",
            "-target=service.primary",
        ])
        .run();
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(plan["target"][0], "service.primary");
    let addresses: Vec<&str> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses, ["service.primary"], "{addresses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_reseeds_one_replica_under_a_writer_and_target_touches_one_region() {
    let mut cloud = Cloud::new("fan-out.toml");
    let r = cloud.skyplan(&["apply", "fan-out.toml", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // Nothing to do: a no-op apply without a terminal (as in CI) succeeds.
    let r = cloud.skyplan(&["apply", "fan-out.toml"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("No changes."), "{}", r.stdout);

    app::setup(&cloud, "primary").await;
    let keys = ["primary", "europe", "asia", "oregon"];
    let before: Vec<usize> = {
        let mut v = Vec::new();
        for k in ["europe", "asia", "oregon"] {
            v.push(restores(&cloud, &[k]).await);
        }
        v
    };
    let writer = AppWriter::start(&cloud, &["primary"]).await;
    let r = cloud.skyplan(&[
        "apply",
        "fan-out.toml",
        "-auto-approve",
        "-replace=service.asia",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("requested with --replace"),
        "{}",
        r.stdout
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acks = writer.stop().await;
    let all: Vec<u64> = acks.acked.iter().map(|a| a.0).collect();
    assert!(!all.is_empty());
    assert_nothing_lost(&cloud, &keys, &all).await;
    let after = [
        restores(&cloud, &["europe"]).await,
        restores(&cloud, &["asia"]).await,
        restores(&cloud, &["oregon"]).await,
    ];
    assert_eq!(
        after,
        [before[0], before[1] + 1, before[2]],
        "only asia re-seeded"
    );
    let r = cloud.skyplan(&["plan", "fan-out.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    // Two regions resized in the file; --target applies one.
    let file = cloud.dir().join("fan-out.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let resized = text
        .replace(
            "region = \"europe-west1\"       # Belgium",
            "region = \"europe-west1\"\nsize = \"sky-4x16\"",
        )
        .replace(
            "region = \"asia-southeast1\"    # Singapore",
            "region = \"asia-southeast1\"\nsize = \"sky-4x16\"",
        );
    assert_ne!(resized, text);
    std::fs::write(&file, resized).unwrap();
    let r = cloud.skyplan(&[
        "apply",
        "fan-out.toml",
        "--auto-approve",
        "--target",
        "service.europe",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("partial plan"), "{}", r.stdout);
    let state = cloud.state().unwrap();
    assert_eq!(state.resources.services["europe"].spec.size, "sky-4x16");
    assert_eq!(state.resources.services["asia"].spec.size, "sky-2x8");
    let r = cloud.skyplan(&["plan", "fan-out.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "asia is still to do: {}", r.stdout);
    assert!(r.stdout.contains("service.asia"), "{}", r.stdout);
    assert!(!r.stdout.contains("service.europe "), "{}", r.stdout);
}
