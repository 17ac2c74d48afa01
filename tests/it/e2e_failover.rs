//! Failover (issue 13): the primary is lost (deleted, or its region down) and the topology
//! promotes a replica. Refused without `--allow-data-loss`, nothing changed; with it, the
//! replica is promoted with what it received, the other replicas follow it by GTID (no copy),
//! and an application-like writer (INSERT/SELECT only) moves to it. A primary that comes back
//! is fenced first and rejoins by GTID, or stays fenced with the writes it alone has listed.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::reliability_support::{end_outage, outage, OutageMode};
use crate::support::app::{self, assert_nothing_lost, restores, AppWriter};
use crate::support::e2e::Cloud;

/// Retries of an API that does not answer cost time; a lost region is expected here.
fn few_retries(topology: &str) -> String {
    topology.replacen("[provider]\n", "[provider]\nmax_retries = 1\n", 1)
}

/// The guide with the secondary as the primary and the old primary following it.
fn pair_switched(guide: &str) -> String {
    let start = guide.find("[services.secondary.replication]").unwrap();
    format!(
        "{}[services.primary.replication]\nfrom = \"secondary\"\nseed = \"new-backup\"\nssl = true\n",
        &guide[..start]
    )
}

async fn read_only(cloud: &Cloud, key: &str) -> bool {
    let mut c = cloud.sql(key).await;
    let v: Option<u8> = c.query_first("SELECT @@GLOBAL.read_only").await.unwrap();
    v == Some(1)
}

/// Write for a while on `keys[0]`, stop, and return what was acknowledged.
async fn some_writes(cloud: &Cloud, keys: &[&str]) -> Vec<u64> {
    let writer = AppWriter::start(cloud, keys).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    writer.stop().await.acked.iter().map(|a| a.0).collect()
}

fn apply(cloud: &mut Cloud, args: &[&str]) -> crate::support::cli::Run {
    let t = cloud.topology.clone();
    let mut all = vec!["apply", t.as_str(), "--auto-approve"];
    all.extend_from_slice(args);
    cloud.skyplan(&all)
}

fn plan(cloud: &mut Cloud, args: &[&str]) -> crate::support::cli::Run {
    let t = cloud.topology.clone();
    let mut all = vec!["plan", t.as_str(), "--detailed-exitcode"];
    all.extend_from_slice(args);
    cloud.skyplan(&all)
}

/// The fan-out example after its primary is lost: europe becomes the primary, the others
/// follow it, the old primary leaves the topology.
fn failed_over_to_europe(fan_out: &str) -> String {
    let europe_block = "[services.europe.replication]\nfrom = \"primary\"\nseed = \"new-backup\"\n";
    let start = fan_out.find("[services.primary]").unwrap();
    let end = fan_out.find("[services.europe]").unwrap();
    format!("{}{}", &fan_out[..start], &fan_out[end..])
        .replace(europe_block, "")
        .replace("from = \"primary\"", "from = \"europe\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_primary_fails_over_only_when_allowed_and_the_replicas_follow_by_gtid() {
    let mut cloud = Cloud::new("fan-out.toml");
    let file = cloud.dir().join("fan-out.toml");
    let fan_out = few_retries(&std::fs::read_to_string(&file).unwrap());
    std::fs::write(&file, &fan_out).unwrap();
    let r = apply(&mut cloud, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    app::setup(&cloud, "primary").await;
    let survivors = ["europe", "asia", "oregon"];
    let mut all = some_writes(&cloud, &["primary"]).await;
    assert_nothing_lost(&cloud, &["primary", "europe", "asia", "oregon"], &all).await;
    let restores_before = restores(&cloud, &survivors).await;

    // The region is lost: the primary is deleted outside skyplan.
    cloud.delete_by_hand("primary").await;
    std::fs::write(&file, failed_over_to_europe(&fan_out)).unwrap();

    let before = std::fs::read(cloud.state_path()).unwrap();
    for r in [plan(&mut cloud, &[]), apply(&mut cloud, &[])] {
        assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("failover") && r.stderr.contains("--allow-data-loss"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(
        std::fs::read(cloud.state_path()).unwrap(),
        before,
        "nothing changed"
    );
    let r = plan(&mut cloud, &["--allow-data-loss"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(" <! failover.europe"), "{}", r.stdout);
    assert!(!r.stdout.contains("restore"), "{}", r.stdout);

    // The application moves to europe once it takes writes.
    let writer = AppWriter::start(&cloud, &survivors).await;
    let r = apply(&mut cloud, &["--allow-data-loss"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acks = writer.stop().await;
    assert!(
        !acks.acked.is_empty(),
        "no write was accepted after the failover"
    );
    let servers: std::collections::BTreeSet<u32> = acks.acked.iter().map(|a| a.1).collect();
    assert_eq!(servers.len(), 1, "one writer only: {servers:?}");
    all.extend(acks.acked.iter().map(|a| a.0));

    let state = cloud.state().unwrap();
    assert!(!state.resources.services.contains_key("primary"));
    assert!(!state.resources.replications.contains_key("europe"));
    for r in ["asia", "oregon"] {
        let l = &state.resources.replications[r];
        assert!(l.source == "europe" && l.healthy, "service.{r}: {l:?}");
    }
    assert_eq!(
        restores(&cloud, &survivors).await,
        restores_before,
        "no copy"
    );
    assert!(!read_only(&cloud, "europe").await);
    assert_nothing_lost(&cloud, &survivors, &all).await;
    let r = plan(&mut cloud, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    let t = cloud.topology.clone();
    let r = cloud.skyplan(&["destroy", &t, "--auto-approve"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(cloud.api().list_services().await.unwrap().is_empty());
}

/// A third service replicating from `from`.
fn third_from(from: &str) -> String {
    format!(
        "\n[services.third]\nname = \"skysql-third\"\nregion = \"us-central1\"\n\n[services.third.replication]\nfrom = \"{from}\"\nseed = \"new-backup\"\n"
    )
}

/// A region outage of the primary: failover to the secondary, which a third replica follows;
/// when the region is back, the old primary is fenced and rejoins by GTID with no copy,
/// holding every acknowledged write, and the allowlist entries skyplan had granted there for
/// the re-pointed replica (which could not be revoked while it was away) are revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_back_from_an_outage_is_fenced_and_rejoins_without_a_copy() {
    let mut cloud = Cloud::new("global-replication.toml");
    let file = cloud.dir().join("global-replication.toml");
    let guide = few_retries(&std::fs::read_to_string(&file).unwrap());
    std::fs::write(&file, format!("{guide}{}", third_from("primary"))).unwrap();
    let r = apply(&mut cloud, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    app::setup(&cloud, "primary").await;
    let keys = ["primary", "secondary", "third"];
    let third_ip = cloud.state().unwrap().resources.allowlists["third"].entries[0].clone();
    let primary_id = cloud.state().unwrap().resources.services["primary"]
        .id
        .clone();
    let allowed_on_primary = |cloud: &Cloud| {
        let (api, id) = (cloud.api(), primary_id.clone());
        async move {
            let listed = api.get_allowlist(&id).await.unwrap();
            listed
                .into_iter()
                .flat_map(|e| e.allow_list.into_iter().map(|i| i.ip))
                .collect::<Vec<String>>()
        }
    };
    assert!(allowed_on_primary(&cloud).await.contains(&third_ip));
    let mut all = some_writes(&cloud, &["primary"]).await;
    assert_nothing_lost(&cloud, &keys, &all).await;
    let restores_before = restores(&cloud, &keys).await;

    outage(&cloud, "skysql-primary", OutageMode::Errors).await;
    std::fs::write(
        &file,
        format!("{}{}", pair_switched(&guide), third_from("secondary")),
    )
    .unwrap();
    let r = plan(&mut cloud, &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--allow-data-loss"), "{}", r.stderr);

    let writer = AppWriter::start(&cloud, &["secondary", "primary"]).await;
    let r = apply(&mut cloud, &["--allow-data-loss"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(" <! failover.secondary"), "{}", r.stdout);
    let state = cloud.state().unwrap();
    assert_eq!(
        state.resources.services["primary"]
            .failed_over_to
            .as_deref(),
        Some("secondary")
    );
    // The third follows the secondary; its entry on the unreachable primary stays skyplan's.
    let third = &state.resources.allowlists["third"];
    assert_eq!(third.on, "secondary");
    assert_eq!(third.earlier.len(), 1, "{third:?}");
    assert_eq!(third.earlier[0].on, "primary");
    // While it is away: reported, nothing planned for it.
    let r = plan(&mut cloud, &[]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("unreachable"), "{}", r.stdout);

    // The region comes back: the old primary answers, and it is read-only from its start (the
    // failover put read_only = ON in its configuration): nobody can write to it, and no fence
    // is needed.
    end_outage(&cloud, "skysql-primary").await;
    assert!(read_only(&cloud, "primary").await, "fenced at its start");
    let r = plan(&mut cloud, &[]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("role.primary"), "{}", r.stdout);
    assert!(!r.stdout.contains("restore"), "{}", r.stdout);
    assert!(
        r.stdout.contains("allowlist.primary.third"),
        "the left entry is revoked: {}",
        r.stdout
    );
    assert!(!r.stdout.contains("entries added"), "{}", r.stdout);
    let r = apply(&mut cloud, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acks = writer.stop().await;
    let servers: std::collections::BTreeSet<u32> = acks.acked.iter().map(|a| a.1).collect();
    assert_eq!(
        servers.len(),
        1,
        "only the new primary took writes: {servers:?}"
    );
    all.extend(acks.acked.iter().map(|a| a.0));

    let state = cloud.state().unwrap();
    let link = &state.resources.replications["primary"];
    assert!(link.source == "secondary" && link.healthy, "{link:?}");
    assert_eq!(state.resources.services["primary"].failed_over_to, None);
    assert_eq!(restores(&cloud, &keys).await, restores_before, "no copy");
    assert!(
        read_only(&cloud, "primary").await,
        "the old primary is fenced"
    );
    assert_nothing_lost(&cloud, &keys, &all).await;
    let ips = allowed_on_primary(&cloud).await;
    assert!(!ips.contains(&third_ip), "{ips:?}");
    assert!(state.resources.allowlists["third"].earlier.is_empty());
    let r = plan(&mut cloud, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

/// Writes that reached only the old primary before its region went down: after the failover
/// and the region's return, it stays fenced, and the plan lists those writes' GTIDs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_back_with_writes_the_new_one_lacks_stays_fenced_and_they_are_listed() {
    let mut cloud = Cloud::new("global-replication.toml");
    let file = cloud.dir().join("global-replication.toml");
    let guide = few_retries(&std::fs::read_to_string(&file).unwrap());
    std::fs::write(&file, &guide).unwrap();
    let r = apply(&mut cloud, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    app::setup(&cloud, "primary").await;
    let _ = some_writes(&cloud, &["primary"]).await;
    // The link is cut (as a network partition would), then the primary takes more writes.
    let mut c = cloud.sql("secondary").await;
    c.query_drop("CALL sky.stop_replication()").await.unwrap();
    drop(c);
    let lost = some_writes(&cloud, &["primary"]).await;
    assert!(!lost.is_empty());

    outage(&cloud, "skysql-primary", OutageMode::Errors).await;
    std::fs::write(&file, pair_switched(&guide)).unwrap();
    let r = apply(&mut cloud, &["--allow-data-loss"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    end_outage(&cloud, "skysql-primary").await;

    let r = plan(&mut cloud, &[]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("diverged primary"), "{}", r.stdout);
    assert!(r.stdout.contains("transactions"), "{}", r.stdout);
    // Fenced before skyplan looked: the failover put read_only = ON in its configuration,
    // which its restart after the outage started it with.
    assert!(read_only(&cloud, "primary").await, "fenced at its start");
    assert!(!r.stdout.contains("role.primary"), "{}", r.stdout);
    assert!(!r.stdout.contains("replication.primary"), "{}", r.stdout);
    let r = apply(&mut cloud, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(read_only(&cloud, "primary").await, "kept fenced");
    // It still holds the writes the failover lost; the new primary does not.
    let (_, _, on_old) = app::app_tables(&cloud, "primary").await;
    let (_, _, on_new) = app::app_tables(&cloud, "secondary").await;
    assert!(lost
        .iter()
        .all(|s| on_old.contains(s) && !on_new.contains(s)));
    let r = plan(&mut cloud, &[]);
    assert_eq!(r.code, 2, "still drift: {}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("replication.primary"), "{}", r.stdout);
}

/// Issue 23: a lost service is decided quickly. With the primary's region hanging (`outage
/// --mode timeouts`: every API call naming it gets no answer) and the default retries, `plan`
/// answers within a minute (each service's whole answer is bounded by `[provider] lost_after`,
/// 20 s by default, not by retries × the request timeout) and the failover applies within 90 s;
/// the writer then writes on the new primary. Before, each took about 9 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_region_is_decided_within_lost_after_and_the_failover_is_quick() {
    let mut cloud = Cloud::new("global-replication.toml");
    let file = cloud.dir().join("global-replication.toml");
    let guide = std::fs::read_to_string(&file).unwrap();
    let r = apply(&mut cloud, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    app::setup(&cloud, "primary").await;
    let keys = ["primary", "secondary"];
    let all = some_writes(&cloud, &["primary"]).await;
    assert_nothing_lost(&cloud, &keys, &all).await;

    outage(&cloud, "skysql-primary", OutageMode::Timeouts).await;
    std::fs::write(&file, pair_switched(&guide)).unwrap();
    let t = std::time::Instant::now();
    let r = plan(&mut cloud, &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("--allow-data-loss") && r.stderr.contains("lost_after"),
        "{}",
        r.stderr
    );
    // Progress says what is being waited for.
    assert!(
        r.stderr
            .contains("waiting for the SkySQL API to answer for service.primary"),
        "{}",
        r.stderr
    );
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "plan took {:?}",
        t.elapsed()
    );
    let t = std::time::Instant::now();
    let r = apply(&mut cloud, &["--allow-data-loss"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        t.elapsed() < Duration::from_secs(90),
        "apply took {:?}",
        t.elapsed()
    );
    assert!(!read_only(&cloud, "secondary").await);
    let more = some_writes(&cloud, &["secondary"]).await;
    assert!(!more.is_empty(), "the writer writes on the new primary");
    end_outage(&cloud, "skysql-primary").await;
}

/// Issue 23: a failover loses only what no survivor received. The candidate (europe) stopped
/// receiving while its siblings received 400 more acknowledged writes; then the primary was
/// lost. Before, the plan promoted europe and re-seeded the siblings: those writes were gone.
/// Now europe first catches up from a sibling through a temporary link the plan shows; every
/// acknowledged write is on every survivor afterwards, nothing is copied, the temporary
/// allowlist entry is gone, and the next plan has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_to_a_lagging_candidate_first_catches_up_from_the_sibling_holding_more() {
    let mut cloud = Cloud::new("fan-out.toml");
    let file = cloud.dir().join("fan-out.toml");
    let fan_out = few_retries(&std::fs::read_to_string(&file).unwrap());
    std::fs::write(&file, &fan_out).unwrap();
    let r = apply(&mut cloud, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    app::setup(&cloud, "primary").await;
    let survivors = ["europe", "asia", "oregon"];
    let mut all = some_writes(&cloud, &["primary"]).await;
    assert_nothing_lost(&cloud, &["primary", "europe", "asia", "oregon"], &all).await;
    // europe stops receiving; the primary goes on writing, and its siblings receive it.
    cloud
        .sql("europe")
        .await
        .query_drop("CALL sky.stop_replication()")
        .await
        .unwrap();
    all.extend(app::bulk(&cloud, "primary", 400).await);
    assert_nothing_lost(&cloud, &["primary", "asia", "oregon"], &all).await;
    let restores_before = restores(&cloud, &survivors).await;

    cloud.delete_by_hand("primary").await;
    std::fs::write(&file, failed_over_to_europe(&fan_out)).unwrap();
    let r = plan(&mut cloud, &["--allow-data-loss"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("catch up from")
            && r.stdout.contains("(400 transactions)")
            && r.stdout.contains("(temporary)"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("restore"), "{}", r.stdout);

    // The writer numbers on from the first endpoint's highest row: one that has them all.
    let writer = AppWriter::start(&cloud, &["asia", "europe", "oregon"]).await;
    let r = apply(&mut cloud, &["--allow-data-loss"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("caught up from service."), "{}", r.stderr);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acks = writer.stop().await;
    assert!(
        !acks.acked.is_empty(),
        "no write was accepted after the failover"
    );
    all.extend(acks.acked.iter().map(|a| a.0));
    assert_nothing_lost(&cloud, &survivors, &all).await;
    assert_eq!(
        restores(&cloud, &survivors).await,
        restores_before,
        "no copy"
    );

    // The temporary entry is revoked: europe's IPs are on no sibling's allowlist.
    let state = cloud.state().unwrap();
    let europe_ips = &state.resources.services["europe"].outbound_ips;
    assert!(!europe_ips.is_empty());
    for k in ["asia", "oregon"] {
        let l = &state.resources.replications[k];
        assert!(l.source == "europe" && l.healthy, "service.{k}: {l:?}");
        let id = &state.resources.services[k].id;
        let entries: Vec<String> = cloud
            .api()
            .get_allowlist(id)
            .await
            .unwrap()
            .iter()
            .flat_map(|e| e.entries())
            .collect();
        for ip in europe_ips {
            assert!(
                !entries
                    .iter()
                    .any(|e| e.split('/').next() == Some(ip.as_str())),
                "service.{k} still allowlists {ip}: {entries:?}"
            );
        }
    }
    assert!(state
        .resources
        .allowlists
        .values()
        .all(|a| a.earlier.iter().all(|g| g.on != "asia" && g.on != "oregon")));
    let r = plan(&mut cloud, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}
