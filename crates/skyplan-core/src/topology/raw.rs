//! The topology file as written: every value still carries its byte span so that later
//! stages (defaults, validation) can point at it. Only `parse` builds these.

use std::ops::Range;

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

/// The service fields, as in `[defaults]` or `[services.<key>]`. Integers stay `i64` (TOML's
/// integer) until validation checks their range.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawFields {
    pub name: Option<Located<String>>,
    pub service_type: Option<Located<String>>,
    pub topology: Option<Located<String>>,
    pub provider: Option<Located<String>>,
    pub region: Option<Located<String>>,
    pub architecture: Option<Located<String>>,
    pub size: Option<Located<String>>,
    pub storage: Option<Located<i64>>,
    pub nodes: Option<Located<i64>>,
    pub version: Option<Located<String>>,
    pub ssl_enabled: Option<Located<bool>>,
    pub volume_type: Option<Located<String>>,
    pub volume_iops: Option<Located<i64>>,
    pub allow_list: Option<Located<Vec<Located<String>>>>,
    pub tags: Option<Located<Tags>>,
    pub deletion_protection: Option<Located<bool>>,
    /// Whether the service should be running (the API's power state); false keeps it stopped.
    pub is_active: Option<Located<bool>>,
    /// Whether `allow_list` may open the service to the whole internet (`0.0.0.0/0`).
    pub allow_public: Option<Located<bool>>,
    /// `[services.<key>.config]`: server variables by name, each value as written (integers
    /// and booleans turned into their text: `500`, `ON`/`OFF`).
    pub config: Option<Located<Tags>>,
}

/// `tags` entries in file order: key, located value.
pub(super) type Tags = Vec<(String, Located<String>)>;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawReplication {
    /// Span of the `[services.<key>.replication]` header (or of the `replication` key).
    pub header: Range<usize>,
    pub from: Option<Located<String>>,
    pub seed: Option<Located<String>>,
    pub ssl: Option<Located<bool>>,
    pub max_lag_seconds: Option<Located<i64>>,
    /// `"2m"`, `"90s"`, or an integer number of seconds (kept as its text).
    pub reconnect_grace: Option<Located<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawService {
    /// The `<key>` of `[services.<key>]`, located at the key itself.
    pub key: Located<String>,
    /// Span of the table header (or of the key, for inline and dotted tables).
    pub header: Range<usize>,
    pub fields: RawFields,
    pub replication: Option<RawReplication>,
    /// `id = "…"`: a pinned service id (service tables only).
    pub id: Option<Located<String>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct RawProvider {
    pub endpoint: Option<Located<String>>,
    pub api_key_env: Option<Located<String>>,
    pub max_retries: Option<Located<i64>>,
    pub lost_after: Option<Located<String>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct RawState {
    pub path: Option<Located<String>>,
    pub backend: Option<Located<String>>,
    pub password_env: Option<Located<String>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct RawTopology {
    pub provider: RawProvider,
    pub state: RawState,
    pub defaults: RawFields,
    /// In file order.
    pub services: Vec<RawService>,
    /// Where `services` is, if anywhere (the place to report "no services").
    pub services_span: Option<Range<usize>>,
    /// Entries under `services`, valid or not: "no services" is only said when there are none
    /// (a malformed entry has its own error already).
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
