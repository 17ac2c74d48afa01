//! The SkySQL catalog (regions per provider, sizes per provider and architecture, topologies,
//! versions per topology) and the check of a topology against it, so that `plan` reports an
//! unknown region, size, version or topology — with "did you mean" — before anything is
//! created, rather than the cloud refusing the first create after others were made and billed.
//! Pure: the lists are read at the edge, once per run.

use std::collections::{BTreeMap, BTreeSet};

use crate::topology::Topology;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Region names by provider.
    pub regions: BTreeMap<String, BTreeSet<String>>,
    /// Size names by (provider, architecture).
    pub sizes: BTreeMap<(String, String), BTreeSet<String>>,
    /// Topology names.
    pub topologies: BTreeSet<String>,
    /// Version names (and their `version` field) by topology.
    pub versions: BTreeMap<String, BTreeSet<String>>,
}

/// One value the catalog does not offer: where, what, and the nearest offered value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    /// The field, or `config.<variable>` for one server variable.
    pub field: String,
    pub message: String,
    pub help: Option<String>,
}

/// Every value of `topology`'s services that the catalog does not offer (services the state
/// already records are checked too: a spec that changed to an unknown size is as wrong).
pub fn check(topology: &Topology, catalog: &Catalog) -> Vec<Problem> {
    let mut out = Vec::new();
    for (key, svc) in &topology.services {
        let spec = &svc.spec;
        let mut problem = |field: &'static str, value: &str, offered: Vec<&str>, scope: String| {
            let near = crate::topology::nearest(value, &offered);
            out.push(Problem {
                key: key.clone(),
                field: field.into(),
                message: format!(
                    "service.{key}: {field} = {value:?} is not offered by SkySQL{scope}"
                ),
                help: Some(match near {
                    Some(n) => format!("did you mean `{n}`?"),
                    None if offered.len() <= 12 => format!("offered: {}", offered.join(", ")),
                    None => format!(
                        "see `GET /provisioning/v1/{}` for what is offered",
                        if field == "region" {
                            "regions"
                        } else {
                            "sizes"
                        }
                    ),
                }),
            });
        };
        let Some(regions) = catalog.regions.get(&spec.provider) else {
            // An unknown provider is refused by validate already; a catalog without it offers
            // nothing to compare with.
            continue;
        };
        if !regions.contains(&spec.region) {
            let elsewhere = catalog
                .regions
                .iter()
                .find(|(_, r)| r.contains(&spec.region))
                .map(|(p, _)| format!("; it is a region of {p}"))
                .unwrap_or_default();
            problem(
                "region",
                &spec.region,
                regions.iter().map(String::as_str).collect(),
                format!(" on {}{elsewhere}", spec.provider),
            );
        }
        let arch = (spec.provider.clone(), spec.architecture.clone());
        match catalog.sizes.get(&arch) {
            Some(sizes) if !sizes.contains(&spec.size) => problem(
                "size",
                &spec.size,
                sizes.iter().map(String::as_str).collect(),
                format!(" on {} {}", spec.provider, spec.architecture),
            ),
            None if !catalog.sizes.is_empty() => problem(
                "architecture",
                &spec.architecture,
                catalog
                    .sizes
                    .keys()
                    .filter(|(p, _)| *p == spec.provider)
                    .map(|(_, a)| a.as_str())
                    .collect(),
                format!(" on {}", spec.provider),
            ),
            _ => {}
        }
        if !catalog.topologies.is_empty() && !catalog.topologies.contains(&spec.topology) {
            problem(
                "topology",
                &spec.topology,
                catalog.topologies.iter().map(String::as_str).collect(),
                String::new(),
            );
        }
        if let (Some(v), Some(versions)) = (&spec.version, catalog.versions.get(&spec.topology)) {
            // A release, or its major.minor series ("11.4").
            let known =
                versions.contains(v) || versions.iter().any(|r| r.starts_with(&format!("{v}.")));
            if !known {
                problem(
                    "version",
                    v,
                    versions.iter().map(String::as_str).collect(),
                    format!(" for topology {}", spec.topology),
                );
            }
        }
    }
    out
}

/// What the API reports for the services refresh looked at that its own catalog does not
/// offer (a provider, region, or size it does not list): an answer that cannot be trusted,
/// so nothing is planned from it — never a replace to "repair" a junk value. One message per
/// service, naming the value the API sent.
pub fn untrusted_observations(
    observed: &crate::observed::Observed,
    catalog: &Catalog,
) -> Vec<String> {
    use crate::observed::ObservedService;
    let mut out = Vec::new();
    if catalog.regions.is_empty() {
        return out;
    }
    let seen = observed.services.iter().filter_map(|(k, s)| match s {
        ObservedService::Present(r) => Some((k, r)),
        _ => None,
    });
    let candidates = observed
        .unmanaged
        .iter()
        .flat_map(|(k, v)| v.iter().map(move |r| (k, r)));
    for (key, r) in seen.chain(candidates) {
        let provider = r.provider.to_ascii_lowercase();
        let mut bad = Vec::new();
        match catalog.regions.get(&provider) {
            None if !r.provider.is_empty() => bad.push(format!("provider = {:?}", r.provider)),
            Some(regions) if !r.region.is_empty() && !regions.contains(&r.region) => {
                bad.push(format!("region = {:?}", r.region))
            }
            _ => {}
        }
        let sizes = catalog
            .sizes
            .get(&(provider.clone(), r.architecture.clone()))
            .or_else(|| {
                // The API may leave the architecture out: any of the provider's.
                catalog
                    .sizes
                    .iter()
                    .find(|((p, _), s)| *p == provider && s.contains(&r.size))
                    .map(|(_, s)| s)
            });
        if let Some(sizes) = sizes {
            if !r.size.is_empty() && !sizes.contains(&r.size) {
                bad.push(format!("size = {:?}", r.size));
            }
        }
        if !bad.is_empty() {
            out.push(format!(
                "the SkySQL API reports {} for service.{key} ({}), which its own catalog does not offer",
                bad.join(", "),
                r.id
            ));
        }
    }
    out
}

#[cfg(test)]
mod untrusted_tests {
    use super::*;
    use crate::observed::{Observed, ObservedService, RemoteService};

    #[test]
    fn a_junk_value_the_api_reports_is_named_never_planned_from() {
        let mut c = Catalog::default();
        c.regions
            .insert("gcp".into(), ["us-east4".to_string()].into());
        c.sizes.insert(
            ("gcp".into(), "amd64".into()),
            ["sky-2x8".to_string()].into(),
        );
        let svc = |region: &str, size: &str| RemoteService {
            id: "dbpgf1".into(),
            name: "skysql-primary".into(),
            status: "ready".into(),
            provider: "gcp".into(),
            region: region.into(),
            architecture: "amd64".into(),
            size: size.into(),
            nodes: 1,
            storage: 100,
            ssl_enabled: true,
            fqdn: None,
            port: None,
            outbound_ips: vec![],
            tags: Default::default(),
            config_id: None,
        };
        let mut o = Observed::default();
        o.services.insert(
            "primary".into(),
            ObservedService::Present(svc("us-east4", "sky-2x8")),
        );
        assert!(untrusted_observations(&o, &c).is_empty());
        o.services.insert(
            "primary".into(),
            ObservedService::Present(svc("mars-north1", "sky-2x8")),
        );
        let bad = untrusted_observations(&o, &c);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].contains("region = \"mars-north1\"") && bad[0].contains("service.primary"));
        o.services.insert(
            "primary".into(),
            ObservedService::Present(svc("us-east4", "sky-999")),
        );
        assert!(untrusted_observations(&o, &c)[0].contains("size = \"sky-999\""));
    }
}
