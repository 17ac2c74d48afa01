//! The offering catalog SkySQL publishes (`GET /provisioning/v1/{providers,regions,sizes,
//! versions,topologies}`), and the check of a create request against it: SkySQL refuses an
//! unknown region, size, topology or version, so the emulator does too, with the spec's error
//! body naming the field and, where one is close, the nearest valid value.
//!
//! Where the lists come from:
//! - providers: the `provider` enum of `GET /provisioning/v1/regions` in the subset spec;
//! - regions: the regions SkySQL's documentation lists per cloud ("Regions" page of the
//!   SkySQL docs, 2024), with three zones each (`<region>-a/b/c` on gcp, `<region>a/b/c` on
//!   aws, `<region>-1/2/3` on azure, the providers' own zone naming);
//! - sizes: the `sky-<vCPU>x<GiB>` node sizes of the docs' "Instance sizes" table, for the
//!   `amd64` architecture on every provider and `arm64` on aws and gcp (the spec's
//!   `architecture` enum);
//! - topologies: every topology of the spec's `topology` enum (`sa`, `es-replica`,
//!   `es-single`, `serverless-standalone`), the transactional topologies of the docs, and
//!   `standalone`, which the guide's create request uses (not in the spec's enum: SkySQL's
//!   own guide is the authority there). A serverless topology is of service type
//!   `transactional_serverless` and is emulated as a standalone server (see the README);
//! - versions: the MariaDB Enterprise Server releases of the docs' release notes, each valid
//!   for every transactional topology.

use serde_json::{json, Value};

pub const PROVIDERS: &[&str] = &["aws", "gcp", "azure"];

const GCP: &[&str] = &[
    "us-central1",
    "us-east1",
    "us-east4",
    "us-west1",
    "us-west2",
    "us-west4",
    "northamerica-northeast1",
    "southamerica-east1",
    "europe-north1",
    "europe-west1",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "asia-east1",
    "asia-northeast1",
    "asia-northeast3",
    "asia-south1",
    "asia-southeast1",
    "asia-southeast2",
    "australia-southeast1",
    "me-west1",
];

const AWS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
];

const AZURE: &[&str] = &[
    "eastus",
    "eastus2",
    "centralus",
    "westus2",
    "westus3",
    "canadacentral",
    "northeurope",
    "westeurope",
    "uksouth",
    "swedencentral",
    "southeastasia",
    "japaneast",
    "australiaeast",
];

/// `sky-<vCPU>x<GiB RAM>`.
const SIZES: &[&str] = &[
    "sky-2x4",
    "sky-2x8",
    "sky-4x16",
    "sky-4x32",
    "sky-8x32",
    "sky-8x64",
    "sky-16x64",
    "sky-16x128",
    "sky-32x128",
    "sky-32x256",
    "sky-64x256",
];

/// (name, display name, the most nodes it takes).
const TOPOLOGIES: &[(&str, &str, i64)] = &[
    ("standalone", "Enterprise Server Single Node", 1),
    ("sa", "Enterprise Server Single Node", 1),
    ("es-single", "Enterprise Server Single Node", 1),
    ("serverless-standalone", "Serverless Single Node", 1),
    ("es-replica", "Enterprise Server With Replica(s)", 9),
    ("masterslave", "Enterprise Server With Replica(s)", 9),
    ("galera", "Enterprise Server Galera Cluster", 9),
];

const VERSIONS: &[&str] = &["10.6.20-16", "10.11.10-7", "11.4.4-2"];

/// The releases offered once the emulator knows its own `mariadbd`'s version
/// ([`set_server_version`]): the docs' list with the release of that server's series replaced
/// by the server's own version, so the version a service reports is the version it runs.
static OFFERED: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
/// That server's version, the default of a create that names none.
static SERVER_VERSION: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// The releases `GET /provisioning/v1/versions` lists.
fn versions() -> &'static [&'static str] {
    OFFERED.get().map_or(VERSIONS, Vec::as_slice)
}

/// Offer the version of the `mariadbd` every service runs (`mariadbd --version`: "10.11.19")
/// in place of the docs' release of its series (or beside them, for a series they lack).
/// Once per process: every emulator in it runs the same binary.
pub fn set_server_version(version: &str) {
    let series = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    let ours: &'static str = Box::leak(version.to_string().into_boxed_str());
    let mut list: Vec<&'static str> = VERSIONS
        .iter()
        .copied()
        .filter(|r| series(r) != series(ours))
        .collect();
    list.push(ours);
    list.sort_by_key(|v| {
        v.split(['.', '-'])
            .map(|n| n.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    let _ = OFFERED.set(list);
    let _ = SERVER_VERSION.set(ours);
}

pub const SERVICE_TYPES: &[&str] = &["transactional", "transactional_serverless"];

/// The service type a topology belongs to: also what a create that names no `service_type`
/// gets (the spec declares no default; SkySQL's own MCP server launches a
/// `serverless-standalone` without one).
pub(crate) fn service_type_of(topology: &str) -> &'static str {
    if topology.starts_with("serverless") {
        "transactional_serverless"
    } else {
        "transactional"
    }
}
pub const ARCHITECTURES: &[&str] = &["amd64", "arm64"];

pub fn regions(provider: &str) -> &'static [&'static str] {
    match provider {
        "gcp" => GCP,
        "aws" => AWS,
        "azure" => AZURE,
        _ => &[],
    }
}

fn zones(provider: &str, region: &str) -> Vec<String> {
    ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, z)| match provider {
            "gcp" => format!("{region}-{z}"),
            "aws" => format!("{region}{z}"),
            _ => format!("{region}-{}", i + 1),
        })
        .collect()
}

fn architectures(provider: &str) -> &'static [&'static str] {
    if provider == "azure" {
        &["amd64"]
    } else {
        ARCHITECTURES
    }
}

/// `[v1.Provider-like]` objects (the full spec's providers list).
pub fn providers_json() -> Value {
    Value::Array(
        PROVIDERS
            .iter()
            .map(|p| json!({ "id": p, "name": p, "display_name": p.to_uppercase() }))
            .collect(),
    )
}

/// `[v1.Region]`, optionally for one provider.
pub fn regions_json(provider: Option<&str>) -> Value {
    let mut out = Vec::new();
    for p in PROVIDERS
        .iter()
        .filter(|p| provider.is_none_or(|f| f == **p))
    {
        for (i, r) in regions(p).iter().enumerate() {
            out.push(json!({
                "id": format!("{p}-{r}"),
                "name": r,
                "region": r,
                "provider": p,
                "is_available": true,
                "default": i == 0,
                "has_clusters": true,
                "order": i,
            }));
        }
    }
    Value::Array(out)
}

/// `GET /provisioning/v1/regions/{region}/zones`-like list for one region.
pub fn zones_json(provider: &str, region: &str) -> Value {
    Value::Array(
        zones(provider, region)
            .into_iter()
            .map(|z| json!({ "name": z, "region": region, "provider": provider }))
            .collect(),
    )
}

/// `[v1.Size]`, filtered like the spec's query parameters.
pub fn sizes_json(
    provider: Option<&str>,
    architecture: Option<&str>,
    topology: Option<&str>,
) -> Value {
    let mut out = Vec::new();
    for p in PROVIDERS
        .iter()
        .filter(|p| provider.is_none_or(|f| f == **p))
    {
        for a in architectures(p)
            .iter()
            .filter(|a| architecture.is_none_or(|f| f == **a))
        {
            for s in SIZES {
                let (cpu, ram) = cpu_ram(s);
                out.push(json!({
                    "id": format!("{p}-{a}-{s}"),
                    "name": s,
                    "display_name": s,
                    "provider": p,
                    "architecture": a,
                    "cpu": format!("{cpu} vCPU"),
                    "ram": format!("{ram} GB"),
                    "service_type": "transactional",
                    "topology": topology.unwrap_or("standalone"),
                    "type": "server",
                    "tier": "Enterprise",
                    "is_active": true,
                }));
            }
        }
    }
    Value::Array(out)
}

fn cpu_ram(size: &str) -> (&str, &str) {
    size.strip_prefix("sky-")
        .and_then(|r| r.split_once('x'))
        .unwrap_or(("?", "?"))
}

/// `[v1.Version]`, optionally for one topology.
pub fn versions_json(topology: Option<&str>) -> Value {
    let mut out = Vec::new();
    for (t, _, _) in TOPOLOGIES
        .iter()
        .filter(|(t, _, _)| topology.is_none_or(|f| f == *t))
    {
        for (i, v) in versions().iter().enumerate() {
            out.push(json!({
                "id": version_id(t, v),
                "name": v,
                "version": v,
                "display_name": format!("MariaDB Enterprise Server {v}"),
                "product": "server",
                "topology": t,
                "is_major": false,
                "default": i + 1 == versions().len(),
            }));
        }
    }
    Value::Array(out)
}

/// `[v1.Topology]`, optionally for one service type.
pub fn topologies_json(service_type: Option<&str>) -> Value {
    if service_type.is_some_and(|s| !SERVICE_TYPES.contains(&s)) {
        return Value::Array(Vec::new());
    }
    Value::Array(
        TOPOLOGIES
            .iter()
            .filter(|(name, _, _)| service_type.is_none_or(|s| s == service_type_of(name)))
            .enumerate()
            .map(|(i, (name, display, _))| {
                json!({
                    "id": name,
                    "name": name,
                    "display_name": display,
                    "service_type": service_type_of(name),
                    "database": "mariadb",
                    "storage_engine": "innodb",
                    "order": i,
                })
            })
            .collect(),
    )
}

/// What a create request asks for, as far as the catalog judges it.
pub struct Offer<'a> {
    pub provider: &'a str,
    pub region: &'a str,
    pub architecture: &'a str,
    pub size: &'a str,
    pub topology: &'a str,
    pub service_type: &'a str,
    pub version: Option<&'a str>,
    pub nodes: i64,
    pub availability_zone: Option<&'a str>,
}

/// The storage sizes SkySQL offers, in GB: 100 to 1,000 in steps of 100, then 2,000 to 10,000
/// in steps of 1,000 (`GET /provisioning/v1/topologies/{topology}/storage-sizes`).
pub fn storage_offered(gb: i64) -> bool {
    matches!(gb, 100..=1000 if gb % 100 == 0) || matches!(gb, 2000..=10000 if gb % 1000 == 0)
}

/// The first thing SkySQL would refuse in `o`: the field, and a message naming the nearest
/// valid value where one is close.
pub fn check(o: &Offer) -> Result<(), (&'static str, String)> {
    let not_in = |field: &'static str, value: &str, valid: &[&str], scope: &str| {
        let hint = nearest(value, valid)
            .map(|n| format!("; did you mean {n:?}?"))
            .unwrap_or_default();
        (
            field,
            format!("{field} {value:?} is not offered{scope}{hint}"),
        )
    };
    if !PROVIDERS.contains(&o.provider) {
        return Err(not_in("provider", o.provider, PROVIDERS, ""));
    }
    if !SERVICE_TYPES.contains(&o.service_type) {
        return Err(not_in("service_type", o.service_type, SERVICE_TYPES, ""));
    }
    let regions = regions(o.provider);
    if !regions.contains(&o.region) {
        // A region of another provider says which one it belongs to.
        let elsewhere = PROVIDERS
            .iter()
            .find(|p| regions_of(p).contains(&o.region))
            .map(|p| format!(" (that is a region of {p})"))
            .unwrap_or_default();
        let (f, m) = not_in(
            "region",
            o.region,
            regions,
            &format!(" by {}{elsewhere}", o.provider),
        );
        return Err((f, m));
    }
    if let Some(z) = o.availability_zone.filter(|z| !z.is_empty()) {
        let zs = zones(o.provider, o.region);
        let zs: Vec<&str> = zs.iter().map(String::as_str).collect();
        if !zs.contains(&z) {
            return Err(not_in(
                "availability_zone",
                z,
                &zs,
                &format!(" in {}", o.region),
            ));
        }
    }
    let archs = architectures(o.provider);
    if !archs.contains(&o.architecture) {
        return Err(not_in(
            "architecture",
            o.architecture,
            archs,
            &format!(" by {}", o.provider),
        ));
    }
    if !SIZES.contains(&o.size) {
        return Err(not_in("size", o.size, SIZES, ""));
    }
    let names: Vec<&str> = TOPOLOGIES.iter().map(|t| t.0).collect();
    let Some((_, _, max_nodes)) = TOPOLOGIES.iter().find(|t| t.0 == o.topology) else {
        return Err(not_in("topology", o.topology, &names, ""));
    };
    if service_type_of(o.topology) != o.service_type {
        return Err((
            "topology",
            format!(
                "topology {:?} is of service_type {:?}, not {:?}",
                o.topology,
                service_type_of(o.topology),
                o.service_type
            ),
        ));
    }
    if let Some(v) = o.version.filter(|v| !v.is_empty()) {
        if release_of(v).is_none() {
            return Err(not_in(
                "version",
                v,
                versions(),
                &format!(" for {}", o.topology),
            ));
        }
    }
    if o.nodes < 1 || o.nodes > *max_nodes {
        return Err((
            "nodes",
            format!(
                "nodes must be between 1 and {max_nodes} for topology {:?}, found {}",
                o.topology, o.nodes
            ),
        ));
    }
    Ok(())
}

/// The series of the `mariadbd` the emulator runs (Debian's MariaDB 10.11).
pub const SERVER_SERIES: &str = "10.11";

/// The version a service reports: the release of the catalog it was created with (a series
/// given as "11.4" is reported as its release), by default the release of the series the
/// emulator's server runs — its own version once known ([`set_server_version`]) — always one
/// of `GET /provisioning/v1/versions`.
pub fn reported_version(given: Option<&str>) -> String {
    let server = SERVER_VERSION.get().copied().unwrap_or(SERVER_SERIES);
    let given = given.filter(|v| !v.is_empty()).unwrap_or(server);
    release_of(given).unwrap_or(given).to_string()
}

/// A release ("11.4.4-2"), or the release of its major.minor series ("11.4").
fn release_of(v: &str) -> Option<&'static str> {
    versions()
        .iter()
        .copied()
        .find(|r| *r == v || r.starts_with(&format!("{v}.")))
}

/// The id `GET /provisioning/v1/versions` publishes for `release` of `topology`.
pub fn version_id(topology: &str, release: &str) -> String {
    format!("{topology}-{release}")
}

/// The topology a request names, by name or by the id `GET /provisioning/v1/topologies`
/// publishes (the same string); else a message naming the nearest one.
pub fn topology(given: &str) -> Result<&'static str, String> {
    let names: Vec<&'static str> = TOPOLOGIES.iter().map(|t| t.0).collect();
    names.iter().copied().find(|t| *t == given).ok_or_else(|| {
        let hint = nearest(given, &names)
            .map(|n| format!("; did you mean {n:?}?"))
            .unwrap_or_default();
        format!("topology {given:?} is not offered{hint}")
    })
}

/// The release a request names for `topology`: a release, its series, or the version id
/// `GET /provisioning/v1/versions` publishes for that topology; else a message saying why not.
pub fn release(given: &str, topology: &str) -> Result<&'static str, String> {
    if let Some(r) = release_of(given) {
        return Ok(r);
    }
    let by_id = |t: &str| {
        given
            .strip_prefix(t)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|r| versions().iter().copied().find(|v| *v == r))
    };
    if let Some(r) = by_id(topology) {
        return Ok(r);
    }
    if let Some((t, _, _)) = TOPOLOGIES.iter().find(|(t, _, _)| by_id(t).is_some()) {
        return Err(format!(
            "version {given:?} is a version of topology {t}, not of {topology}"
        ));
    }
    let hint = nearest(given, versions())
        .map(|n| format!("; did you mean {n:?}?"))
        .unwrap_or_default();
    Err(format!(
        "version {given:?} is not offered for {topology}{hint}"
    ))
}

pub fn is_size(size: &str) -> bool {
    SIZES.contains(&size)
}

pub fn nearest_size(size: &str) -> Option<&'static str> {
    nearest(size, SIZES)
}

fn regions_of(provider: &str) -> &'static [&'static str] {
    regions(provider)
}

/// The valid value closest to `value`, if close enough to be a likely typo or another
/// provider's spelling (`us-west-1` → `us-west1`): skyplan's own rule, so the emulator and the
/// topology's validation suggest the same value.
pub fn nearest<'a>(value: &str, valid: &[&'a str]) -> Option<&'a str> {
    skyplan_api::suggest::nearest(value, valid.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer<'a>(provider: &'a str, region: &'a str, size: &'a str) -> Offer<'a> {
        Offer {
            provider,
            region,
            architecture: "amd64",
            size,
            topology: "standalone",
            service_type: "transactional",
            version: None,
            nodes: 1,
            availability_zone: None,
        }
    }

    #[test]
    fn the_guide_is_offered_and_typos_get_the_nearest_value() {
        assert!(check(&offer("gcp", "us-east4", "sky-2x8")).is_ok());
        let (f, m) = check(&offer("gcp", "us-west-1", "sky-2x8")).unwrap_err();
        assert_eq!(f, "region");
        assert!(
            m.contains("did you mean \"us-west1\"") && m.contains("a region of aws"),
            "{m}"
        );
        let (f, m) = check(&offer("gcp", "us-east4", "sky-2x9")).unwrap_err();
        assert_eq!(f, "size");
        assert!(m.contains("did you mean \"sky-2x"), "{m}");
        let (f, _) = check(&offer("gcp", "mars-north1", "sky-2x8")).unwrap_err();
        assert_eq!(f, "region");
        let mut o = offer("gcp", "us-east4", "sky-2x8");
        o.nodes = 100;
        assert_eq!(check(&o).unwrap_err().0, "nodes");
        o.nodes = 1;
        o.topology = "galaxy";
        assert_eq!(check(&o).unwrap_err().0, "topology");
    }

    #[test]
    fn topologies_and_versions_resolve_by_name_series_or_id() {
        assert_eq!(topology("es-replica"), Ok("es-replica"));
        assert!(topology("es-replca")
            .unwrap_err()
            .contains("did you mean \"es-replica\""));
        assert_eq!(release("11.4.4-2", "es-replica"), Ok("11.4.4-2"));
        // The 10.11 release is the docs' one, or the emulator's own server once it is known.
        assert!(release("10.11", "es-replica").is_ok_and(|r| r.starts_with("10.11.")));
        assert_eq!(release("es-replica-11.4.4-2", "es-replica"), Ok("11.4.4-2"));
        let ids: Vec<String> = versions_json(Some("es-replica"))
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect();
        assert!(
            ids.contains(&version_id("es-replica", "11.4.4-2")),
            "{ids:?}"
        );
        assert!(release("galera-11.4.4-2", "es-replica")
            .unwrap_err()
            .contains("a version of topology galera"));
        assert!(release("11.4.4-3", "es-replica")
            .unwrap_err()
            .contains("did you mean \"11.4.4-2\""));
        assert!(release("", "es-replica").is_err());
    }

    #[test]
    fn every_list_answers_with_the_spec_fields() {
        let r = regions_json(Some("gcp"));
        assert!(r
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["provider"] == "gcp" && x["name"].is_string()));
        assert!(!sizes_json(Some("azure"), Some("arm64"), None)
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["architecture"] == "arm64"));
        assert_eq!(topologies_json(Some("analytical")), json!([]));
        assert!(versions_json(Some("standalone")).as_array().unwrap().len() >= 3);
    }
}
