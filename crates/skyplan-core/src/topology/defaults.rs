//! Defaults: a service's own field wins over `[defaults]`, which wins over the built-ins.

use super::model::Seed;
use super::raw::RawFields;

// Built-in values for fields that neither the service nor `[defaults]` sets. They match the
// guide's request body (`setup-global-replication.md`), so a minimal file describes its setup.
pub(crate) const SERVICE_TYPE: &str = "transactional";
pub(crate) const TOPOLOGY: &str = "standalone";
pub(crate) const ARCHITECTURE: &str = "amd64";
pub(crate) const NODES: u32 = 1;
pub(crate) const SSL_ENABLED: bool = true;
pub(crate) const DELETION_PROTECTION: bool = false;
/// A fresh backup is the only seed that is always consistent with the source's binlogs.
pub(crate) const SEED: Seed = Seed::NewBackup;

/// Fields that must be set, by the service or by `[defaults]`, because no value is a safe guess.
pub(crate) const REQUIRED: &[&str] = &["name", "provider", "region", "size", "storage"];

/// `own` with every unset field taken from `defaults`. Spans travel with the values, so an
/// error in an inherited value points into `[defaults]`, where the user has to fix it.
pub(crate) fn merge(defaults: &RawFields, own: &RawFields) -> RawFields {
    fn pick<T: Clone>(own: &Option<T>, default: &Option<T>) -> Option<T> {
        own.as_ref().or(default.as_ref()).cloned()
    }
    RawFields {
        name: pick(&own.name, &defaults.name),
        service_type: pick(&own.service_type, &defaults.service_type),
        topology: pick(&own.topology, &defaults.topology),
        provider: pick(&own.provider, &defaults.provider),
        region: pick(&own.region, &defaults.region),
        architecture: pick(&own.architecture, &defaults.architecture),
        size: pick(&own.size, &defaults.size),
        storage: pick(&own.storage, &defaults.storage),
        nodes: pick(&own.nodes, &defaults.nodes),
        version: pick(&own.version, &defaults.version),
        ssl_enabled: pick(&own.ssl_enabled, &defaults.ssl_enabled),
        volume_type: pick(&own.volume_type, &defaults.volume_type),
        volume_iops: pick(&own.volume_iops, &defaults.volume_iops),
        allow_list: pick(&own.allow_list, &defaults.allow_list),
        tags: pick(&own.tags, &defaults.tags),
        deletion_protection: pick(&own.deletion_protection, &defaults.deletion_protection),
        is_active: pick(&own.is_active, &defaults.is_active),
        allow_public: pick(&own.allow_public, &defaults.allow_public),
        config: merge_config(&defaults.config, &own.config),
    }
}

/// Server variables merge one by one: `[defaults.config]` sets what every service shares
/// (binlog retention, say), a service's own `config` adds to it and wins per variable.
fn merge_config(
    defaults: &Option<super::raw::Located<super::raw::Tags>>,
    own: &Option<super::raw::Located<super::raw::Tags>>,
) -> Option<super::raw::Located<super::raw::Tags>> {
    match (defaults, own) {
        (None, x) | (x, None) => x.clone(),
        (Some(d), Some(o)) => {
            let mut merged = o.clone();
            for (k, v) in &d.value {
                if !o.value.iter().any(|(ok, _)| ok == k) {
                    merged.value.push((k.clone(), v.clone()));
                }
            }
            Some(merged)
        }
    }
}

/// The required fields that `fields` leaves unset, in [`REQUIRED`] order.
pub(crate) fn missing_required(fields: &RawFields) -> Vec<&'static str> {
    let set = [
        fields.name.is_some(),
        fields.provider.is_some(),
        fields.region.is_some(),
        fields.size.is_some(),
        fields.storage.is_some(),
    ];
    REQUIRED
        .iter()
        .zip(set)
        .filter(|(_, set)| !set)
        .map(|(f, _)| *f)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::raw::Located;

    fn s(v: &str, at: usize) -> Option<Located<String>> {
        Some(Located::new(v.to_string(), at..at + 1))
    }

    #[test]
    fn own_fields_win_and_keep_their_spans() {
        let defaults = RawFields {
            region: s("us-east4", 1),
            size: s("sky-2x8", 2),
            ..Default::default()
        };
        let own = RawFields {
            region: s("us-west1", 10),
            ..Default::default()
        };
        let merged = merge(&defaults, &own);
        assert_eq!(merged.region, s("us-west1", 10));
        assert_eq!(merged.size, s("sky-2x8", 2));
        assert_eq!(merged.name, None);
    }

    #[test]
    fn tables_are_replaced_not_merged() {
        // A service's allow_list replaces the default list: appending would make it impossible
        // to narrow access for one service.
        let one = |v: &str| Some(Located::new(vec![Located::new(v.to_string(), 0..1)], 0..1));
        let defaults = RawFields {
            allow_list: one("10.0.0.0/8"),
            ..Default::default()
        };
        let own = RawFields {
            allow_list: one("192.0.2.1"),
            ..Default::default()
        };
        assert_eq!(merge(&defaults, &own).allow_list, one("192.0.2.1"));
    }

    #[test]
    fn reports_missing_required_fields() {
        let fields = RawFields {
            name: s("a", 0),
            size: s("x", 0),
            ..Default::default()
        };
        assert_eq!(missing_required(&fields), ["provider", "region", "storage"]);
    }
}
