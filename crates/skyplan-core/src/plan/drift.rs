//! Drift: differences between what skyplan last applied (state) and what refresh observed,
//! reported apart from the changes the topology asks for.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::action::WireMode;
use crate::observed::{Observed, ObservedReplication, ObservedService};
use crate::state::{ReplicationRecord, State};

/// What drifted. Every kind except the informational ones (`allowlist_entry_added`,
/// `link_kept`) counts in `summary.drift` and makes `plan --detailed-exitcode` exit 2.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub enum DriftKind {
    /// The id recorded in the state answers 404. Repair: create it again (and re-seed a replica); a
    /// service no longer in the topology is only forgotten.
    ServiceDeleted,
    /// The service is in status `failed`. Repair: replace it (wipes it).
    ServiceFailed,
    /// The service is stopped. No repair: start it from the SkySQL portal.
    ServiceStopped,
    /// size, nodes or storage changed outside skyplan (before/after hold the changed fields).
    /// Repair: resize back; storage cannot shrink, so grown storage is kept and the detail says
    /// what to set in the topology. A change to exactly what the topology asks for is not drift.
    ServiceResized,
    /// An entry skyplan added to a source's allowlist for a replica is gone (CIDR-normalised:
    /// `1.2.3.4` is `1.2.3.4/32`). Repair: add it again.
    AllowlistEntryRemoved,
    /// Informational: entries added by hand; left alone, and not counted as drift for the exit
    /// code.
    AllowlistEntryAdded,
    /// An entry of the topology's `allow_list` is gone from the service. Repair: add it again.
    AllowListChanged,
    /// Both replication threads stopped without an error (e.g. `sky.stop_replication()`). Repair:
    /// restart where it stopped.
    ReplicationStopped,
    /// A replication thread stopped, or keeps failing, on an error (`last_io_error` /
    /// `last_sql_error` in after). Repair: restart for IO errors; re-seed by backup and restore
    /// (wipes the replica) for SQL errors and error 1236 (position gone from the source's binlogs).
    ReplicationBroken,
    /// No replication configured on the replica (e.g. `sky.reset_replication()`). Repair: rewire
    /// from the replica's own GTID position.
    ReplicationMissing,
    /// The replica replicates from another host/port than the recorded source. Repair: re-seed from
    /// the source.
    ReplicationRepointed,
    /// Seconds_Behind_Master above `[services.<key>.replication] max_lag_seconds` (default 300). No
    /// repair: reported for a person.
    ReplicationLagging,
    /// The replica holds transactions its source does not have (`after.errant` lists their GTIDs):
    /// something wrote to the replica. Such a replica cannot be re-pointed or promoted without
    /// conflicts. No repair (re-seeding would discard the writes): reported for a person, who
    /// decides whether they matter.
    ErrantTransactions,
    /// A `skysql_replication_*` user on a source (a chain's root) that no link in the state owns,
    /// e.g. left by a replica removed before skyplan dropped users, or by a crash. Repair: drop it
    /// on that source (the drop replicates to every replica).
    ReplicationUserOrphaned,
    /// A replica that clients can write to (`read_only` OFF), or a primary that refuses their
    /// writes (`read_only` ON, e.g. a fence left behind). Repair: set `read_only` as the topology's
    /// roles say.
    RoleMismatch,
    /// The API reports another fqdn or port for the service than the state records. The API's is
    /// used for everything planned and done; apply records it.
    ServiceEndpointChanged,
    /// A recorded service whose API or database does not answer: a primary that a failover replaced
    /// and that is still away. No repair until it answers; then it is fenced first and rejoins the
    /// new primary by GTID.
    ServiceUnreachable,
    /// The API reports the service ready, but its database does not answer skyplan (`after.error`
    /// says how it failed): a dead server or a network cut. Replication from or to it cannot be
    /// repaired, so nothing is planned for those links and `apply` refuses (exit 1, nothing
    /// changed) until it answers; if the primary is lost, fail over (README).
    DatabaseUnreachable,
    /// A primary that a failover replaced answers again with transactions the new primary lacks
    /// (`after.extra` lists them as GTID ranges): the writes the failover lost. It stays fenced
    /// (read-only); skyplan does not re-seed it on its own: take the rows you need, then re-seed it
    /// with `apply --replace service.<key> --allow-data-loss` (flagged as wiping; the last-copy
    /// rule lists what it discards).
    DivergedPrimary,
    /// A switchover that an apply started and did not finish (killed or interrupted): the state
    /// records it on the candidate (`role_change`). When neither the old primary nor the candidate
    /// is open for writes the detail says "no writable primary". Repair: apply resumes it by GTID
    /// (finishing the catch-up and opening the candidate, or re-pointing the old primary); it never
    /// re-seeds on its own.
    RoleChangeInterrupted,
    /// A server variable of a managed service differs from the topology: in its configuration
    /// (edited outside skyplan, or deleted) or on the running server (a SET GLOBAL by hand).
    /// Resource `config.<key>`; the detail names each variable. Repair: the configuration is set
    /// again, dynamic variables are set on the server, and a variable that takes effect only at a
    /// start is applied by a flagged restart.
    ConfigChanged,
    /// Informational: a replica the state records without a link (imported, adopted, or its record
    /// lost) already replicates from the topology's source, healthy and with no transaction the
    /// source lacks: the link (and the allowlist entries that admit it) is kept as it is, not re-
    /// seeded. Not counted as drift.
    LinkKept,
}

impl DriftKind {
    /// Every kind, in declaration order (for documentation and schema tests).
    pub const ALL: [DriftKind; 22] = [
        DriftKind::ServiceDeleted,
        DriftKind::ServiceFailed,
        DriftKind::ServiceStopped,
        DriftKind::ServiceResized,
        DriftKind::AllowlistEntryRemoved,
        DriftKind::AllowlistEntryAdded,
        DriftKind::AllowListChanged,
        DriftKind::ReplicationStopped,
        DriftKind::ReplicationBroken,
        DriftKind::ReplicationMissing,
        DriftKind::ReplicationRepointed,
        DriftKind::ReplicationLagging,
        DriftKind::ErrantTransactions,
        DriftKind::ReplicationUserOrphaned,
        DriftKind::RoleMismatch,
        DriftKind::ServiceEndpointChanged,
        DriftKind::ServiceUnreachable,
        DriftKind::DatabaseUnreachable,
        DriftKind::DivergedPrimary,
        DriftKind::RoleChangeInterrupted,
        DriftKind::ConfigChanged,
        DriftKind::LinkKept,
    ];

    /// Informational drift is reported but does not by itself make `--detailed-exitcode` exit 2.
    pub fn is_informational(self) -> bool {
        matches!(self, DriftKind::AllowlistEntryAdded | DriftKind::LinkKept)
    }

    /// A few words for people (the JSON carries the snake_case name).
    pub fn label(self) -> &'static str {
        match self {
            DriftKind::ServiceDeleted => "deleted",
            DriftKind::ServiceFailed => "failed",
            DriftKind::ServiceStopped => "stopped",
            DriftKind::ServiceResized => "resized",
            DriftKind::AllowlistEntryRemoved => "entry removed",
            DriftKind::AllowlistEntryAdded => "entries added",
            DriftKind::AllowListChanged => "allow_list changed",
            DriftKind::ReplicationStopped => "replication stopped",
            DriftKind::ReplicationBroken => "replication broken",
            DriftKind::ReplicationMissing => "replication reset",
            DriftKind::ReplicationRepointed => "replication re-pointed",
            DriftKind::ReplicationLagging => "replication lagging",
            DriftKind::ErrantTransactions => "errant transactions",
            DriftKind::ReplicationUserOrphaned => "orphaned replication user",
            DriftKind::RoleMismatch => "role",
            DriftKind::ServiceEndpointChanged => "endpoint changed",
            DriftKind::ServiceUnreachable => "unreachable",
            DriftKind::DatabaseUnreachable => "database not answering",
            DriftKind::DivergedPrimary => "diverged primary",
            DriftKind::RoleChangeInterrupted => "switchover interrupted",
            DriftKind::ConfigChanged => "configuration changed",
            DriftKind::LinkKept => "link kept",
        }
    }
}

/// One difference between what skyplan last applied (the state) and what refresh observed
/// (the SkySQL API and the services' replication status over SQL). Drift is listed apart from
/// the actions; the actions that repair it carry a `reason`. Every kind except
/// `allowlist_entry_added` and `link_kept` counts in `summary.drift` and makes
/// `plan --detailed-exitcode` exit 2; an error (e.g. the API unreachable) exits 1 and prints no
/// plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Drift {
    /// Address of the drifted resource: `service.<key>`, `allowlist.<source>.<replica>`,
    /// `replication.<replica>`, `role.<key>`, `config.<key>` or `switchover.<new primary>`, as
    /// in the actions.
    pub resource: String,
    pub kind: DriftKind,
    /// What skyplan expected (from the state), e.g. {"io_running": true, "sql_running": true,
    /// "source": "host:port"}; null when there is nothing to compare.
    pub before: Value,
    /// What refresh found, with the same fields as before (plus the server's errors for
    /// replication); null when the resource is gone.
    pub after: Value,
    /// One line for people.
    pub detail: String,
}

/// Observed beats recorded: make `state` say what refresh saw of each service's endpoint
/// (fqdn, port) and outbound IPs before anything is planned or done with them, and of each
/// link's source endpoint when the replica really replicates from it. Returns the endpoint
/// differences as drift (outbound IPs are compared where they are used: the grants).
pub fn correct_endpoints(state: &mut State, observed: &Observed) -> Vec<Drift> {
    let (fixed, drift) = corrected(state, observed);
    if let Cow::Owned(fixed) = fixed {
        *state = fixed;
    }
    drift
}

/// [`correct_endpoints`] without a copy of the state unless refresh saw something to correct
/// (a plan of 10,000 services in sync never pays for one).
/// [`corrected`], and the links [`kept_links`] finds recorded as they are.
pub fn corrected_for<'a>(
    topology: &crate::topology::Topology,
    state: &'a State,
    observed: &Observed,
) -> (Cow<'a, State>, Vec<Drift>) {
    let (mut st, mut drift) = corrected(state, observed);
    for kept in kept_links(topology, &st, observed) {
        let (key, link) = (&kept.key, &kept.link);
        drift.push(Drift {
            resource: format!("replication.{key}"),
            kind: DriftKind::LinkKept,
            before: Value::Null,
            after: json!({ "source": link.source, "host": format!("{}:{}", link.source_host, link.source_port) }),
            detail: format!(
                "service.{key} already replicates from service.{} (healthy, with nothing service.{} lacks): the link is kept as it is, not re-seeded",
                link.source, link.source
            ),
        });
        kept.record(st.to_mut());
    }
    if !role_change_corrections(topology, &st, observed).is_empty() {
        drift.extend(settle_role_changes(topology, st.to_mut(), observed));
    }
    (st, drift)
}

/// Records what refresh proves about switchovers recorded at their fencing step (see
/// [`RoleChangeFix`]), as drift. `plan` corrects its copy of the state; `apply` records it.
pub fn settle_role_changes(
    topology: &crate::topology::Topology,
    state: &mut State,
    observed: &Observed,
) -> Vec<Drift> {
    let mut drift = Vec::new();
    for (new, fix) in role_change_corrections(topology, state, observed) {
        let res = &mut state.resources;
        let Some(rec) = res.services.get_mut(&new) else {
            continue;
        };
        let Some(change) = rec.role_change.as_mut() else {
            continue;
        };
        let old = change.from.clone();
        let detail = match fix {
            RoleChangeFix::Opened => {
                change.step = crate::state::RoleChangeStep::Opened;
                // As the opening records it: the candidate's link, backup and restore go.
                res.replications.remove(&new);
                res.backups.remove(&new);
                res.restores.remove(&new);
                format!(
                    "service.{new} no longer replicates and is open for writes: the switchover from service.{old} got past its opening, which the interrupted run did not record; recorded now"
                )
            }
            RoleChangeFix::Abandoned => {
                rec.role_change = None;
                format!(
                    "the switchover of the primary service.{old} -> service.{new} was interrupted before service.{new} was opened, and the file no longer asks for it: abandoned (service.{new} still replicates from service.{old}; a fence left on service.{old} is lifted)"
                )
            }
        };
        drift.push(Drift {
            resource: format!("switchover.{new}"),
            kind: DriftKind::RoleChangeInterrupted,
            before: json!({ "primary": old }),
            after: json!({ "corrected": fix.name() }),
            detail,
        });
    }
    drift
}

/// What refresh proves about a switchover recorded at its fencing step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoleChangeFix {
    /// The candidate was promoted (its replication reset, open for writes) and the run was
    /// killed before it recorded that: the point of no return is behind it.
    Opened,
    /// Not promoted, and the file put back the roles it started from: nothing to resume.
    Abandoned,
}

impl RoleChangeFix {
    fn name(self) -> &'static str {
        match self {
            RoleChangeFix::Opened => "opened",
            RoleChangeFix::Abandoned => "abandoned",
        }
    }
}

/// Switchovers recorded at their fencing step that refresh shows elsewhere (observed beats
/// recorded): the candidate promoted already, or the switchover given up by the file.
fn role_change_corrections(
    topology: &crate::topology::Topology,
    state: &State,
    observed: &Observed,
) -> Vec<(String, RoleChangeFix)> {
    let mut out = Vec::new();
    for (new, rec) in &state.resources.services {
        let Some(c) = rec
            .role_change
            .as_ref()
            .filter(|c| c.step == crate::state::RoleChangeStep::Fencing)
        else {
            continue;
        };
        let Some(o) = observed.replication.get(new) else {
            continue;
        };
        let writable = observed.read_only.get(new) == Some(&false);
        if !o.configured && writable {
            out.push((new.clone(), RoleChangeFix::Opened));
            continue;
        }
        let follows_old = |k: &str, from: &str| {
            topology
                .services
                .get(k)
                .and_then(|s| s.replication.as_ref())
                .is_some_and(|r| r.from == from)
        };
        let old_is_root = topology
            .services
            .get(&c.from)
            .is_some_and(|s| s.replication.is_none());
        if o.configured && old_is_root && follows_old(new, &c.from) {
            out.push((new.clone(), RoleChangeFix::Abandoned));
        }
    }
    out
}

pub fn corrected<'a>(state: &'a State, observed: &Observed) -> (Cow<'a, State>, Vec<Drift>) {
    let mut st = Cow::Borrowed(state);
    let mut drift = Vec::new();
    for (key, o) in &observed.services {
        let ObservedService::Present(r) = o else {
            continue;
        };
        let Some(rec) = st.resources.services.get(key) else {
            continue;
        };
        let seen = (r.fqdn.as_ref(), r.port);
        let moved = seen.0.is_some() && (rec.fqdn.as_ref(), rec.port) != seen;
        let new_ips = !r.outbound_ips.is_empty() && rec.outbound_ips != r.outbound_ips;
        if moved {
            drift.push(Drift {
                resource: format!("service.{key}"),
                kind: DriftKind::ServiceEndpointChanged,
                before: json!({ "fqdn": rec.fqdn, "port": rec.port }),
                after: json!({ "fqdn": r.fqdn, "port": r.port }),
                detail: format!(
                    "the API reports {}:{} where the state recorded {}:{}; the API's is used",
                    r.fqdn.as_deref().unwrap_or("?"),
                    r.port.map_or("?".into(), |p| p.to_string()),
                    rec.fqdn.as_deref().unwrap_or("?"),
                    rec.port.map_or("?".into(), |p| p.to_string()),
                ),
            });
        }
        if moved || new_ips {
            let Some(rec) = st.to_mut().resources.services.get_mut(key) else {
                continue;
            };
            if moved {
                rec.fqdn = r.fqdn.clone();
                rec.port = r.port;
            }
            if new_ips {
                rec.outbound_ips = r.outbound_ips.clone();
            }
        }
    }
    // A link replicating from its source's (now corrected) endpoint records that endpoint.
    let mut relinked: Vec<(String, String, u16)> = Vec::new();
    for (replica, link) in &st.resources.replications {
        let Some(src) = st.resources.services.get(&link.source) else {
            continue;
        };
        let (Some(host), Some(port), Some(o)) = (
            src.fqdn.as_ref(),
            src.port,
            observed.replication.get(replica),
        ) else {
            continue;
        };
        let same = o.master_host.as_deref().is_some_and(|h| {
            h.trim_end_matches('.')
                .eq_ignore_ascii_case(host.trim_end_matches('.'))
        }) && o.master_port == Some(port);
        if same && (&link.source_host != host || link.source_port != port) {
            relinked.push((replica.clone(), host.clone(), port));
        }
    }
    for (replica, host, port) in relinked {
        if let Some(link) = st.to_mut().resources.replications.get_mut(&replica) {
            link.source_host = host;
            link.source_port = port;
        }
    }
    (st, drift)
}

/// Links a replica already has that the state does not record (an imported or adopted
/// replica, a lost record): its server replicates from the topology's source at that source's
/// endpoint, both threads running without an error, and it has no transaction the source
/// lacks. Such a link is kept as it is (recorded, healthy) instead of re-seeding the replica.
/// Only with the source's and the replica's GTIDs read; anything less proves nothing.
/// The entries on the source's allowlist that admit the replica's outbound IPs come with it
/// (the link needs them; they are skyplan's from now on, as if it had granted them).
///
/// The old primary of a switchover interrupted after the candidate opened is kept the same
/// way when it follows the candidate, whatever the file says now: that is where the
/// interrupted run left it (observed beats recorded). A file put back to the old roles then
/// plans a switchover back by GTID from there, not a copy of the old primary over the
/// candidate (which would also open the old primary while the candidate still takes writes).
pub fn kept_links(
    topology: &crate::topology::Topology,
    state: &State,
    observed: &Observed,
) -> Vec<KeptLink> {
    let res = &state.resources;
    let mut out: Vec<KeptLink> = topology
        .services
        .iter()
        .filter_map(|(key, svc)| {
            let repl = svc.replication.as_ref()?;
            keep(state, observed, key, &repl.from, repl.ssl)
        })
        .collect();
    for (new, rec) in &res.services {
        let Some(c) = rec
            .role_change
            .as_ref()
            .filter(|c| c.step == crate::state::RoleChangeStep::Opened)
        else {
            continue;
        };
        let old = &c.from;
        let ssl = topology
            .services
            .get(new)
            .and_then(|s| s.replication.as_ref())
            .is_none_or(|r| r.ssl);
        if topology.services.contains_key(old)
            && topology.services.contains_key(new)
            && !out.iter().any(|k| &k.key == old)
        {
            out.extend(keep(state, observed, old, new, ssl));
        }
    }
    out
}

/// The link `key` has to `from` when [`kept_links`] keeps it: not recorded, observed pointing
/// at `from`'s endpoint and healthy, and holding nothing `from` lacks.
fn keep(state: &State, observed: &Observed, key: &str, from: &str, ssl: bool) -> Option<KeptLink> {
    let res = &state.resources;
    if res.replications.contains_key(key) || !res.services.contains_key(key) {
        return None;
    }
    let src = res.services.get(from)?;
    let (host, port, o) = (
        src.fqdn.as_ref()?,
        src.port?,
        observed.replication.get(key)?,
    );
    let from_source = o.master_host.as_deref().is_some_and(|h| {
        h.trim_end_matches('.')
            .eq_ignore_ascii_case(host.trim_end_matches('.'))
    }) && o.master_port == Some(port);
    let healthy = o.configured
        && o.io_running
        && o.sql_running
        && o.last_io_errno == 0
        && o.last_sql_errno == 0;
    let compatible = match (observed.gtids.get(key), observed.gtids.get(from)) {
        (Some(mine), Some(theirs)) => crate::gtid::repoint(mine, theirs, &[]).is_ok(),
        _ => false,
    };
    if !(from_source && healthy && compatible) {
        return None;
    }
    // The account it connects as: the link owns it from now on (never dropped as an orphan,
    // and dropped by a switchover that forgets the link). The one a run granted for this
    // replica is recorded; otherwise it is looked for among the users read on the chains'
    // roots (an interrupted switchover's grant may not have reached the root read yet).
    let name_of = |u: &str| u.split_once('@').map_or(u, |(n, _)| n).to_string();
    let user = o.master_user.as_deref().and_then(|name| {
        let recorded = res
            .replication_users
            .iter()
            .find(|(u, r)| r.replica == key && name_of(u) == name)
            .map(|(u, _)| u.clone());
        recorded.or_else(|| {
            let mut found = observed
                .replication_users
                .values()
                .flatten()
                .filter(|u| name_of(u) == name);
            match (found.next(), found.next()) {
                (Some(one), None) => Some(one.clone()),
                _ => None,
            }
        })
    });
    let ips: Vec<String> = res.services[key]
        .outbound_ips
        .iter()
        .map(|ip| crate::plan::diff::cidr32(ip))
        .collect();
    let on_source = observed.allowlists.get(from);
    let grant = (!ips.is_empty()
        && !res.allowlists.contains_key(key)
        && on_source.is_some_and(|present| {
            ips.iter()
                .all(|e| crate::plan::diff::contains_cidr(present, e))
        }))
    .then(|| crate::state::AllowlistRecord {
        on: from.to_string(),
        entries: ips,
        earlier: Vec::new(),
    });
    Some(KeptLink {
        key: key.to_string(),
        grant,
        link: crate::state::ReplicationRecord {
            source: from.to_string(),
            source_host: host.clone(),
            source_port: port,
            gtid_position: None,
            ssl,
            replication_user: user,
            healthy: true,
            wired_at: None,
        },
    })
}

/// A link [`kept_links`] found: the replica, its link, and the grant on its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLink {
    pub key: String,
    pub link: crate::state::ReplicationRecord,
    pub grant: Option<crate::state::AllowlistRecord>,
}

impl KeptLink {
    /// Record it in `state`, as a wiring step records the link it made: a primary replaced
    /// by a failover that follows is an ordinary replica now, and the old primary of an
    /// interrupted switchover that follows the new one has finished it.
    pub fn record(self, state: &mut State) {
        let res = &mut state.resources;
        if let Some(g) = self.grant {
            res.allowlists.insert(self.key.clone(), g);
        }
        if let Some(r) = res.services.get_mut(&self.key) {
            r.failed_over_to = None;
        }
        if let Some(new) = res.services.get_mut(&self.link.source) {
            if new.role_change.as_ref().is_some_and(|c| c.from == self.key) {
                new.role_change = None;
            }
        }
        res.replications.insert(self.key, self.link);
    }
}

/// MariaDB's "could not find GTID state requested by slave in any binlog files".
pub const ER_MASTER_FATAL_ERROR_READING_BINLOG: u32 = 1236;

/// What the observed replication status of one replica means for the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationVerdict {
    /// What drifted, if anything.
    pub drift: Option<Drift>,
    /// Repair the channel in place (restart it, or configure it again from the replica's own
    /// position), with the reason shown beside the action.
    pub repair: Option<(WireMode, String)>,
    /// Repairing in place cannot work: re-seed the replica by backup and restore (wipes it).
    pub reseed: Option<String>,
    /// Worth saying, not drift (a reconnect in progress or just done).
    pub warning: Option<String>,
}

impl ReplicationVerdict {
    /// Replicating as recorded (lag alone does not make a channel unhealthy).
    pub fn healthy(&self) -> bool {
        self.repair.is_none() && self.reseed.is_none()
    }
}

/// The channel as skyplan set it up: both threads running, from the recorded source.
fn expected(link: &ReplicationRecord) -> Value {
    json!({
        "source": format!("{}:{}", link.source_host, link.source_port),
        "io_running": true,
        "sql_running": true,
    })
}

/// The same fields as [`expected`], as observed, plus the errors the server reports.
fn seen(o: &ObservedReplication) -> Value {
    let mut v = json!({
        "source": match (&o.master_host, o.master_port) {
            (Some(h), Some(p)) => json!(format!("{h}:{p}")),
            (Some(h), None) => json!(h),
            _ => Value::Null,
        },
        "io_running": o.io_running,
        "sql_running": o.sql_running,
    });
    if o.last_io_errno != 0 {
        v["last_io_error"] = json!(format!("{}: {}", o.last_io_errno, o.last_io_error));
    }
    if o.last_sql_errno != 0 {
        v["last_sql_error"] = json!(format!("{}: {}", o.last_sql_errno, o.last_sql_error));
    }
    v
}

/// Classify a replica's observed replication against the link recorded in state.
///
/// `source_endpoint` is where the source is now (from state); `max_lag_seconds` is the
/// topology's threshold. Order matters: a channel pointing elsewhere or unable to continue
/// (1236, SQL errors) needs a re-seed, which also covers stopped threads.
pub fn classify_replication(
    replica: &str,
    o: &ObservedReplication,
    link: &ReplicationRecord,
    source_endpoint: Option<(&str, u16)>,
    repl: &crate::topology::Replication,
    now: Option<time::OffsetDateTime>,
) -> ReplicationVerdict {
    let max_lag_seconds = repl.max_lag_seconds;
    let resource = format!("replication.{replica}");
    let drift = |kind: DriftKind, detail: String| Drift {
        resource: resource.clone(),
        kind,
        before: expected(link),
        after: seen(o),
        detail,
    };
    let mut v = ReplicationVerdict::default();
    if !o.configured {
        v.drift = Some(drift(
            DriftKind::ReplicationMissing,
            "no replication configured on the replica (reset outside skyplan)".into(),
        ));
        v.repair = Some((
            WireMode::Rewire,
            "replication was reset outside skyplan".into(),
        ));
        return v;
    }
    if let Some(detail) = elsewhere(o, link, source_endpoint) {
        v.drift = Some(drift(DriftKind::ReplicationRepointed, detail));
        v.reseed = Some("the replica points at another primary; re-seed it from the source".into());
        return v;
    }
    if o.last_io_errno == ER_MASTER_FATAL_ERROR_READING_BINLOG {
        v.drift = Some(drift(
            DriftKind::ReplicationBroken,
            format!(
                "IO error {}: {} (its GTID position is gone from the source's binlogs)",
                o.last_io_errno, o.last_io_error
            ),
        ));
        v.reseed = Some("the replica's GTID position is gone from the source's binlogs".into());
        return v;
    }
    // A SQL error the thread got past (it runs again) is history, not a broken replica.
    if o.last_sql_errno != 0 && !o.sql_running {
        v.drift = Some(drift(
            DriftKind::ReplicationBroken,
            format!("SQL error {}: {}", o.last_sql_errno, o.last_sql_error),
        ));
        // The replica's data no longer matches the source's; skipping the event would hide
        // that, so the only safe repair is a fresh copy.
        v.reseed = Some(format!(
            "replication broke on SQL error {}: the replica's data differs from the source's",
            o.last_sql_errno
        ));
        return v;
    }
    if let Some(after) = o.reconnected_after {
        v.warning = Some(format!(
            "replication.{replica} was reconnecting to its source and reconnected after {after} s while refresh waited"
        ));
    }
    if let Some(w) = reconnecting(replica, o, link, repl, now) {
        v.warning = Some(w);
        return v;
    }
    if !o.io_running || !o.sql_running {
        let broken = o.last_io_errno != 0;
        v.drift = Some(if broken {
            drift(DriftKind::ReplicationBroken, io_failure(o, repl))
        } else {
            drift(
                DriftKind::ReplicationStopped,
                format!(
                    "replication threads stopped (IO {}, SQL {})",
                    running(o.io_running),
                    running(o.sql_running)
                ),
            )
        });
        v.repair = Some((
            WireMode::Restart,
            if broken {
                format!("the IO thread stopped on error {}", o.last_io_errno)
            } else {
                "replication stopped outside skyplan".into()
            },
        ));
        return v;
    }
    if let Some(lag) = o.seconds_behind_master.filter(|lag| *lag > max_lag_seconds) {
        v.drift = Some(Drift {
            resource,
            kind: DriftKind::ReplicationLagging,
            before: json!({ "max_lag_seconds": max_lag_seconds }),
            after: json!({ "seconds_behind_master": lag }),
            detail: format!("{lag} s behind the source (threshold {max_lag_seconds} s)"),
        });
    }
    v
}

/// Where the replica replicates from, when that is not its source's endpoint (or the source
/// moved since the link was recorded). Host names compare as DNS does: case-insensitively, a
/// trailing dot meaning nothing.
fn elsewhere(
    o: &ObservedReplication,
    link: &ReplicationRecord,
    source_endpoint: Option<(&str, u16)>,
) -> Option<String> {
    let same_host = |a: &str, b: &str| {
        a.trim_end_matches('.')
            .eq_ignore_ascii_case(b.trim_end_matches('.'))
    };
    let host_ok = o
        .master_host
        .as_deref()
        .is_some_and(|h| same_host(h, &link.source_host))
        && o.master_port == Some(link.source_port);
    let src_moved = source_endpoint
        .is_some_and(|(h, p)| !same_host(h, &link.source_host) || p != link.source_port);
    if host_ok && !src_moved {
        return None;
    }
    let (now_host, now_port) = source_endpoint.unwrap_or((&link.source_host, link.source_port));
    Some(format!(
        "replicating from {}:{} instead of {now_host}:{now_port}",
        o.master_host.as_deref().unwrap_or("?"),
        o.master_port
            .map(|p| p.to_string())
            .unwrap_or_else(|| "?".into()),
    ))
}

fn retry(r: &crate::observed::Reconnecting) -> String {
    r.retry_seconds
        .map(|s| format!("MariaDB retries every {s} s"))
        .unwrap_or_else(|| "MariaDB retries on its own".into())
}

/// Reconnecting after a network error, with its source (or itself) answering and *re*started
/// within the grace period (it started after the link was wired, less than the grace ago):
/// MariaDB is retrying; not drift yet, but a warning. A source merely young (created with
/// the link) is no excuse.
fn reconnecting(
    replica: &str,
    o: &ObservedReplication,
    link: &ReplicationRecord,
    repl: &crate::topology::Replication,
    now: Option<time::OffsetDateTime>,
) -> Option<String> {
    let link_age = link
        .wired_at
        .as_deref()
        .and_then(|w| {
            time::OffsetDateTime::parse(w, &time::format_description::well_known::Rfc3339).ok()
        })
        .zip(now)
        .map(|(wired, now)| (now - wired).whole_seconds());
    let r = o.reconnecting.as_ref()?;
    if !(o.sql_running && crate::observed::is_restart_io_error(o.last_io_errno)) {
        return None;
    }
    let grace = repl.reconnect_grace_seconds;
    let restarted = |up: &u64| {
        *up < grace && link_age.is_some_and(|age| i64::try_from(*up).is_ok_and(|u| u < age))
    };
    let (who, up) = r
        .source_up_seconds
        .filter(restarted)
        .map(|up| ("its source", up))
        .or_else(|| r.replica_up_seconds.filter(restarted).map(|up| ("it", up)))?;
    Some(format!(
        "replication.{replica} is reconnecting (IO error {}: {}); {who} started {up} s ago and {}: not drift until it has tried for reconnect_grace ({grace} s)",
        o.last_io_errno,
        o.last_io_error,
        retry(r)
    ))
}

/// What a broken IO thread says, with the reconnect's story when it was retrying.
fn io_failure(o: &ObservedReplication, repl: &crate::topology::Replication) -> String {
    match &o.reconnecting {
        Some(r) => format!(
            "IO error {}: {} (still failing after MariaDB's next retry; {}; its source answers skyplan{})",
            o.last_io_errno,
            o.last_io_error,
            retry(r),
            r.source_up_seconds
                .map(|up| if up < repl.reconnect_grace_seconds {
                    format!(" and has been up {up} s, since before the link was wired: not a restart")
                } else {
                    format!(" and has been up {up} s, longer than reconnect_grace ({} s)", repl.reconnect_grace_seconds)
                })
                .unwrap_or_default()
        ),
        None => format!("IO error {}: {}", o.last_io_errno, o.last_io_error),
    }
}

fn running(b: bool) -> &'static str {
    if b {
        "running"
    } else {
        "not running"
    }
}

#[cfg(test)]
mod kept_tests {
    use super::*;
    use crate::state::{RoleChange, RoleChangeStep};

    /// The old primary of a switchover killed after it was pointed at the new one, found
    /// replicating from it: recording the kept link finishes the switchover (and a rejoin
    /// after a failover), as the wiring step would have.
    #[test]
    fn a_kept_link_finishes_an_interrupted_switchover() {
        let mut s = crate::state::edit::tests::guide();
        let mut link = s.resources.replications.remove("secondary").unwrap();
        link.source = "secondary".into();
        let services = &mut s.resources.services;
        services.get_mut("secondary").unwrap().role_change = Some(RoleChange {
            from: "primary".into(),
            step: RoleChangeStep::Opened,
            started_at: "2026-12-07T00:00:00Z".into(),
        });
        services.get_mut("primary").unwrap().failed_over_to = Some("secondary".into());
        KeptLink {
            key: "primary".into(),
            link,
            grant: None,
        }
        .record(&mut s);
        let services = &s.resources.services;
        assert_eq!(services["secondary"].role_change, None);
        assert_eq!(services["primary"].failed_over_to, None);
        assert_eq!(s.resources.replications["primary"].source, "secondary");
    }
}
