//! The addresses of a state's records, spelled as the plan spells the actions that made them,
//! so that one name means one thing in `plan`, `state list`, `state show` and `state rm`:
//!
//! | address | record |
//! |---|---|
//! | `service.KEY` | `services[KEY]` |
//! | `backup.SOURCE` | the backup of SOURCE that seeded its replicas (`backups[replica]` for each) |
//! | `restore.REPLICA` | `restores[REPLICA]` |
//! | `allowlist.SOURCE.REPLICA` | `allowlists[REPLICA]` (entries on SOURCE) |
//! | `replication.REPLICA` | `replications[REPLICA]` |
//! | `replication_user.ON.USER` | `replication_users[USER@HOST]` (created on ON) |
//! | `config.KEY` | `services[KEY].config_id` and `.config`: its configuration |
//! | `backup_made.SOURCE.ID` | `made_backups[ID]`: a backup skyplan took of SOURCE |
//!
//! The state keys a backup by the replica it seeds, while the plan names it by the service it
//! copies; the address follows the plan. When one source has records of several different
//! backups (replicas seeded at different times), each is `backup.SOURCE.BACKUP_ID` (the plan's
//! spelling for a backup chosen by id), which is always accepted too.
//!
//! Older spellings still resolve, after the current ones: `backup.REPLICA` (the state's own
//! key), `allowlist.REPLICA` and `replication_user.USER@HOST`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::model::{BackupRecord, Resources, State};

/// One record of the state: the map it lives in and its key there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Record {
    Service(String),
    /// `backups[replica]`.
    Backup(String),
    Restore(String),
    /// `allowlists[replica]`.
    Allowlist(String),
    Replication(String),
    /// `replication_users[user@host]`.
    ReplicationUser(String),
    /// The configuration recorded on `services[key]` (`config_id`, `config`).
    Config(String),
    /// `made_backups[backup id]`.
    MadeBackup(String),
}

/// The address kinds a state record can have (for messages).
pub const KINDS: &[&str] = &[
    "service",
    "backup",
    "restore",
    "allowlist",
    "replication",
    "replication_user",
    "config",
    "backup_made",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("`{address}` is not an address: expected KIND.KEY with KIND one of {}, e.g. service.primary", KINDS.join(", "))]
    Malformed { address: String },
    #[error("no `{address}` in the state{}", hint.as_deref().map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_else(|| " (see `skyplan state list`)".into()))]
    NotFound {
        address: String,
        hint: Option<String>,
    },
    #[error("`{address}` names several records: {}; name one of them", options.join(", "))]
    Ambiguous {
        address: String,
        options: Vec<String>,
    },
}

impl Record {
    /// Whether the record is in `r`.
    pub fn exists(&self, r: &Resources) -> bool {
        match self {
            Record::Service(k) => r.services.contains_key(k),
            Record::Backup(k) => r.backups.contains_key(k),
            Record::Restore(k) => r.restores.contains_key(k),
            Record::Allowlist(k) => r.allowlists.contains_key(k),
            Record::Replication(k) => r.replications.contains_key(k),
            Record::ReplicationUser(k) => r.replication_users.contains_key(k),
            Record::Config(k) => r.services.get(k).is_some_and(|s| s.config_id.is_some()),
            Record::MadeBackup(id) => r.made_backups.contains_key(id),
        }
    }

    /// Take the record out of `r` (no-op when it is not there).
    pub fn remove_from(&self, r: &mut Resources) {
        match self {
            Record::Service(k) => {
                r.services.remove(k);
            }
            Record::Backup(k) => {
                r.backups.remove(k);
            }
            Record::Restore(k) => {
                r.restores.remove(k);
            }
            Record::Allowlist(k) => {
                r.allowlists.remove(k);
            }
            Record::Replication(k) => {
                r.replications.remove(k);
            }
            Record::ReplicationUser(k) => {
                r.replication_users.remove(k);
            }
            Record::Config(k) => {
                if let Some(s) = r.services.get_mut(k) {
                    s.config_id = None;
                    s.config.clear();
                }
            }
            Record::MadeBackup(id) => {
                r.made_backups.remove(id);
            }
        }
    }

    /// The record's address in `r` (as `state list` prints it); `None` when it is not there.
    pub fn address(&self, r: &Resources) -> Option<String> {
        Some(match self {
            Record::Service(k) => {
                r.services.get(k)?;
                format!("service.{k}")
            }
            Record::Backup(k) => backup_address(r, r.backups.get(k)?),
            Record::Restore(k) => {
                r.restores.get(k)?;
                format!("restore.{k}")
            }
            Record::Allowlist(k) => format!("allowlist.{}.{k}", r.allowlists.get(k)?.on),
            Record::Replication(k) => {
                r.replications.get(k)?;
                format!("replication.{k}")
            }
            Record::ReplicationUser(k) => user_address(r, k)?,
            Record::Config(k) => {
                r.services.get(k)?.config_id.as_ref()?;
                format!("config.{k}")
            }
            Record::MadeBackup(id) => {
                format!("backup_made.{}.{id}", r.made_backups.get(id)?.source)
            }
        })
    }

    /// The address, and for a backup which replica's copy of the record it is (several
    /// replicas' records share one address): for messages about single records.
    pub fn describe(&self, r: &Resources) -> String {
        let address = self.address(r).unwrap_or_else(|| format!("{self:?}"));
        match self {
            Record::Backup(replica) => format!("{address} (as the seed of service.{replica})"),
            _ => address,
        }
    }
}

/// Every record of `s`, in `state list` order.
pub fn records(r: &Resources) -> Vec<Record> {
    let mut v: Vec<Record> = r.services.keys().cloned().map(Record::Service).collect();
    v.extend(
        r.services
            .iter()
            .filter(|(_, s)| s.config_id.is_some())
            .map(|(k, _)| Record::Config(k.clone())),
    );
    v.extend(r.backups.keys().cloned().map(Record::Backup));
    v.extend(r.restores.keys().cloned().map(Record::Restore));
    v.extend(r.allowlists.keys().cloned().map(Record::Allowlist));
    v.extend(r.replications.keys().cloned().map(Record::Replication));
    v.extend(
        r.replication_users
            .keys()
            .cloned()
            .map(Record::ReplicationUser),
    );
    v.extend(r.made_backups.keys().cloned().map(Record::MadeBackup));
    v
}

/// The addresses of everything `s` records, each once, in `state list` order (services,
/// backups, restores, allowlists, replications, replication users).
pub fn addresses(s: &State) -> Vec<String> {
    let r = &s.resources;
    let mut seen = BTreeSet::new();
    records(r)
        .iter()
        .filter_map(|rec| rec.address(r))
        .filter(|a| seen.insert(a.clone()))
        .collect()
}

/// The records `address` names in `s` (at least one), current spellings first, then the
/// older ones.
pub fn resolve(s: &State, address: &str) -> Result<Vec<Record>, AddressError> {
    let r = &s.resources;
    let malformed = || AddressError::Malformed {
        address: address.to_string(),
    };
    let (kind, rest) = address.split_once('.').ok_or_else(malformed)?;
    if rest.is_empty() {
        return Err(malformed());
    }
    let one = |rec: Record| rec.exists(r).then(|| vec![rec]);
    let found: Option<Vec<Record>> = match kind {
        "service" => one(Record::Service(rest.into())),
        "backup" => {
            let (source, id) = match rest.split_once('.') {
                Some((source, id)) => (source, Some(id)),
                None => (rest, None),
            };
            let of_source: Vec<Record> = r
                .backups
                .iter()
                .filter(|(_, b)| b.source == source)
                .filter(|(_, b)| id.is_none_or(|id| backup_id_label(b) == id))
                .map(|(k, _)| Record::Backup(k.clone()))
                .collect();
            if !of_source.is_empty() {
                Some(of_source)
            } else if id.is_none() {
                one(Record::Backup(rest.into()))
            } else {
                None
            }
        }
        "restore" => one(Record::Restore(rest.into())),
        "config" => one(Record::Config(rest.into())),
        // `backup_made.SOURCE.ID`, or the id alone.
        "backup_made" => {
            let id = rest.split_once('.').map_or(rest, |(_, id)| id);
            one(Record::MadeBackup(id.into())).filter(|_| {
                rest.split_once('.')
                    .is_none_or(|(src, id)| r.made_backups[id].source == src)
            })
        }
        "allowlist" => match rest.split_once('.') {
            Some((on, replica)) => r
                .allowlists
                .get(replica)
                .filter(|a| a.on == on)
                .map(|_| vec![Record::Allowlist(replica.into())]),
            None => one(Record::Allowlist(rest.into())),
        },
        "replication" => one(Record::Replication(rest.into())),
        "replication_user" => {
            let users: Vec<Record> = match rest.split_once('.') {
                // A service key has no `@`: `user@host` is the state's own key.
                Some((on, name)) if !on.contains('@') => r
                    .replication_users
                    .iter()
                    .filter(|(k, u)| u.on == on && (k.as_str() == name || user_name(k) == name))
                    .map(|(k, _)| Record::ReplicationUser(k.clone()))
                    .collect(),
                _ => one(Record::ReplicationUser(rest.into())).unwrap_or_default(),
            };
            (!users.is_empty()).then_some(users)
        }
        _ => return Err(malformed()),
    };
    found.ok_or_else(|| AddressError::NotFound {
        address: address.to_string(),
        hint: closest(address, &addresses(s)),
    })
}

/// What `state show ADDRESS` prints: the record as the state stores it. Where the address
/// does not say which map key the record sits under, the key is added: `replicas` for a
/// backup (the state keeps one copy per replica it seeds), `user` for a replication user.
pub fn show(s: &State, address: &str) -> Result<Value, AddressError> {
    let r = &s.resources;
    let records = resolve(s, address)?;
    let distinct: BTreeSet<String> = records.iter().filter_map(|x| x.address(r)).collect();
    if records.len() > 1 && distinct.len() > 1 {
        return Err(AddressError::Ambiguous {
            address: address.to_string(),
            options: distinct.into_iter().collect(),
        });
    }
    let Some(first) = records.first() else {
        return Err(AddressError::NotFound {
            address: address.to_string(),
            hint: None,
        });
    };
    let value = match first {
        Record::Service(k) => serde_json::to_value(&r.services[k]),
        Record::Backup(k) => {
            let plan_spelling = records.len() > 1 || r.backups[k].source == address_key(address);
            let mut v = serde_json::to_value(&r.backups[k]).unwrap_or(Value::Null);
            if plan_spelling {
                let replicas: Vec<&String> = records
                    .iter()
                    .filter_map(|x| match x {
                        Record::Backup(k) => Some(k),
                        _ => None,
                    })
                    .collect();
                v["replicas"] = serde_json::json!(replicas);
            }
            Ok(v)
        }
        Record::Restore(k) => serde_json::to_value(&r.restores[k]),
        Record::Allowlist(k) => serde_json::to_value(&r.allowlists[k]),
        Record::Replication(k) => serde_json::to_value(&r.replications[k]),
        Record::ReplicationUser(k) => {
            let mut v = serde_json::to_value(&r.replication_users[k]).unwrap_or(Value::Null);
            v["user"] = Value::String(k.clone());
            Ok(v)
        }
        Record::Config(k) => Ok(config_value(&r.services[k])),
        Record::MadeBackup(id) => {
            let mut v = serde_json::to_value(&r.made_backups[id]).unwrap_or(Value::Null);
            v["backup_id"] = Value::String(id.clone());
            Ok(v)
        }
    };
    // The model serialises to JSON by construction; a failure would be a bug, shown as null
    // rather than a panic.
    Ok(value.unwrap_or(Value::Null))
}

/// A service's configuration as `state show config.KEY` prints it.
pub fn config_value(s: &super::model::ServiceRecord) -> Value {
    serde_json::json!({ "config_id": s.config_id, "values": s.config })
}

/// The key part of `backup.KEY…` as written (to tell the old spelling from the plan's).
fn address_key(address: &str) -> &str {
    let rest = address.split_once('.').map_or("", |(_, r)| r);
    rest.split_once('.').map_or(rest, |(k, _)| k)
}

/// `backup.SOURCE`, or `backup.SOURCE.ID` when SOURCE has records of several backups.
fn backup_address(r: &Resources, b: &BackupRecord) -> String {
    let ids: BTreeSet<&str> = r
        .backups
        .values()
        .filter(|o| o.source == b.source)
        .map(backup_id_label)
        .collect();
    if ids.len() > 1 {
        format!("backup.{}.{}", b.source, backup_id_label(b))
    } else {
        format!("backup.{}", b.source)
    }
}

/// The backup's id, or `scheduled` while only its schedule exists.
fn backup_id_label(b: &BackupRecord) -> &str {
    b.backup_id.as_deref().unwrap_or("scheduled")
}

/// `replication_user.ON.USER` (the plan's spelling); with the host too when ON holds that
/// user name for several hosts.
fn user_address(r: &Resources, account: &str) -> Option<String> {
    let u = r.replication_users.get(account)?;
    let name = user_name(account);
    let same_name = r
        .replication_users
        .iter()
        .filter(|(k, o)| o.on == u.on && user_name(k) == name)
        .count();
    Some(if same_name > 1 {
        format!("replication_user.{}.{account}", u.on)
    } else {
        format!("replication_user.{}.{name}", u.on)
    })
}

fn user_name(account: &str) -> &str {
    account.split_once('@').map_or(account, |(u, _)| u)
}

fn closest(word: &str, candidates: &[String]) -> Option<String> {
    skyplan_api::suggest::nearest(word, candidates.iter().map(String::as_str)).map(String::from)
}

/// Every record of `r` that names service `key` (other than `services[key]` itself), with
/// how it names it: map keys and fields alike.
pub fn references(r: &Resources, key: &str) -> Vec<(Record, String)> {
    let mut v: BTreeMap<Record, Vec<String>> = BTreeMap::new();
    let mut add = |rec: Record, why: String| v.entry(rec).or_default().push(why);
    for (k, s) in &r.services {
        if s.credentials_from.as_deref() == Some(key) && k != key {
            add(
                Record::Service(k.clone()),
                format!("its credentials are those of service.{key}"),
            );
        }
        if s.failed_over_to.as_deref() == Some(key) {
            add(
                Record::Service(k.clone()),
                format!("it was failed over to service.{key}"),
            );
        }
        if s.role_change.as_ref().is_some_and(|c| c.from == key) {
            add(
                Record::Service(k.clone()),
                format!("its switchover from service.{key} is unfinished"),
            );
        }
    }
    for (k, b) in &r.backups {
        if b.source == key {
            add(
                Record::Backup(k.clone()),
                format!("a backup of service.{key}"),
            );
        }
        if k == key {
            add(Record::Backup(k.clone()), format!("seeded service.{key}"));
        }
    }
    if r.restores.contains_key(key) {
        add(
            Record::Restore(key.into()),
            format!("restored into service.{key}"),
        );
    }
    for (k, a) in &r.allowlists {
        if a.on == key {
            add(
                Record::Allowlist(k.clone()),
                format!("entries on service.{key}'s allowlist"),
            );
        }
        if k == key {
            add(
                Record::Allowlist(k.clone()),
                format!("admits service.{key}"),
            );
        }
    }
    for (k, l) in &r.replications {
        if l.source == key {
            add(
                Record::Replication(k.clone()),
                format!("replicates from service.{key}"),
            );
        }
        if k == key {
            add(
                Record::Replication(k.clone()),
                format!("the replication of service.{key}"),
            );
        }
    }
    for (k, u) in &r.replication_users {
        if u.on == key {
            add(
                Record::ReplicationUser(k.clone()),
                format!("a user on service.{key}"),
            );
        }
        if u.replica == key {
            add(
                Record::ReplicationUser(k.clone()),
                format!("created for service.{key}"),
            );
        }
    }
    v.into_iter()
        .map(|(rec, why)| (rec, why.join(", ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::edit::tests::guide;

    #[test]
    fn list_uses_the_plans_addresses() {
        let s = guide();
        assert_eq!(
            addresses(&s),
            [
                "service.primary",
                "service.secondary",
                "backup.primary",
                "restore.secondary",
                "allowlist.primary.secondary",
                "replication.secondary",
                "replication_user.primary.skysql_replication_x",
            ]
        );
    }

    #[test]
    fn a_backup_resolves_by_source_by_id_and_by_its_old_key() {
        let s = guide();
        let by_source = resolve(&s, "backup.primary").unwrap();
        assert_eq!(by_source, [Record::Backup("secondary".into())]);
        assert_eq!(resolve(&s, "backup.primary.b-1").unwrap(), by_source);
        assert_eq!(resolve(&s, "backup.secondary").unwrap(), by_source);
        let v = show(&s, "backup.primary").unwrap();
        assert_eq!(v["replicas"], serde_json::json!(["secondary"]));
        // The old spelling shows the record as stored.
        let old = show(&s, "backup.secondary").unwrap();
        assert!(old.get("replicas").is_none(), "{old}");
        assert_eq!(old["source"], "primary");
    }

    #[test]
    fn backups_of_one_source_taken_at_different_times_get_their_ids() {
        let mut s = guide();
        let mut b = s.resources.backups["secondary"].clone();
        b.backup_id = Some("b-2".into());
        s.resources.backups.insert("third".into(), b);
        let list = addresses(&s);
        assert!(list.contains(&"backup.primary.b-1".to_string()), "{list:?}");
        assert!(list.contains(&"backup.primary.b-2".to_string()), "{list:?}");
        assert!(matches!(
            show(&s, "backup.primary"),
            Err(AddressError::Ambiguous { .. })
        ));
        assert_eq!(
            resolve(&s, "backup.primary.b-2").unwrap(),
            [Record::Backup("third".into())]
        );
    }

    #[test]
    fn users_and_allowlists_resolve_in_every_spelling() {
        let s = guide();
        let user = [Record::ReplicationUser(
            "skysql_replication_x@10.0.0.2".into(),
        )];
        for a in [
            "replication_user.primary.skysql_replication_x",
            "replication_user.primary.skysql_replication_x@10.0.0.2",
            "replication_user.skysql_replication_x@10.0.0.2",
        ] {
            assert_eq!(resolve(&s, a).unwrap(), user, "{a}");
        }
        assert_eq!(
            show(&s, "replication_user.primary.skysql_replication_x").unwrap()["user"],
            "skysql_replication_x@10.0.0.2"
        );
        let allow = [Record::Allowlist("secondary".into())];
        assert_eq!(resolve(&s, "allowlist.primary.secondary").unwrap(), allow);
        assert_eq!(resolve(&s, "allowlist.secondary").unwrap(), allow);
        assert!(resolve(&s, "allowlist.other.secondary").is_err());
    }

    #[test]
    fn unknown_and_malformed_addresses_are_errors_with_a_hint() {
        let s = guide();
        for bad in ["", "service", "service.", "bogus.primary", "."] {
            assert!(
                matches!(resolve(&s, bad), Err(AddressError::Malformed { .. })),
                "{bad}"
            );
        }
        let e = resolve(&s, "service.primry").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no `service.primry` in the state (did you mean `service.primary`?)"
        );
        assert!(resolve(&s, "backup.nope.x").is_err());
    }
}
