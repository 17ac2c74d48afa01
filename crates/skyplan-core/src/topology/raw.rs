//! The topology file as written: every value still carries its byte span so that later
//! stages (defaults, validation) can point at it. Only `parse` builds these.

use std::collections::BTreeMap;
use std::ops::Range;

use schemars::JsonSchema;

use super::schema;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Located<T> {
    pub value: T,
    pub span: Range<usize>,
}

impl<T> Located<T> {
    pub(crate) fn new(value: T, span: Range<usize>) -> Located<T> {
        Located { value, span }
    }
}

/// In the file a located value is the value: its span is where it was read.
impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<T>()
    }
}

/// Keys allowed in a service table and in `[defaults]` (besides `replication`, service only).
pub(super) const SERVICE_FIELDS: &[&str] = &[
    "name",
    "service_type",
    "topology",
    "provider",
    "region",
    "architecture",
    "size",
    "storage",
    "nodes",
    "version",
    "ssl_enabled",
    "volume_type",
    "volume_iops",
    "allow_list",
    "tags",
    "deletion_protection",
    "is_active",
    "allow_public",
    "config",
];
pub(super) const TOP_LEVEL_KEYS: &[&str] =
    &["provider", "defaults", "services", "state", "backups"];
pub(super) const PROVIDER_KEYS: &[&str] = &["endpoint", "api_key_env", "max_retries", "lost_after"];
pub(super) const STATE_KEYS: &[&str] = &["path", "backend", "password_env"];
pub(super) const REPLICATION_KEYS: &[&str] =
    &["from", "seed", "ssl", "max_lag_seconds", "reconnect_grace"];

/// The fields of a service, in `[defaults]` or `[services.<key>]`.
//
// Every field may be left out (`default`: the schema cannot tell a field `schema_with`
// describes from a required one otherwise).
// Integers stay `i64` (TOML's integer) until validation checks their range. Also the topology
// file's schema (`schema`): the doc comments of the fields are the schema's descriptions, the
// attributes what the schema checks of their values.
#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[schemars(rename = "fields", deny_unknown_fields, default)]
pub(crate) struct RawFields {
    /// Name of the SkySQL service: a lowercase letter, then lowercase letters, digits and `-`;
    /// 2 to 24 characters; unique among the services of this file.
    #[schemars(
        pattern(r"^[a-z][a-z0-9-]+$"),
        length(max = super::rules::MAX_NAME_LEN),
        extend("examples" = ["skysql-primary"])
    )]
    pub name: Option<Located<String>>,
    /// The type of service to create (default: `transactional`).
    #[schemars(
        schema_with = "schema::service_type",
        extend("default" = super::defaults::SERVICE_TYPE)
    )]
    pub service_type: Option<Located<String>>,
    /// The service topology (default: `standalone`, as in the global replication guide). The
    /// API's `es-single`, `es-replica`, `sa`, `serverless-standalone` and other plain names are
    /// accepted.
    #[schemars(
        pattern(r"^[a-z0-9][a-z0-9_-]*$"),
        length(min = 1),
        extend(
            "default" = super::defaults::TOPOLOGY,
            "examples" = super::rules::KNOWN_TOPOLOGIES
        )
    )]
    pub topology: Option<Located<String>>,
    /// The cloud provider. Required (here or in [defaults]). A replica seeded from a backup
    /// must use the same provider as its source: backups restore within one cloud provider
    /// only.
    #[schemars(schema_with = "schema::provider")]
    pub provider: Option<Located<String>>,
    /// The provider's region name, e.g. `us-east4` (gcp), `us-east-1` (aws), `eastus`
    /// (azure). Required (here or in [defaults]).
    #[schemars(
        pattern(r"^[a-z0-9-]+$"),
        extend("examples" = ["us-east4", "us-west1", "europe-west1"])
    )]
    pub region: Option<Located<String>>,
    /// The hardware architecture (default: `amd64`).
    #[schemars(
        schema_with = "schema::architecture",
        extend("default" = super::defaults::ARCHITECTURE)
    )]
    pub architecture: Option<Located<String>>,
    /// The instance size, e.g. `sky-2x8`. Required (here or in [defaults]).
    #[schemars(
        pattern(r"^\S+$"),
        length(min = 1),
        extend("examples" = ["sky-2x4", "sky-2x8", "sky-4x16"])
    )]
    pub size: Option<Located<String>>,
    /// Storage in GB: 100 to 1000 in steps of 100, or 2000 to 10000 in steps of 1000. Required
    /// (here or in [defaults]). Can only grow in place.
    #[schemars(schema_with = "schema::storage")]
    pub storage: Option<Located<i64>>,
    /// Number of nodes (default: 1).
    #[schemars(
        with = "Option<u32>",
        range(min = 1, max = u32::MAX),
        extend("default" = super::defaults::NODES)
    )]
    pub nodes: Option<Located<i64>>,
    /// The server software version, e.g. `10.6.7-3-1` (default: the API's default). Changing
    /// it replaces the service.
    #[schemars(
        pattern(r"^\S+$"),
        length(min = 1),
        extend("examples" = ["10.6.7-3-1"])
    )]
    pub version: Option<Located<String>>,
    /// Whether the service requires TLS (default: true). Also the default of `replication.ssl`
    /// for its replicas.
    #[schemars(extend("default" = super::defaults::SSL_ENABLED))]
    pub ssl_enabled: Option<Located<bool>>,
    /// AWS only: the volume type.
    #[schemars(schema_with = "schema::volume_type")]
    pub volume_type: Option<Located<String>>,
    /// AWS only: the storage IOPS.
    #[schemars(with = "Option<u32>", range(min = 1, max = u32::MAX))]
    pub volume_iops: Option<Located<i64>>,
    /// IPv4 addresses and netblocks allowed to connect (a bare address means /32). A service's
    /// list replaces the one in [defaults]. skyplan adds its replicas' outbound IPs by itself.
    #[schemars(
        schema_with = "schema::allow_list",
        extend("default" = [], "examples" = [["127.0.0.1/32"]])
    )]
    pub allow_list: Option<Located<Vec<Located<String>>>>,
    /// Free-form string tags set on the service.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub tags: Option<Located<Tags>>,
    /// skyplan's own guard (default: false): refuse to delete or replace this service while
    /// true.
    #[schemars(extend("default" = super::defaults::DELETION_PROTECTION))]
    pub deletion_protection: Option<Located<bool>>,
    /// Whether the service should be running (the API's power state; default: true). A
    /// stopped service that should run is started as drift repair; false stops it once and
    /// keeps it stopped (its data is kept). A stopped service can neither replicate nor be
    /// replicated from.
    #[schemars(extend("default" = true))]
    pub is_active: Option<Located<bool>>,
    /// Allow an allow_list entry that opens the service to the whole internet (0.0.0.0/0).
    /// Without it, such an entry is an error.
    #[schemars(extend("default" = false))]
    pub allow_public: Option<Located<bool>>,
    /// MariaDB server variables by name (e.g. max_connections = 500), kept in the service's
    /// custom configuration (SkySQL's Configuration Manager) so they survive restarts. Checked
    /// at plan time against the variables the cloud accepts for the service's topology. In
    /// [defaults] they are shared; a service's own table adds to them and wins per variable.
    /// read_only is set by skyplan from each service's role.
    //
    // Each value is kept as written (integers and booleans turned into their text: `500`,
    // `ON`/`OFF`).
    #[schemars(
        schema_with = "schema::config",
        extend("examples" = [{ "max_connections": 500, "binlog_expire_logs_seconds": 604800 }])
    )]
    pub config: Option<Located<Tags>>,
}

/// `tags` entries in file order: key, located value.
pub(super) type Tags = Vec<(String, Located<String>)>;

/// Make this service a replica. skyplan seeds it, grants its outbound IPs on the source's
/// allow list and starts GTID replication.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(rename = "replication", deny_unknown_fields)]
pub(super) struct RawReplication {
    /// Span of the `[services.<key>.replication]` header (or of the `replication` key).
    #[schemars(skip)]
    pub header: Range<usize>,
    /// The key of the service to replicate from (the `<key>` of [services.<key>]). Not
    /// itself, and no cycles.
    #[schemars(required, pattern(schema::SERVICE_KEY))]
    pub from: Option<Located<String>>,
    /// How the replica gets its initial data: `new-backup` (a new full backup of the source,
    /// restored here; wipes this service's data), `latest-backup` (the source's latest full
    /// backup), `backup:<id>` (that backup), or `none` (no copy: replicate from the source's
    /// current position). Backups restore within one cloud provider only.
    #[schemars(
        default,
        schema_with = "schema::seed",
        extend("default" = super::defaults::SEED.to_string())
    )]
    pub seed: Option<Located<String>>,
    /// Replicate over TLS (default: the source's ssl_enabled).
    pub ssl: Option<Located<bool>>,
    /// Replication lag above this many seconds is reported as drift (default: 300).
    #[schemars(
        with = "Option<u64>",
        range(min = 1),
        extend("default" = super::model::DEFAULT_MAX_LAG_SECONDS)
    )]
    pub max_lag_seconds: Option<Located<i64>>,
    /// How long the replica's IO thread may keep reconnecting to its source (a source
    /// restart, a network blip; MariaDB retries every Connect_Retry seconds) before it counts
    /// as broken. Until then `plan` shows a 'reconnecting' warning that does not change the
    /// exit code. A duration ("2m", "90s", "1h") or seconds; at most a day (default: 2m).
    //
    // An integer is kept as its text.
    #[schemars(default, schema_with = "schema::reconnect_grace", extend("default" = "2m"))]
    pub reconnect_grace: Option<Located<String>>,
}

/// One SkySQL service; fields mirror the API's CreateServiceRequest. name, provider, region,
/// size and storage are required, here or in [defaults].
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(rename = "service", deny_unknown_fields)]
pub(super) struct RawService {
    /// The `<key>` of `[services.<key>]`, located at the key itself.
    #[schemars(skip)]
    pub key: Located<String>,
    /// Span of the table header (or of the key, for inline and dotted tables).
    #[schemars(skip)]
    pub header: Range<usize>,
    #[schemars(flatten)]
    pub fields: RawFields,
    pub replication: Option<RawReplication>,
    /// Pin the SkySQL service id to adopt under this key (found by id, not by name); plan
    /// refuses when it does not exist or the state records another id.
    #[schemars(length(min = 1))]
    pub id: Option<Located<String>>,
}

/// Where the SkySQL API is.
#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[schemars(rename = "provider", deny_unknown_fields, default)]
pub(super) struct RawProvider {
    /// `local` for the embedded SkySQL emulator (no account needed), or the API's http(s) URL,
    /// e.g. `https://api.skysql.com`.
    #[schemars(
        schema_with = "schema::endpoint",
        extend("default" = super::model::LOCAL_ENDPOINT)
    )]
    pub endpoint: Option<Located<String>>,
    /// The NAME of the environment variable that holds the API key. The key itself never goes
    /// in this file.
    #[schemars(pattern(schema::ENV_NAME), extend("default" = "API_KEY"))]
    pub api_key_env: Option<Located<String>>,
    /// How often a failed API call is retried (transport errors, 429, 5xx, "pending state"),
    /// with exponential backoff and jitter. 0 = fail at the first error. Default: 7.
    #[schemars(with = "Option<u32>", range(max = super::rules::MAX_RETRIES))]
    pub max_retries: Option<Located<i64>>,
    /// The most time the SkySQL API may take to answer for one service, retries included,
    /// before plan and apply count that service as lost (its region down): "20s", "1m" or
    /// seconds, between 1 s and an hour. Default: 20s.
    //
    // An integer is kept as its text.
    #[schemars(schema_with = "schema::lost_after", extend("default" = "20s"))]
    pub lost_after: Option<Located<String>>,
}

/// Where skyplan keeps its state (default: state/<topology file stem>.state.json). Set `path`
/// or `backend`, not both.
#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[schemars(rename = "state", deny_unknown_fields)]
pub(super) struct RawState {
    /// A local state file path.
    #[schemars(length(min = 1))]
    pub path: Option<Located<String>>,
    /// A shared state backend URL, e.g. `mysql://skyplan@db.example.com:3306/skyplan`, without
    /// a password.
    #[schemars(
        pattern(r"^[a-z][a-z0-9+.-]*://[^\s/?#]+"),
        extend("examples" = ["mysql://skyplan@db.example.com:3306/skyplan"])
    )]
    pub backend: Option<Located<String>>,
    /// The NAME of the environment variable holding the backend's password.
    #[schemars(pattern(schema::ENV_NAME))]
    pub password_env: Option<Located<String>>,
}

/// A skyplan topology file: the SkySQL services you want and which one replicates from which.
/// Validated in full by `skyplan validate`, which also checks what a schema cannot (required
/// fields after [defaults] are merged, unique names, replication sources, cycles, providers of
/// backup seeds).
#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(super) struct RawTopology {
    #[schemars(default)]
    pub provider: RawProvider,
    #[schemars(default)]
    pub state: RawState,
    /// Service fields merged into every [services.<key>] that does not set them itself.
    #[schemars(default)]
    pub defaults: RawFields,
    /// The services, by key: [services.primary] is addressed as `service.primary` in plans.
    //
    // In file order.
    #[schemars(schema_with = "schema::services")]
    pub services: Vec<RawService>,
    /// Where `services` is, if anywhere (the place to report "no services").
    #[schemars(skip)]
    pub services_span: Option<Range<usize>>,
    /// Entries under `services`, valid or not: "no services" is only said when there are none
    /// (a malformed entry has its own error already).
    #[schemars(skip)]
    pub services_declared: usize,
}

/// Where `field` (a service field's TOML key) is written in `fields`, if it is.
pub(super) fn span_of(fields: &RawFields, field: &str) -> Option<Range<usize>> {
    let s = |v: &Option<Located<String>>| v.as_ref().map(|l| l.span.clone());
    let i = |v: &Option<Located<i64>>| v.as_ref().map(|l| l.span.clone());
    match field {
        "name" => s(&fields.name),
        "service_type" => s(&fields.service_type),
        "topology" => s(&fields.topology),
        "provider" => s(&fields.provider),
        "region" => s(&fields.region),
        "architecture" => s(&fields.architecture),
        "size" => s(&fields.size),
        "version" => s(&fields.version),
        "volume_type" => s(&fields.volume_type),
        "nodes" => i(&fields.nodes),
        "storage" => i(&fields.storage),
        "config" => fields.config.as_ref().map(|c| c.span.clone()),
        _ => field.strip_prefix("config.").and_then(|name| {
            let config = fields.config.as_ref()?;
            config
                .value
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.span.clone())
        }),
    }
}
