//! Shared fixtures for the tests/state_*.rs files.

pub(crate) mod mariadb;

use std::collections::BTreeMap;

use skyplan::state::*;
use skyplan::topology::ServiceSpec;

fn spec(name: &str, region: &str) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        service_type: "transactional".into(),
        topology: "standalone".into(),
        provider: "gcp".into(),
        region: region.into(),
        architecture: "amd64".into(),
        size: "sky-2x8".into(),
        storage: 100,
        nodes: 1,
        version: Some("10.11".into()),
        ssl_enabled: true,
        volume_type: Some("pd-ssd".into()),
        volume_iops: Some(3000),
        allow_list: vec!["127.0.0.1/32".into()],
        tags: BTreeMap::from([("team".to_string(), "infra".to_string())]),
    }
}

/// A state with every record type and every optional field set: what a mid-apply crash of the
/// guide's two-service topology leaves behind.
pub(crate) fn populated_state() -> State {
    let mut s = skyplan::state::new_state();
    s.serial = 7;
    let in_flight = |op: Operation| InFlight {
        operation: op,
        started_at: "2024-05-01T12:00:00Z".into(),
        operation_id: Some(format!("{op}-123")),
    };
    s.resources.services.insert(
        "primary".into(),
        ServiceRecord {
            id: "dbpgf00000001".into(),
            spec: spec("skysql-primary", "us-east4"),
            fqdn: Some("skysql-primary.mdb0000001.db.skysql.com".into()),
            port: Some(3306),
            outbound_ips: vec!["34.1.2.3".into()],
            status: Some("ready".into()),
            credentials_from: None,
            failed_over_to: None,
            role_change: None,
            replace_requested: None,
            last_seen: None,
            in_flight: None,
            config_id: None,
            config: Default::default(),
        },
    );
    s.resources.services.insert(
        "secondary".into(),
        ServiceRecord {
            id: "dbpgf00000002".into(),
            spec: spec("skysql-secondary", "us-west1"),
            fqdn: Some("skysql-secondary.mdb0000002.db.skysql.com".into()),
            port: Some(3306),
            outbound_ips: vec!["35.4.5.6".into(), "35.4.5.7".into()],
            status: Some("pending_update".into()),
            credentials_from: Some("primary".into()),
            failed_over_to: None,
            role_change: None,
            replace_requested: None,
            last_seen: None,
            in_flight: Some(in_flight(Operation::Update)),
            config_id: None,
            config: Default::default(),
        },
    );
    s.resources.backups.insert(
        "secondary".into(),
        BackupRecord {
            source: "primary".into(),
            backup_id: Some("bk-42".into()),
            schedule_id: Some("sched-7".into()),
            gtid_position: Some("0-1-123".into()),
            status: Some("Succeeded".into()),
            in_flight: Some(in_flight(Operation::Backup)),
        },
    );
    s.resources.restores.insert(
        "secondary".into(),
        RestoreRecord {
            backup_id: "bk-42".into(),
            target_id: "dbpgf00000002".into(),
            restore_id: Some("rs-9".into()),
            completed: true,
            in_flight: Some(in_flight(Operation::Restore)),
        },
    );
    s.resources.allowlists.insert(
        "secondary".into(),
        AllowlistRecord {
            on: "primary".into(),
            entries: vec!["35.4.5.6/32".into(), "35.4.5.7/32".into()],
            ..Default::default()
        },
    );
    s.resources.replications.insert(
        "secondary".into(),
        ReplicationRecord {
            source: "primary".into(),
            source_host: "skysql-primary.mdb0000001.db.skysql.com".into(),
            source_port: 3306,
            gtid_position: Some("0-1-123".into()),
            ssl: true,
            replication_user: Some("skysql_replication".into()),
            healthy: true,
            wired_at: None,
        },
    );
    s
}
