//! The resolved topology: what the user asked for, after defaults are merged and validation
//! passed. Everything downstream (diff, plan, apply) works on these types only, never on TOML.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Endpoint value that selects the embedded emulator.
pub const LOCAL_ENDPOINT: &str = "local";

/// The topology as skyplan resolved it: the file's services with `[defaults]` merged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Topology {
    /// The file it was read from (used for the default state path and in messages).
    pub source: PathBuf,
    pub provider: ProviderConfig,
    pub state: StateConfig,
    /// Services by key (the `<key>` of `[services.<key>]`).
    // A BTreeMap keeps output deterministic.
    pub services: BTreeMap<String, Service>,
}

/// Where the SkySQL API is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProviderConfig {
    /// `"local"` or an https URL such as `https://api.skysql.com`.
    pub endpoint: String,
    /// Name of the environment variable holding the API key (never the key itself).
    pub api_key_env: String,
    /// Retries of a failed API call (transport errors, 429, 5xx, "pending state"); absent:
    /// the client's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// `lost_after`, in seconds: the most time the API may take to answer for one service
    /// (retries included) before that service counts as lost; absent: 20 s.
    // 20 s is [`DEFAULT_LOST_AFTER_SECONDS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_after_seconds: Option<u64>,
}

/// A region that hangs is decided within this, not within retries × timeout.
pub const DEFAULT_LOST_AFTER_SECONDS: u64 = 20;

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            endpoint: LOCAL_ENDPOINT.into(),
            api_key_env: "API_KEY".into(),
            max_retries: None,
            lost_after_seconds: None,
        }
    }
}

impl ProviderConfig {
    pub fn is_local(&self) -> bool {
        self.endpoint == LOCAL_ENDPOINT
    }

    /// See [`ProviderConfig::lost_after_seconds`].
    pub fn lost_after(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.lost_after_seconds
                .unwrap_or(DEFAULT_LOST_AFTER_SECONDS),
        )
    }
}

/// Where the state is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StateConfig {
    /// Explicit local state file path (relative paths are relative to the working directory).
    pub path: Option<PathBuf>,
    /// Backend URL, e.g. `mysql://skyplan@db.example.com:3306/skyplan`.
    pub backend: Option<String>,
    /// Env var holding the backend password.
    pub password_env: Option<String>,
}

/// One `[services.<key>]` entry with `[defaults]` merged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Service {
    pub key: String,
    pub spec: ServiceSpec,
    pub replication: Option<Replication>,
    /// Refuse to delete/replace this service unless the topology turns it off.
    #[serde(default)]
    pub deletion_protection: bool,
    /// Whether the service should be running (`is_active`, the API's power state; default
    /// true). A stopped service that should run is started as drift repair; one that should
    /// not is stopped, and left stopped.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub is_active: bool,
    /// A pinned SkySQL service id (`id = "…"`): the service to adopt under this key, found by
    /// id rather than by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `[services.<key>.config]`: server variables, by name, as written (booleans as
    /// `ON`/`OFF`). Kept in the service's custom configuration (SkySQL's Configuration
    /// Manager), so they survive restarts; `read_only` is not among them: skyplan sets it by
    /// role.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

impl Service {
    pub fn address(&self) -> String {
        format!("service.{}", self.key)
    }
}

/// The fields of `v1.CreateServiceRequest` that skyplan manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ServiceSpec {
    #[schemars(pattern(r"^[a-z][a-z0-9-]+$"), length(max = super::rules::MAX_NAME_LEN))]
    pub name: String,
    pub service_type: String,
    pub topology: String,
    pub provider: String,
    pub region: String,
    pub architecture: String,
    pub size: String,
    /// GB.
    pub storage: u32,
    pub nodes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub ssl_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_iops: Option<u32>,
    /// CIDRs the user lists (normalised, e.g. `10.0.0.1/32`).
    #[serde(default)]
    pub allow_list: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[cfg(test)]
impl ServiceSpec {
    /// A small gcp standalone spec named `name`, for unit tests.
    pub(crate) fn for_test(name: &str) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            service_type: "transactional".into(),
            topology: "standalone".into(),
            provider: "gcp".into(),
            region: "us-east4".into(),
            architecture: "amd64".into(),
            size: "sky-2x8".into(),
            storage: 100,
            nodes: 1,
            version: None,
            ssl_enabled: true,
            volume_type: None,
            volume_iops: None,
            allow_list: vec![],
            tags: Default::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Replication {
    /// Key of the source service.
    pub from: String,
    pub seed: Seed,
    /// Replicate over TLS (default: the source's ssl_enabled).
    pub ssl: bool,
    /// Lag above this is drift.
    pub max_lag_seconds: u64,
    /// How long an IO thread may keep reconnecting (a source restart, a network blip) before
    /// it counts as broken: until then a warning, not drift.
    #[serde(default = "default_reconnect_grace")]
    pub reconnect_grace_seconds: u64,
}

pub const DEFAULT_MAX_LAG_SECONDS: u64 = 300;
pub const DEFAULT_RECONNECT_GRACE_SECONDS: u64 = 120;

fn default_reconnect_grace() -> u64 {
    DEFAULT_RECONNECT_GRACE_SECONDS
}

/// How the replica is seeded: "new-backup", "latest-backup", "none", or {"backup": id}.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Seed {
    /// Take a new full backup of the source and restore it.
    NewBackup,
    /// Use the source's latest succeeded full backup (must be younger than binlog retention).
    LatestBackup,
    /// Use this backup id.
    Backup(String),
    /// No data copy: replicate from the source's GTID position as found (empty replica only).
    None,
}

impl std::fmt::Display for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seed::NewBackup => f.write_str("new-backup"),
            Seed::LatestBackup => f.write_str("latest-backup"),
            Seed::Backup(id) => write!(f, "backup:{id}"),
            Seed::None => f.write_str("none"),
        }
    }
}

impl Seed {
    pub fn parse(s: &str) -> Option<Seed> {
        match s {
            "new-backup" => Some(Seed::NewBackup),
            "latest-backup" => Some(Seed::LatestBackup),
            "none" => Some(Seed::None),
            _ => s
                .strip_prefix("backup:")
                .filter(|id| !id.is_empty())
                .map(|id| Seed::Backup(id.to_string())),
        }
    }
    pub fn uses_backup(&self) -> bool {
        !matches!(self, Seed::None)
    }
}

impl Topology {
    /// Services that replicate from `key`.
    pub fn replicas_of<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Service> + 'a {
        self.services
            .values()
            .filter(move |s| s.replication.as_ref().is_some_and(|r| r.from == key))
    }
}
