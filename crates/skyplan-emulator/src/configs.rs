//! The Configuration Manager's catalog: the server variables a custom configuration may set
//! (`GET /provisioning/v1/topologies/{topology}/configs`), and the check of a value against its
//! variable before it is stored (and later written into the service's my.cnf).
//!
//! The list is the same for every transactional topology and release the catalog offers: a
//! static table of real MariaDB server variables with their documented types, ranges and
//! defaults (`default_value` is the server's own default, as a SkySQL service starts with; the
//! emulator's small-footprint my.cnf differs for a few, e.g. `max_connections`). The cloud
//! manages a service's replication identity and network, so those are listed `readonly`.
//!
//! Values are stored normalised, so what GET returns is what my.cnf gets: integers in plain
//! decimal (sizes keep their K/M/G/T suffix, upper case), booleans `ON`/`OFF`, enumerations in
//! the catalog's spelling. Every value that passes is made only of digits, one `.`, one suffix
//! letter, or a word of the catalog, so it can never break my.cnf.

use skyplan_api::types::{ConfigKey, ConfigKeyComponent};

use super::store::{ServiceRecord, Store};

/// Every variable is the server's (`component: server`, my.cnf section `[mysqld]`).
const SECTION: &str = "mysqld";

/// What a variable accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// An integer in `min..=max`; with `size`, also `<n>K|M|G|T` (×1024ⁿ), as my.cnf reads it.
    Int { min: u64, max: u64, size: bool },
    /// A decimal number (`10`, `0.5`) in `min..=max`.
    Decimal { min: u64, max: u64 },
    /// `ON`/`OFF`; `1`/`0`/`TRUE`/`FALSE` are accepted too (case-insensitively), as the server
    /// accepts them.
    Bool,
    /// One of a list, case-insensitively.
    Enum(&'static [&'static str]),
}

/// Which MariaDB Knowledge Base page documents a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Doc {
    Server,
    Innodb,
    Replication,
    Gtid,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Variable {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    /// Takes effect only when the server restarts (not settable with SET GLOBAL).
    pub requires_restart: bool,
    /// Managed by the cloud: listed, never settable.
    pub readonly: bool,
    doc: Doc,
}

const fn var(name: &'static str, kind: Kind, default: &'static str, doc: Doc) -> Variable {
    Variable {
        name,
        kind,
        default,
        requires_restart: false,
        readonly: false,
        doc,
    }
}

const fn restart(v: Variable) -> Variable {
    Variable {
        requires_restart: true,
        ..v
    }
}

const fn managed(v: Variable) -> Variable {
    Variable {
        readonly: true,
        ..v
    }
}

const fn int(min: u64, max: u64) -> Kind {
    Kind::Int {
        min,
        max,
        size: false,
    }
}

const fn size(min: u64, max: u64) -> Kind {
    Kind::Int {
        min,
        max,
        size: true,
    }
}

const U32_MAX: u64 = 4_294_967_295;
const ONE_YEAR: u64 = 31_536_000;
const CHARSETS: &[&str] = &[
    "ascii", "binary", "cp1250", "cp1251", "latin1", "latin2", "utf8mb3", "utf8mb4",
];

/// In name order (the listing's order; a test holds it).
const VARIABLES: &[Variable] = &[
    var(
        "binlog_expire_logs_seconds",
        int(0, 8_553_600),
        "0",
        Doc::Replication,
    ),
    var(
        "character_set_server",
        Kind::Enum(CHARSETS),
        "latin1",
        Doc::Server,
    ),
    // DISABLED can only be set at startup, so the whole variable is a restart here.
    restart(var(
        "event_scheduler",
        Kind::Enum(&["ON", "OFF", "DISABLED"]),
        "OFF",
        Doc::Server,
    )),
    managed(var("gtid_domain_id", int(0, U32_MAX), "0", Doc::Gtid)),
    restart(var(
        "innodb_buffer_pool_size",
        size(2_097_152, 9_223_372_036_854_775_807),
        "134217728",
        Doc::Innodb,
    )),
    var(
        "innodb_flush_log_at_trx_commit",
        Kind::Enum(&["0", "1", "2"]),
        "1",
        Doc::Innodb,
    ),
    var(
        "innodb_lock_wait_timeout",
        int(0, 1_073_741_824),
        "50",
        Doc::Innodb,
    ),
    restart(var(
        "innodb_log_file_size",
        size(1_048_576, 549_755_813_888),
        "100663296",
        Doc::Innodb,
    )),
    var(
        "interactive_timeout",
        int(1, ONE_YEAR),
        "28800",
        Doc::Server,
    ),
    managed(var("log_bin", Kind::Bool, "ON", Doc::Replication)),
    var(
        "long_query_time",
        Kind::Decimal {
            min: 0,
            max: ONE_YEAR,
        },
        "10",
        Doc::Server,
    ),
    restart(var(
        "lower_case_table_names",
        Kind::Enum(&["0", "1", "2"]),
        "0",
        Doc::Server,
    )),
    var(
        "max_allowed_packet",
        size(1024, 1_073_741_824),
        "16777216",
        Doc::Server,
    ),
    var("max_connections", int(10, 100_000), "151", Doc::Server),
    var(
        "max_heap_table_size",
        size(16_384, 18_446_744_073_709_550_592),
        "16777216",
        Doc::Server,
    ),
    managed(var("port", int(0, 65_535), "3306", Doc::Server)),
    // skyplan fences a replica with read_only = ON here, so it holds across restarts.
    var("read_only", Kind::Bool, "OFF", Doc::Server),
    managed(var("server_id", int(1, U32_MAX), "1", Doc::Replication)),
    var("slow_query_log", Kind::Bool, "OFF", Doc::Server),
    var("sync_binlog", int(0, U32_MAX), "0", Doc::Replication),
    var("table_open_cache", int(1, 1_048_576), "2000", Doc::Server),
    var("thread_cache_size", int(0, 16_384), "256", Doc::Server),
    var(
        "tmp_table_size",
        size(1024, u64::MAX),
        "16777216",
        Doc::Server,
    ),
    var("wait_timeout", int(1, ONE_YEAR), "28800", Doc::Server),
];

/// Every variable, in name order.
pub(crate) fn variables() -> &'static [Variable] {
    VARIABLES
}

/// The variable called `name` (exact: server variable names are lower case).
pub(crate) fn find(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

/// The variable whose `ConfigKey::id` is `id`.
pub(crate) fn by_key_id(id: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.key_id() == id)
}

/// The variable `name` if a configuration may set it: a 400 message naming it otherwise (with
/// the nearest name when one is close, and the reason when the cloud manages it).
pub(crate) fn settable(name: &str, topology: &str) -> Result<&'static Variable, String> {
    let Some(v) = find(name) else {
        let hint = skyplan_api::suggest::nearest(name, VARIABLES.iter().map(|v| v.name))
            .map(|n| format!("; did you mean {n:?}?"))
            .unwrap_or_default();
        return Err(format!(
            "{name:?} is not a configurable variable of topology {topology}{hint} \
             (GET /provisioning/v1/topologies/{topology}/configs lists them)"
        ));
    };
    if v.readonly {
        return Err(format!(
            "{name} is read-only: the cloud manages it for every service"
        ));
    }
    Ok(v)
}

impl Variable {
    /// Stable, derived from the name, and distinct from it, so a client cannot mix the two up
    /// unnoticed.
    pub(crate) fn key_id(&self) -> String {
        format!("server-{}", self.name)
    }

    /// `value` as stored and written to my.cnf, or a 400 message saying what is accepted.
    pub(crate) fn normalise(&self, value: &str) -> Result<String, String> {
        let name = self.name;
        let v = value.trim();
        match self.kind {
            Kind::Int { min, max, size } => {
                let form = if size {
                    "an integer, optionally with a K, M, G or T suffix"
                } else {
                    "an integer"
                };
                let out_of_range =
                    || format!("{name} must be between {min} and {max}, not {value:?}");
                match parse_int(v, size) {
                    Some((Some(n), text)) if (min..=max).contains(&n) => Ok(text),
                    Some(_) => Err(out_of_range()),
                    None => Err(format!("{name} takes {form}, not {value:?}")),
                }
            }
            Kind::Decimal { min, max } => {
                let number = parse_decimal(v)
                    .ok_or_else(|| format!("{name} takes a decimal number, not {value:?}"))?;
                if number < min as f64 || number > max as f64 {
                    return Err(format!(
                        "{name} must be between {min} and {max}, not {value:?}"
                    ));
                }
                Ok(v.to_string())
            }
            Kind::Bool => match v.to_ascii_uppercase().as_str() {
                "ON" | "1" | "TRUE" => Ok("ON".into()),
                "OFF" | "0" | "FALSE" => Ok("OFF".into()),
                _ => Err(format!(
                    "{name} takes ON or OFF (or 1/0, TRUE/FALSE), not {value:?}"
                )),
            },
            Kind::Enum(allowed) => allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(v))
                .map(|a| a.to_string())
                .ok_or_else(|| format!("{name} takes one of {allowed:?}, not {value:?}")),
        }
    }

    /// The catalog entry (`v1.ConfigKey`).
    pub(crate) fn to_key(self) -> ConfigKey {
        let (minimum_value, maximum_value) = match self.kind {
            Kind::Int { min, max, .. } | Kind::Decimal { min, max } => {
                (Some(min.to_string()), Some(max.to_string()))
            }
            Kind::Bool | Kind::Enum(_) => (None, None),
        };
        let allowed_values = match self.kind {
            Kind::Bool => vec!["ON".into(), "OFF".into()],
            Kind::Enum(allowed) => allowed.iter().map(|a| a.to_string()).collect(),
            _ => Vec::new(),
        };
        let (page, tag) = match self.doc {
            Doc::Server => ("server-system-variables", "server"),
            Doc::Innodb => ("innodb-system-variables", "innodb"),
            Doc::Replication => ("replication-and-binary-log-system-variables", "replication"),
            Doc::Gtid => ("gtid", "replication"),
        };
        ConfigKey {
            id: self.key_id(),
            name: self.name.to_string(),
            allowed_values,
            component: ConfigKeyComponent::Server,
            config_section: SECTION.to_string(),
            default_value: vec![self.default.to_string()],
            documentation_url: format!("https://mariadb.com/kb/en/{page}/#{}", self.name),
            flags: 0,
            maximum_value,
            minimum_value,
            multiselect: false,
            readonly: self.readonly,
            requires_restart: self.requires_restart,
            tags: vec![tag.to_string()],
        }
    }
}

/// `123` or, for sizes, `64M`: (the value in units, None when beyond u64; its normalised
/// text), or None when malformed.
fn parse_int(text: &str, size: bool) -> Option<(Option<u64>, String)> {
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if size && c.is_ascii_alphabetic() => {
            (&text[..i], Some(c.to_ascii_uppercase()))
        }
        _ => (text, None),
    };
    let shift = match unit {
        None => 0,
        Some('K') => 10,
        Some('M') => 20,
        Some('G') => 30,
        Some('T') => 40,
        Some(_) => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Leading zeros go; a number too long for u64 is still a number (out of every range).
    let trimmed = digits.trim_start_matches('0');
    let canonical = if trimmed.is_empty() { "0" } else { trimmed };
    let n = canonical
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift));
    let suffix = unit.map(String::from).unwrap_or_default();
    Some((n, format!("{canonical}{suffix}")))
}

/// `10`, `0.5`, `.5`: digits with at most one point, no sign or exponent.
fn parse_decimal(text: &str) -> Option<f64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !digits(whole) || !digits(fraction) {
        return None;
    }
    text.parse().ok().filter(|n: &f64| n.is_finite())
}

/// The server variables service `rec` starts with: the values of its attached configuration,
/// in name order (none without one). Read at every start of its mariadbd, so a change made
/// while it runs takes effect at the next start.
pub(crate) fn server_variables(store: &Store, rec: &ServiceRecord) -> Vec<(String, String)> {
    rec.config_id
        .as_deref()
        .and_then(|id| store.config(id))
        .map(|c| {
            c.values
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &str, value: &str) -> String {
        find(name).unwrap().normalise(value).unwrap()
    }

    fn refused(name: &str, value: &str) -> String {
        find(name).unwrap().normalise(value).unwrap_err()
    }

    #[test]
    fn the_catalog_is_sorted_unique_and_has_what_skyplan_needs() {
        let names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert!(names.len() >= 20);
        let read_only = find("read_only").unwrap();
        assert!(!read_only.readonly && !read_only.requires_restart);
        for managed in ["server_id", "gtid_domain_id", "log_bin", "port"] {
            assert!(find(managed).unwrap().readonly, "{managed}");
        }
        for v in VARIABLES {
            // Every default is a value the variable itself accepts.
            assert_eq!(
                v.normalise(v.default).as_deref(),
                Ok(v.default),
                "{}",
                v.name
            );
            assert!(v.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(by_key_id(&v.key_id()), Some(v));
        }
    }

    #[test]
    fn integers_are_checked_against_their_range() {
        assert_eq!(ok("max_connections", "321"), "321");
        assert_eq!(ok("max_connections", " 0100 "), "100");
        assert!(refused("max_connections", "9").contains("between 10 and 100000"));
        assert!(refused("max_connections", "100001").contains("between"));
        assert!(refused("max_connections", "99999999999999999999999").contains("between"));
        for bad in ["", "-5", "+5", "1e3", "12a", "3.5", "1 000"] {
            assert!(
                refused("max_connections", bad).contains("takes an integer"),
                "{bad:?}"
            );
        }
        assert_eq!(ok("binlog_expire_logs_seconds", "8553600"), "8553600");
        assert!(refused("binlog_expire_logs_seconds", "8553601").contains("between"));
    }

    #[test]
    fn sizes_take_suffixes_and_are_checked_in_bytes() {
        assert_eq!(ok("max_allowed_packet", "64m"), "64M");
        assert_eq!(ok("max_allowed_packet", "1G"), "1G");
        assert_eq!(ok("max_allowed_packet", "1024"), "1024");
        assert!(refused("max_allowed_packet", "2G").contains("between"));
        assert_eq!(ok("max_allowed_packet", "1k"), "1K");
        assert!(refused("max_allowed_packet", "64X").contains("suffix"));
        assert!(refused("max_allowed_packet", "M").contains("suffix"));
        assert!(refused("tmp_table_size", "99999999999T").contains("between"));
        // Suffixes are for sizes only.
        assert!(refused("max_connections", "1K").contains("takes an integer"));
    }

    #[test]
    fn booleans_and_enumerations_are_normalised() {
        for on in ["ON", "on", "1", "true", "TRUE"] {
            assert_eq!(ok("read_only", on), "ON");
        }
        for off in ["OFF", "0", "false"] {
            assert_eq!(ok("slow_query_log", off), "OFF");
        }
        assert!(refused("read_only", "yes").contains("ON or OFF"));
        assert_eq!(ok("character_set_server", "UTF8MB4"), "utf8mb4");
        assert!(refused("character_set_server", "klingon").contains("one of"));
        assert_eq!(ok("event_scheduler", "disabled"), "DISABLED");
        assert_eq!(ok("innodb_flush_log_at_trx_commit", "2"), "2");
        assert!(refused("innodb_flush_log_at_trx_commit", "3").contains("one of"));
        assert_eq!(ok("long_query_time", "0.5"), "0.5");
        for bad in ["-1", "1e2", "1.2.3", ".", "nan", "inf"] {
            assert!(
                refused("long_query_time", bad).contains("decimal"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unknown_and_managed_variables_are_refused_by_name() {
        let e = settable("max_conections", "es-replica").unwrap_err();
        assert!(e.contains("did you mean \"max_connections\""), "{e}");
        let e = settable("no_such_thing", "es-replica").unwrap_err();
        assert!(!e.contains("did you mean"), "{e}");
        assert!(settable("server_id", "es-replica")
            .unwrap_err()
            .contains("read-only"));
        assert!(settable("read_only", "es-replica").is_ok());
    }

    #[test]
    fn keys_carry_the_spec_fields() {
        let key = find("max_connections").unwrap().to_key();
        assert_eq!(key.id, "server-max_connections");
        assert_eq!(key.config_section, "mysqld");
        assert_eq!(key.component, ConfigKeyComponent::Server);
        assert_eq!(
            (key.minimum_value.as_deref(), key.maximum_value.as_deref()),
            (Some("10"), Some("100000"))
        );
        assert!(key
            .documentation_url
            .starts_with("https://mariadb.com/kb/en/"));
        let key = find("innodb_buffer_pool_size").unwrap().to_key();
        assert!(key.requires_restart);
        let key = find("read_only").unwrap().to_key();
        assert_eq!(key.allowed_values, ["ON", "OFF"]);
        assert_eq!(key.minimum_value, None);
    }
}
