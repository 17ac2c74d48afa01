//! Editing a state by hand, without touching anything remote: `state rm` forgets records,
//! `state mv` renames a service key. Pure: the caller reads, locks and writes.
//!
//! Both keep the state whole: no record is left naming a service the state no longer has
//! (`rm` refuses and says what else would have to go), and a renamed key is renamed in every
//! map and field that names it.

use std::collections::BTreeSet;

use super::address::{self, AddressError, Record};
use super::model::{Resources, State};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Address(#[from] AddressError),

    /// `rm` would leave records naming a forgotten service.
    #[error("{}", still_named_message(.forgotten, .dependents, .suggestion))]
    StillNamed {
        /// The services being forgotten that something still names.
        forgotten: Vec<String>,
        /// Each remaining record that names one, with how.
        dependents: Vec<(String, String)>,
        /// The `state rm` command that would be accepted.
        suggestion: String,
    },

    #[error("`{address}` is not a service address: `state mv` renames service.KEY, and the service's other records move with it")]
    NotAService { address: String },

    #[error("invalid service key `{key}`: a key starts with a lowercase letter and has only lowercase letters, digits, `_` and `-`")]
    InvalidKey { key: String },

    #[error("service.{key} is already in the state (id {id}): refusing to move service.{from} onto it (`skyplan state rm service.{key}` first if that record is stale)")]
    TargetExists {
        from: String,
        key: String,
        id: String,
    },

    #[error("the state still has records that name `{key}` ({}): refusing to move service.{from} onto that key", .records.join("; "))]
    TargetInUse {
        from: String,
        key: String,
        records: Vec<String>,
    },

    #[error("service.{key} and service.{key} are the same address: nothing to move")]
    SameKey { key: String },
}

fn still_named_message(
    forgotten: &[String],
    dependents: &[(String, String)],
    suggestion: &str,
) -> String {
    let services: Vec<String> = forgotten.iter().map(|k| format!("service.{k}")).collect();
    let mut s = format!(
        "refusing to forget {} alone: records that would stay name {}:",
        services.join(", "),
        if services.len() == 1 { "it" } else { "them" }
    );
    for (record, why) in dependents {
        s.push_str(&format!("\n  {record}: {why}"));
    }
    s.push_str(&format!(
        "\nForget those too, e.g. `{suggestion}` (nothing remote is deleted either way)"
    ));
    s
}

/// What `rm` forgot, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Each record forgotten, described (`backup.primary (as the seed of service.secondary)`).
    pub records: Vec<String>,
    /// The service keys forgotten.
    pub services: Vec<String>,
    /// The records forgotten, as they were keyed.
    pub gone: Vec<Record>,
}

/// Forget the records `addresses` name. `service.KEY` forgets the service and every record
/// that belongs to it as a replica: the backup that seeded it, its restore, its replication,
/// the allowlist entries admitting it and the replication users created for it. Refused,
/// with the command that would be accepted, when a record that stays would still name a
/// forgotten service (as its source, its allowlist's owner, its credentials' owner…).
pub fn remove(s: &mut State, addresses: &[&str]) -> Result<Removed, EditError> {
    let r = &s.resources;
    let mut named: BTreeSet<Record> = BTreeSet::new();
    for a in addresses {
        named.extend(address::resolve(s, a)?);
    }
    let gone = expand(r, &named);
    let dangling = dangling(r, &gone);
    if !dangling.is_empty() {
        let forgotten: BTreeSet<String> = dangling.iter().map(|(k, _, _)| k.clone()).collect();
        let dependents = dangling
            .iter()
            .map(|(_, rec, why)| (rec.describe(r), why.clone()))
            .collect();
        return Err(EditError::StillNamed {
            forgotten: forgotten.into_iter().collect(),
            dependents,
            suggestion: suggestion(r, addresses, &named),
        });
    }
    let records = gone.iter().map(|rec| rec.describe(r)).collect();
    let services: Vec<String> = gone
        .iter()
        .filter_map(|rec| match rec {
            Record::Service(k) => Some(k.clone()),
            _ => None,
        })
        .collect();
    for rec in &gone {
        rec.remove_from(&mut s.resources);
    }
    // Earlier grants on a forgotten service are forgotten with it (they are about its
    // allowlist), rather than holding its removal up.
    for k in &services {
        for a in s.resources.allowlists.values_mut() {
            a.earlier.retain(|g| &g.on != k);
        }
    }
    Ok(Removed {
        records,
        services,
        gone: gone.into_iter().collect(),
    })
}

/// The records forgetting `named` takes away: each service with its replica-side records.
fn expand(r: &Resources, named: &BTreeSet<Record>) -> BTreeSet<Record> {
    let mut gone = named.clone();
    for rec in named {
        let Record::Service(k) = rec else { continue };
        for own in [
            Record::Backup(k.clone()),
            Record::Restore(k.clone()),
            Record::Allowlist(k.clone()),
            Record::Replication(k.clone()),
            Record::Config(k.clone()),
        ] {
            if own.exists(r) {
                gone.insert(own);
            }
        }
        gone.extend(
            r.replication_users
                .iter()
                .filter(|(_, u)| &u.replica == k)
                .map(|(account, _)| Record::ReplicationUser(account.clone())),
        );
    }
    gone
}

/// Records that stay and name a service in `gone`: (that service, the record, how).
fn dangling(r: &Resources, gone: &BTreeSet<Record>) -> Vec<(String, Record, String)> {
    let mut v = Vec::new();
    for rec in gone {
        let Record::Service(k) = rec else { continue };
        for (other, why) in address::references(r, k) {
            if !gone.contains(&other) {
                v.push((k.clone(), other, why));
            }
        }
    }
    v
}

/// A `state rm` command that would be accepted: the addresses given, plus the smallest
/// closure of services (or single records, when they belong to no service) that leaves
/// nothing dangling.
fn suggestion(r: &Resources, given: &[&str], named: &BTreeSet<Record>) -> String {
    let mut named = named.clone();
    let mut extra: Vec<String> = Vec::new();
    // Each round forgets at least one more record, so this ends; the bound is a backstop.
    for _ in 0..=address::records(r).len() {
        let gone = expand(r, &named);
        let dangling = dangling(r, &gone);
        if dangling.is_empty() {
            break;
        }
        for (_, rec, _) in dangling {
            let add = owner(r, &rec);
            if let Some(a) = add.address(r) {
                if !extra.contains(&a) && !given.contains(&a.as_str()) {
                    extra.push(a);
                }
            }
            named.insert(add);
        }
    }
    let mut words = vec!["skyplan state rm".to_string()];
    words.extend(given.iter().map(|a| a.to_string()));
    words.extend(extra);
    words.join(" ")
}

/// The service a record belongs to as a replica's (or the record itself when that service is
/// not in the state).
fn owner(r: &Resources, rec: &Record) -> Record {
    let service = match rec {
        Record::Service(_) => return rec.clone(),
        Record::Backup(k)
        | Record::Restore(k)
        | Record::Allowlist(k)
        | Record::Replication(k)
        | Record::Config(k) => Some(k.as_str()),
        // Not a replica's: it stays when its source is forgotten, until named itself.
        Record::MadeBackup(_) => return rec.clone(),
        Record::ReplicationUser(u) => r.replication_users.get(u).map(|u| u.replica.as_str()),
    };
    match service {
        Some(k) if r.services.contains_key(k) => Record::Service(k.to_string()),
        _ => rec.clone(),
    }
}

/// What `mv` changed, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub from: String,
    pub to: String,
    /// Records whose address changed: (old, new).
    pub renamed: Vec<(String, String)>,
    /// Records that kept their address but name the service by its new key now.
    pub updated: Vec<String>,
}

/// Rename service `from_address` to `to_address` (both `service.KEY`): the services map key
/// and every record that names the key, as a map key (backups, restores, allowlists,
/// replications keyed by it) or in a field (`source`, allowlist `on`, replication users'
/// `on`/`replica`, `credentials_from`, `failed_over_to`). Refused onto a key the state
/// already uses.
pub fn rename_service(
    s: &mut State,
    from_address: &str,
    to_address: &str,
) -> Result<Moved, EditError> {
    let key_of = |a: &str| {
        a.strip_prefix("service.")
            .map(str::to_string)
            .ok_or_else(|| EditError::NotAService {
                address: a.to_string(),
            })
    };
    let (from, to) = (key_of(from_address)?, key_of(to_address)?);
    if crate::topology::rules::service_key(&to).is_err() {
        return Err(EditError::InvalidKey { key: to });
    }
    if from == to {
        return Err(EditError::SameKey { key: from });
    }
    address::resolve(s, from_address)?;
    let r = &s.resources;
    if let Some(rec) = r.services.get(&to) {
        return Err(EditError::TargetExists {
            from,
            id: rec.id.clone(),
            key: to,
        });
    }
    let in_use = address::references(r, &to);
    if !in_use.is_empty() {
        return Err(EditError::TargetInUse {
            from,
            records: in_use
                .iter()
                .map(|(rec, why)| format!("{}: {why}", rec.describe(r)))
                .collect(),
            key: to,
        });
    }
    let before = s.resources.clone();
    rename_in(&mut s.resources, &from, &to);
    let after = &s.resources;
    let mut renamed = Vec::new();
    let mut updated = Vec::new();
    for rec in address::records(&before) {
        let moved = rename_record(&rec, &from, &to);
        if !rec.exists(&before) || !moved.exists(after) {
            continue;
        }
        let (old, new) = (rec.describe(&before), moved.describe(after));
        if old != new {
            renamed.push((old, new));
        } else if value_of(&before, &rec) != value_of(after, &moved) {
            updated.push(moved.describe(after));
        }
    }
    Ok(Moved {
        from,
        to,
        renamed,
        updated,
    })
}

fn rename_in(r: &mut Resources, from: &str, to: &str) {
    let rk = |k: &mut String| {
        if k == from {
            *k = to.to_string();
        }
    };
    let rekey = |k: String| if k == from { to.to_string() } else { k };
    r.services = std::mem::take(&mut r.services)
        .into_iter()
        .map(|(k, mut v)| {
            if let Some(c) = v.credentials_from.as_mut() {
                rk(c);
            }
            if let Some(f) = v.failed_over_to.as_mut() {
                rk(f);
            }
            if let Some(c) = v.role_change.as_mut() {
                rk(&mut c.from);
            }
            (rekey(k), v)
        })
        .collect();
    r.backups = std::mem::take(&mut r.backups)
        .into_iter()
        .map(|(k, mut v)| {
            rk(&mut v.source);
            (rekey(k), v)
        })
        .collect();
    r.restores = std::mem::take(&mut r.restores)
        .into_iter()
        .map(|(k, v)| (rekey(k), v))
        .collect();
    r.allowlists = std::mem::take(&mut r.allowlists)
        .into_iter()
        .map(|(k, mut v)| {
            rk(&mut v.on);
            for g in &mut v.earlier {
                rk(&mut g.on);
            }
            (rekey(k), v)
        })
        .collect();
    r.replications = std::mem::take(&mut r.replications)
        .into_iter()
        .map(|(k, mut v)| {
            rk(&mut v.source);
            (rekey(k), v)
        })
        .collect();
    for u in r.replication_users.values_mut() {
        rk(&mut u.on);
        rk(&mut u.replica);
    }
    for b in r.made_backups.values_mut() {
        rk(&mut b.source);
    }
}

fn rename_record(rec: &Record, from: &str, to: &str) -> Record {
    let k = |k: &String| if k == from { to.to_string() } else { k.clone() };
    match rec {
        Record::Service(x) => Record::Service(k(x)),
        Record::Backup(x) => Record::Backup(k(x)),
        Record::Restore(x) => Record::Restore(k(x)),
        Record::Allowlist(x) => Record::Allowlist(k(x)),
        Record::Replication(x) => Record::Replication(k(x)),
        Record::ReplicationUser(x) => Record::ReplicationUser(x.clone()),
        Record::Config(x) => Record::Config(k(x)),
        Record::MadeBackup(x) => Record::MadeBackup(x.clone()),
    }
}

fn value_of(r: &Resources, rec: &Record) -> Option<serde_json::Value> {
    let v = match rec {
        Record::Service(k) => serde_json::to_value(r.services.get(k)?),
        Record::Backup(k) => serde_json::to_value(r.backups.get(k)?),
        Record::Restore(k) => serde_json::to_value(r.restores.get(k)?),
        Record::Allowlist(k) => serde_json::to_value(r.allowlists.get(k)?),
        Record::Replication(k) => serde_json::to_value(r.replications.get(k)?),
        Record::ReplicationUser(k) => serde_json::to_value(r.replication_users.get(k)?),
        Record::Config(k) => Ok(address::config_value(r.services.get(k)?)),
        Record::MadeBackup(id) => serde_json::to_value(r.made_backups.get(id)?),
    };
    v.ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::state::model::*;
    use crate::topology::ServiceSpec;

    fn spec(name: &str) -> ServiceSpec {
        ServiceSpec::for_test(name)
    }

    fn service(id: &str, credentials_from: Option<&str>) -> ServiceRecord {
        ServiceRecord {
            id: id.into(),
            spec: spec(id),
            fqdn: Some(format!("{id}.example.com")),
            port: Some(3306),
            outbound_ips: vec![],
            status: Some("ready".into()),
            credentials_from: credentials_from.map(Into::into),
            in_flight: None,
            failed_over_to: None,
            role_change: None,
            replace_requested: None,
            last_seen: None,
            config_id: None,
            config: Default::default(),
        }
    }

    /// Add `replica` replicating from `source`, as an apply records it.
    fn link(s: &mut State, source: &str, replica: &str, n: u8) {
        let r = &mut s.resources;
        r.services.insert(
            replica.into(),
            service(&format!("svc-{replica}"), Some(source)),
        );
        r.backups.insert(
            replica.into(),
            BackupRecord {
                source: source.into(),
                backup_id: Some(format!("b-{n}")),
                schedule_id: None,
                gtid_position: Some("0-1-5".into()),
                status: Some("Succeeded".into()),
                in_flight: None,
            },
        );
        r.restores.insert(
            replica.into(),
            RestoreRecord {
                backup_id: format!("b-{n}"),
                target_id: format!("svc-{replica}"),
                restore_id: None,
                completed: true,
                in_flight: None,
            },
        );
        r.allowlists.insert(
            replica.into(),
            AllowlistRecord {
                on: source.into(),
                entries: vec![format!("10.0.0.{n}/32")],
                ..Default::default()
            },
        );
        r.replications.insert(
            replica.into(),
            ReplicationRecord {
                source: source.into(),
                source_host: format!("svc-{source}.example.com"),
                source_port: 3306,
                gtid_position: Some("0-1-5".into()),
                ssl: true,
                replication_user: Some(format!("skysql_replication_x@10.0.0.{}", n + 1)),
                healthy: true,
                wired_at: None,
            },
        );
        r.replication_users.insert(
            format!("skysql_replication_x@10.0.0.{}", n + 1),
            ReplicationUserRecord {
                on: "primary".into(),
                replica: replica.into(),
            },
        );
    }

    /// The guide's topology, applied: primary → secondary.
    pub(crate) fn guide() -> State {
        let mut s = State::with_lineage("00000000-0000-4000-8000-000000000000");
        s.resources
            .services
            .insert("primary".into(), service("svc-primary", None));
        link(&mut s, "primary", "secondary", 1);
        s
    }

    #[test]
    fn rm_of_a_replica_forgets_what_belongs_to_it_and_nothing_else() {
        let mut s = guide();
        let removed = remove(&mut s, &["service.secondary"]).unwrap();
        assert_eq!(
            removed.records,
            [
                "service.secondary",
                "backup.primary (as the seed of service.secondary)",
                "restore.secondary",
                "allowlist.primary.secondary",
                "replication.secondary",
                "replication_user.primary.skysql_replication_x",
            ]
        );
        assert_eq!(removed.services, ["secondary"]);
        assert_eq!(address::addresses(&s), ["service.primary"]);
    }

    #[test]
    fn rm_of_a_source_is_refused_with_what_else_must_go() {
        let mut s = guide();
        let before = s.clone();
        let e = remove(&mut s, &["service.primary"]).unwrap_err();
        assert_eq!(s, before, "nothing forgotten on refusal");
        let msg = e.to_string();
        assert!(
            msg.starts_with("refusing to forget service.primary alone"),
            "{msg}"
        );
        assert!(
            msg.contains("replication.secondary: replicates from service.primary"),
            "{msg}"
        );
        assert!(
            msg.contains("service.secondary: its credentials are those of service.primary"),
            "{msg}"
        );
        assert!(
            msg.contains("`skyplan state rm service.primary service.secondary`"),
            "{msg}"
        );
        // Named together, both go.
        remove(&mut s, &["service.primary", "service.secondary"]).unwrap();
        assert!(s.resources.is_empty(), "{:?}", s.resources);
    }

    #[test]
    fn the_suggestion_follows_a_chain_to_its_end() {
        let mut s = guide();
        link(&mut s, "secondary", "third", 2);
        let e = remove(&mut s, &["service.primary"]).unwrap_err();
        let EditError::StillNamed { suggestion, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(
            suggestion,
            "skyplan state rm service.primary service.secondary service.third"
        );
        let mut ok = s.clone();
        remove(
            &mut ok,
            &["service.primary", "service.secondary", "service.third"],
        )
        .unwrap();
        assert!(ok.resources.is_empty());
    }

    #[test]
    fn rm_of_single_records_and_old_spellings() {
        let mut s = guide();
        remove(&mut s, &["backup.secondary"]).unwrap();
        assert!(s.resources.backups.is_empty());
        remove(
            &mut s,
            &["replication.secondary", "allowlist.primary.secondary"],
        )
        .unwrap();
        assert!(s.resources.replications.is_empty() && s.resources.allowlists.is_empty());
        let e = remove(&mut s, &["replication.secondary"]).unwrap_err();
        assert!(matches!(
            e,
            EditError::Address(AddressError::NotFound { .. })
        ));
    }

    #[test]
    fn a_failed_over_primary_names_its_successor() {
        let mut s = guide();
        s.resources
            .services
            .get_mut("primary")
            .unwrap()
            .failed_over_to = Some("secondary".into());
        let e = remove(&mut s, &["service.secondary"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("service.primary: it was failed over to service.secondary"),
            "{e}"
        );
    }

    /// The guide plus `third`, re-pointed from `secondary` to `primary` while `secondary`
    /// did not answer: its entries there are an earlier grant.
    fn with_an_earlier_grant() -> State {
        let mut s = guide();
        link(&mut s, "primary", "third", 2);
        s.resources.allowlists.get_mut("third").unwrap().earlier = vec![EarlierGrant {
            on: "secondary".into(),
            entries: vec!["10.0.0.2/32".into()],
        }];
        s
    }

    #[test]
    fn earlier_grants_are_renamed_with_their_service_and_forgotten_with_it() {
        let mut s = with_an_earlier_grant();
        rename_service(&mut s, "service.secondary", "service.west").unwrap();
        assert_eq!(s.resources.allowlists["third"].earlier[0].on, "west");

        let mut s = with_an_earlier_grant();
        remove(&mut s, &["service.secondary"]).unwrap();
        let third = &s.resources.allowlists["third"];
        assert_eq!(third.on, "primary", "the current grant stays");
        assert!(third.earlier.is_empty(), "{third:?}");
    }

    #[test]
    fn mv_renames_every_record_that_names_the_key() {
        let mut s = guide();
        link(&mut s, "secondary", "third", 2);
        let moved = rename_service(&mut s, "service.secondary", "service.west").unwrap();
        let r = &s.resources;
        assert!(!r.services.contains_key("secondary"));
        assert_eq!(
            r.services["third"].credentials_from.as_deref(),
            Some("west")
        );
        assert_eq!(r.backups["third"].source, "west");
        assert_eq!(r.backups["west"].source, "primary");
        assert!(r.restores.contains_key("west"));
        assert_eq!(r.allowlists["third"].on, "west");
        assert_eq!(r.replications["third"].source, "west");
        assert!(r.replications.contains_key("west"));
        let users: Vec<(&str, &str)> = r
            .replication_users
            .values()
            .map(|u| (u.on.as_str(), u.replica.as_str()))
            .collect();
        assert_eq!(users, [("primary", "west"), ("primary", "third")]);
        let text = format!("{s:?}");
        assert!(!text.contains("\"secondary\""), "{text}");
        assert!(moved
            .renamed
            .contains(&("service.secondary".into(), "service.west".into())));
        assert!(moved.renamed.contains(&(
            "backup.secondary (as the seed of service.third)".into(),
            "backup.west (as the seed of service.third)".into()
        )));
        assert!(moved.renamed.contains(&(
            "backup.primary (as the seed of service.secondary)".into(),
            "backup.primary (as the seed of service.west)".into()
        )));
        assert!(
            moved.updated.contains(&"service.third".to_string()),
            "{moved:?}"
        );
    }

    #[test]
    fn mv_refuses_what_would_lose_or_merge_records() {
        let mut s = guide();
        let before = s.clone();
        let cases = [
            (
                "service.secondary",
                "service.primary",
                "already in the state",
            ),
            ("service.nope", "service.west", "no `service.nope`"),
            ("service.secondary", "service.Bad", "invalid service key"),
            ("service.secondary", "service.secondary", "nothing to move"),
            (
                "replication.secondary",
                "replication.west",
                "not a service address",
            ),
        ];
        for (from, to, expected) in cases {
            let e = rename_service(&mut s, from, to).unwrap_err();
            assert!(e.to_string().contains(expected), "{from} {to}: {e}");
            assert_eq!(s, before);
        }
        // A stale record keyed by the new name would be merged: refused.
        s.resources
            .restores
            .insert("west".into(), s.resources.restores["secondary"].clone());
        let e = rename_service(&mut s, "service.secondary", "service.west").unwrap_err();
        assert!(
            e.to_string()
                .contains("restore.west: restored into service.west"),
            "{e}"
        );
    }
}
