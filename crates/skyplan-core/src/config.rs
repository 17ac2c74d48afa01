//! Server configuration as code: the variables of `[services.<key>.config]`, checked against
//! the variables the cloud's Configuration Manager accepts for the service's topology, plus
//! `read_only` by role, so that a replica's fence is in the configuration the server starts
//! with and survives every restart. Pure: the catalog and the running values are read at the
//! edge (refresh) and handed in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use skyplan_api::types::ConfigKey;

use crate::catalog::Problem;
use crate::topology::{Service, Topology};

pub use crate::topology::rules::ROLE_VARIABLE;

/// One variable the Configuration Manager accepts (a `v1.ConfigKey`, the parts skyplan uses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// The key id values are stored under (`v1.ConfigValue::config_key_id`).
    pub id: String,
    pub name: String,
    /// A change takes effect only when the server restarts.
    #[serde(default)]
    pub requires_restart: bool,
    /// Managed by the cloud: not settable.
    #[serde(default)]
    pub readonly: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

impl From<&ConfigKey> for Variable {
    fn from(k: &ConfigKey) -> Variable {
        Variable {
            id: k.id.clone(),
            name: k.name.clone(),
            requires_restart: k.requires_restart,
            readonly: k.readonly,
            allowed: k.allowed_values.clone(),
            min: k.minimum_value.clone().filter(|v| !v.trim().is_empty()),
            max: k.maximum_value.clone().filter(|v| !v.trim().is_empty()),
        }
    }
}

/// The variables of one topology, by name.
pub type Variables = BTreeMap<String, Variable>;

/// The name of the configuration skyplan keeps for a service (one per service: a name is
/// unique among a team's configurations, and so is a service's name).
pub fn config_name(service_name: &str) -> String {
    format!("skyplan-{service_name}")
}

/// Whether the cloud lets skyplan keep roles in the configuration: its catalog for the
/// topology has a settable `read_only`. Where it does not, a replica's fence lives only in
/// the running server, and skyplan re-fences it after a restart (drift repair).
pub fn keeps_roles(vars: Option<&Variables>) -> bool {
    vars.and_then(|v| v.get(ROLE_VARIABLE))
        .is_some_and(|v| !v.readonly)
}

/// What `svc`'s configuration should hold: its `config` table, and `read_only` by role
/// (`ON` for a replica, `OFF` for a primary) where the cloud keeps roles there.
pub fn desired(svc: &Service, vars: Option<&Variables>) -> BTreeMap<String, String> {
    let mut out = svc.config.clone();
    if keeps_roles(vars) {
        let on = svc.replication.is_some();
        out.insert(ROLE_VARIABLE.into(), if on { "ON" } else { "OFF" }.into());
    }
    out
}

/// Whether two spellings of a value are the same setting as the server sees it: case aside,
/// `1`/`TRUE` is `ON`, `64M` is `67108864`, `10` is `10.000000`.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    if let (Some(x), Some(y)) = (boolean(a), boolean(b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (size(a), size(b)) {
        return x == y;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() < 1e-9,
        _ => false,
    }
}

fn boolean(v: &str) -> Option<bool> {
    match v.to_ascii_uppercase().as_str() {
        // As MariaDB's `SET GLOBAL` takes them (it refuses YES/NO).
        "ON" | "TRUE" | "1" => Some(true),
        "OFF" | "FALSE" | "0" => Some(false),
        _ => None,
    }
}

/// An integer, optionally with MariaDB's K/M/G/T suffix.
fn size(v: &str) -> Option<u128> {
    let v = v.trim();
    let (digits, unit) = match v.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_uppercase()),
        _ => (v, ' '),
    };
    let n: u128 = digits.parse().ok()?;
    let mult: u128 = match unit {
        ' ' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        'T' => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Why `value` does not fit `var`, if it does not.
pub fn misfit(var: &Variable, value: &str) -> Option<String> {
    if !var.allowed.is_empty() {
        let ok = var.allowed.iter().any(|a| same(a, value));
        return (!ok).then(|| format!("allowed: {}", var.allowed.join(", ")));
    }
    if var.min.is_none() && var.max.is_none() {
        return None;
    }
    let Some(n) = size(value) else {
        return Some("a whole number is expected (K, M, G suffixes allowed)".into());
    };
    let below = var.min.as_deref().and_then(size).is_some_and(|m| n < m);
    let above = var.max.as_deref().and_then(size).is_some_and(|m| n > m);
    (below || above).then(|| {
        format!(
            "the range is {}..{}",
            var.min.as_deref().unwrap_or(""),
            var.max.as_deref().unwrap_or("")
        )
    })
}

/// Every variable of the topology's `config` tables that the catalog of its service's
/// topology does not accept: unknown (with "did you mean"), managed by the cloud, or out of
/// range. `catalogs` is by topology name; a topology whose catalog could not be read is
/// refused when it declares variables (nothing can be checked, and nothing could be set).
pub fn check(topology: &Topology, catalogs: &BTreeMap<String, Variables>) -> Vec<Problem> {
    let mut out = Vec::new();
    for (key, svc) in &topology.services {
        if svc.config.is_empty() {
            continue;
        }
        let Some(vars) = catalogs.get(&svc.spec.topology) else {
            out.push(Problem {
                key: key.clone(),
                field: "config".into(),
                message: format!(
                    "service.{key}: the cloud lists no configurable variables for topology {}",
                    svc.spec.topology
                ),
                help: Some(
                    "its Configuration Manager (GET /provisioning/v1/topologies/{topology}/configs) offers none: remove [services.<key>.config]"
                        .into(),
                ),
            });
            continue;
        };
        for (name, value) in &svc.config {
            let (message, help) = match vars.get(name) {
                None => {
                    let names: Vec<&str> = vars.keys().map(String::as_str).collect();
                    (
                        format!(
                            "service.{key}: `{name}` is not a variable SkySQL configures for topology {}",
                            svc.spec.topology
                        ),
                        crate::topology::nearest(name, &names)
                            .map(|n| format!("did you mean `{n}`?")),
                    )
                }
                Some(v) if v.readonly => (
                    format!("service.{key}: `{name}` is managed by SkySQL and cannot be set"),
                    Some("remove it from the config table".into()),
                ),
                Some(v) => match misfit(v, value) {
                    Some(why) => (
                        format!("service.{key}: {name} = {value:?} is not accepted"),
                        Some(why),
                    ),
                    None => continue,
                },
            };
            out.push(Problem {
                key: key.clone(),
                field: format!("config.{name}"),
                message,
                help,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str) -> Variable {
        Variable {
            id: format!("id-{name}"),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn spellings_of_one_setting_are_the_same() {
        for (a, b) in [
            ("ON", "on"),
            ("1", "ON"),
            ("TRUE", "ON"),
            ("OFF", "0"),
            ("64M", "67108864"),
            ("1G", "1073741824"),
            ("10", "10.000000"),
            (" 500 ", "500"),
        ] {
            assert!(same(a, b), "{a} = {b}");
        }
        for (a, b) in [
            ("ON", "OFF"),
            ("500", "501"),
            ("64M", "64K"),
            ("utf8", "latin1"),
        ] {
            assert!(!same(a, b), "{a} != {b}");
        }
    }

    #[test]
    fn values_are_checked_against_allowed_values_and_ranges() {
        let mut n = var("max_connections");
        n.min = Some("10".into());
        n.max = Some("100000".into());
        assert_eq!(misfit(&n, "500"), None);
        assert!(misfit(&n, "5").unwrap().contains("10..100000"));
        assert!(misfit(&n, "lots").unwrap().contains("whole number"));
        let mut e = var("event_scheduler");
        e.allowed = vec!["ON".into(), "OFF".into(), "DISABLED".into()];
        assert_eq!(misfit(&e, "1"), None);
        assert_eq!(misfit(&e, "disabled"), None);
        assert!(misfit(&e, "maybe").is_some());
        let mut p = var("max_allowed_packet");
        p.max = Some("1073741824".into());
        assert_eq!(misfit(&p, "64M"), None);
        assert!(misfit(&p, "2G").is_some());
    }

    #[test]
    fn roles_are_kept_in_the_configuration_only_where_the_cloud_offers_read_only() {
        let mut t = crate::topology::parse(
            r#"
[defaults]
provider = "gcp"
region = "us-east4"
size = "sky-2x8"
storage = 100
[services.a]
name = "aa"
[services.a.config]
max_connections = 321
[services.b]
name = "bb"
replication = { from = "a" }
"#,
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let mut vars = Variables::new();
        vars.insert("max_connections".into(), var("max_connections"));
        let a = &t.services["a"];
        assert_eq!(desired(a, Some(&vars)).len(), 1, "no read_only offered");
        vars.insert(ROLE_VARIABLE.into(), var(ROLE_VARIABLE));
        assert_eq!(desired(a, Some(&vars))[ROLE_VARIABLE], "OFF");
        assert_eq!(desired(&t.services["b"], Some(&vars))[ROLE_VARIABLE], "ON");
        // A catalog that marks it read-only keeps roles out of the configuration.
        vars.get_mut(ROLE_VARIABLE).unwrap().readonly = true;
        assert!(!keeps_roles(Some(&vars)));

        // Checked: a typo gets "did you mean", a cloud-managed one is refused.
        t.services.get_mut("a").unwrap().config =
            [("max_conections".to_string(), "5".to_string())].into();
        let mut readonly = var("server_id");
        readonly.readonly = true;
        vars.insert("server_id".into(), readonly);
        t.services.get_mut("b").unwrap().config =
            [("server_id".to_string(), "5".to_string())].into();
        let catalogs: BTreeMap<String, Variables> = [("standalone".to_string(), vars)].into();
        let problems = check(&t, &catalogs);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            problems[0].help.as_deref(),
            Some("did you mean `max_connections`?")
        );
        assert!(problems[1].message.contains("managed by SkySQL"));
        // No catalog for the topology: a declared config cannot be checked or set.
        assert_eq!(check(&t, &BTreeMap::new()).len(), 2);
    }
}
