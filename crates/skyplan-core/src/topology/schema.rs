//! The topology file's JSON Schema (`schemas/topology.schema.json`), derived from the types the
//! file is parsed into (`raw`). A raw value is kept as it was written (a string, TOML's `i64`)
//! so that validation can point at it; these functions say what the file may hold there,
//! from the same lists and rules validation checks against.

use schemars::{json_schema, Schema, SchemaGenerator};

use super::raw::{RawService, RawTopology};
use super::rules;

/// The name of an environment variable (`api_key_env`, `password_env`).
pub(super) const ENV_NAME: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// A service key (`[services.<key>]`, `replication.from`).
pub(super) use rules::SERVICE_KEY;

/// `schemas/topology.schema.json`, made by `generator`.
pub(crate) fn file_schema(generator: SchemaGenerator) -> Schema {
    crate::schemas::document::<RawTopology>(generator, None, "skyplan topology")
}

pub(super) fn service_type(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "enum": rules::SERVICE_TYPES })
}

pub(super) fn provider(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "enum": rules::PROVIDERS })
}

pub(super) fn architecture(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "enum": rules::ARCHITECTURES })
}

pub(super) fn volume_type(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "enum": rules::VOLUME_TYPES })
}

/// Every size [`rules::storage`] accepts.
pub(super) fn storage(_: &mut SchemaGenerator) -> Schema {
    let sizes: Vec<i64> = (100..=10_000)
        .step_by(100)
        .filter(|gb| rules::storage(*gb).is_ok())
        .collect();
    json_schema!({ "type": "integer", "enum": sizes })
}

/// IPv4 addresses and netblocks (`rules::cidr`; host bits and `/0` are for validation to
/// explain).
pub(super) fn allow_list(_: &mut SchemaGenerator) -> Schema {
    const OCTET: &str = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    let pattern = format!(r"^({OCTET}\.){{3}}{OCTET}(/(3[0-2]|[12]?[0-9]))?$");
    json_schema!({ "type": "array", "items": { "type": "string", "pattern": pattern } })
}

/// Server variables: TOML's scalars, by a name as [`rules::config_variable`] checks it,
/// never the one skyplan sets by role.
pub(super) fn config(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "type": ["integer", "boolean", "number", "string"] },
        "propertyNames": {
            "pattern": "^[a-z0-9_]{1,64}$",
            "not": { "const": rules::ROLE_VARIABLE }
        }
    })
}

/// The seeds `Seed::parse` reads.
pub(super) fn seed(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            { "enum": ["new-backup", "latest-backup", "none"] },
            { "type": "string", "pattern": "^backup:.+$" }
        ]
    })
}

/// Seconds, or a duration as `rules::reconnect_grace` reads it: at most a day.
pub(super) fn reconnect_grace(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "oneOf": [
            { "type": "integer", "minimum": 0, "maximum": 86_400 },
            { "type": "string", "pattern": "^[0-9]+(s|m|h)?$" }
        ]
    })
}

/// Seconds, or a duration as `rules::lost_after` reads it.
pub(super) fn lost_after(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["string", "integer"], "pattern": "^[0-9]+[smh]?$" })
}

/// `local`, or an http(s) URL with a host.
pub(super) fn endpoint(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            { "const": super::model::LOCAL_ENDPOINT },
            { "type": "string", "pattern": r"^https?://[^\s/?#@]+([/?#]\S*)?$" }
        ]
    })
}

/// `[services.<key>]` tables by key: at least one.
pub(super) fn services(generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "minProperties": 1,
        "propertyNames": { "pattern": SERVICE_KEY },
        "additionalProperties": generator.subschema_for::<RawService>()
    })
}
