//! Distances between regions: the round-trip time the service proxies add between two
//! emulated services (a replica's IO thread and its source) and between skyplan and a service
//! (from the client region), and the delay the API answers after.
//!
//! Everything else in the emulator runs over loopback, where a switchover or a refresh costs
//! what the CPU costs; real global replication pays a WAN round trip per protocol exchange.
//! The proxy ([`super::proxy`]) delays each chunk it forwards by half the pair's round trip, in
//! each direction, without limiting throughput (chunks keep their order and are pipelined).
//!
//! Profiles (`skyplan emulator start --latency PROFILE`):
//! - `none` (the default): loopback.
//! - `regions`: [`builtin_rtt_ms`], the built-in table.
//! - a TOML file: `same_region_ms`, `default_ms` and `[[pair]]` entries (`regions = [a, b]`,
//!   `rtt_ms`); a pair it does not list falls back to `default_ms`, or to the built-in table
//!   when `default_ms` is absent. See [`FileProfile`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::EmulatorError;

/// The most round-trip time a profile may give a pair: more than any path on Earth.
const MAX_RTT_MS: f64 = 2_000.0;
/// The most control-plane delay: the client's own timeouts are longer.
pub const MAX_API_DELAY_MS: u64 = 30_000;

/// How far apart the emulated regions are (`ServeOptions::latency`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Latency {
    pub profile: Profile,
    /// Where skyplan (or any client that is not an emulated service) sits: its SQL to a
    /// service pays the round trip from this region. Unset: the first region of the topology
    /// skyplan applies (it says so when it connects), else the oldest service's region.
    #[serde(default)]
    pub client_region: Option<String>,
    /// The SkySQL API (not the emulator's own `/emulator/v1` routes) answers after this
    /// many milliseconds: the control plane's distance.
    #[serde(default)]
    pub api_delay_ms: u64,
}

/// Which round-trip table applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum Profile {
    /// Loopback: no delay.
    #[default]
    None,
    /// The built-in table of the catalog's regions ([`builtin_rtt_ms`]).
    Regions,
    /// A TOML file's table, as read when the emulator started.
    File(FileProfile),
}

/// A latency profile file. Every figure is a round trip in milliseconds.
///
/// ```toml
/// same_region_ms = 0.5   # between two services of one region (default 0)
/// default_ms = 100       # any pair not listed (default: the built-in table)
///
/// [[pair]]
/// regions = ["us-east4", "us-west1"]
/// rtt_ms = 20
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProfile {
    /// The file it was read from (for `emulator status`).
    #[serde(default)]
    pub file: PathBuf,
    #[serde(default)]
    pub same_region_ms: f64,
    #[serde(default)]
    pub default_ms: Option<f64>,
    #[serde(default, rename = "pair")]
    pub pairs: Vec<Pair>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    pub regions: [String; 2],
    pub rtt_ms: f64,
}

impl Latency {
    /// `--latency PROFILE`: `none`, `regions`, or the path of a TOML file (read now, once:
    /// the daemon gets the table, not the path).
    pub fn parse_profile(arg: &str) -> Result<Profile, EmulatorError> {
        match arg {
            "none" => Ok(Profile::None),
            "regions" => Ok(Profile::Regions),
            path => {
                let path = Path::new(path);
                let text = std::fs::read_to_string(path).map_err(|e| {
                    EmulatorError::Invalid(format!(
                        "--latency {}: not `none`, `regions` or a readable TOML file: {e}",
                        path.display()
                    ))
                })?;
                FileProfile::parse(&text, path).map(Profile::File)
            }
        }
    }

    pub fn validate(&self) -> Result<(), EmulatorError> {
        if let Some(r) = &self.client_region {
            check_region(r, "--client-region")?;
        }
        if self.api_delay_ms > MAX_API_DELAY_MS {
            return Err(EmulatorError::Invalid(format!(
                "--api-delay-ms {} is over the {MAX_API_DELAY_MS} ms limit",
                self.api_delay_ms
            )));
        }
        match &self.profile {
            Profile::File(f) => f.validate(),
            Profile::None | Profile::Regions => Ok(()),
        }
    }

    /// Is anything delayed at all?
    pub fn is_none(&self) -> bool {
        self.profile == Profile::None && self.api_delay_ms == 0
    }

    /// The round trip between two regions under this profile.
    pub fn rtt(&self, a: &str, b: &str) -> Duration {
        let ms = match &self.profile {
            Profile::None => 0.0,
            Profile::Regions => builtin_rtt_ms(a, b),
            Profile::File(f) => f.rtt_ms(a, b),
        };
        Duration::from_secs_f64(ms / 1000.0)
    }

    /// What the proxy adds to each direction of a connection between the two regions.
    pub fn one_way(&self, a: &str, b: &str) -> Duration {
        self.rtt(a, b) / 2
    }

    pub fn api_delay(&self) -> Duration {
        Duration::from_millis(self.api_delay_ms)
    }
}

impl FileProfile {
    /// Parse a profile file; errors name the file and, for TOML errors, the line.
    pub fn parse(text: &str, path: &Path) -> Result<FileProfile, EmulatorError> {
        let mut profile: FileProfile = toml::from_str(text).map_err(|e| {
            EmulatorError::Invalid(format!(
                "latency profile {}: {}",
                path.display(),
                e.to_string().trim_end()
            ))
        })?;
        profile.file = path.to_path_buf();
        profile.validate().map_err(|e| {
            EmulatorError::Invalid(format!("latency profile {}: {e}", path.display()))
        })?;
        Ok(profile)
    }

    fn validate(&self) -> Result<(), EmulatorError> {
        check_ms(self.same_region_ms, "same_region_ms")?;
        if let Some(d) = self.default_ms {
            check_ms(d, "default_ms")?;
        }
        let mut seen = BTreeMap::new();
        for (i, p) in self.pairs.iter().enumerate() {
            let what = format!("pair {} ({} ↔ {})", i + 1, p.regions[0], p.regions[1]);
            check_ms(p.rtt_ms, &format!("{what}: rtt_ms"))?;
            for r in &p.regions {
                check_region(r, &what)?;
            }
            if p.regions[0] == p.regions[1] {
                return Err(EmulatorError::Invalid(format!(
                    "{what}: a region with itself is `same_region_ms`"
                )));
            }
            if let Some(first) = seen.insert(key(&p.regions[0], &p.regions[1]), i + 1) {
                return Err(EmulatorError::Invalid(format!(
                    "{what}: the same pair as pair {first}"
                )));
            }
        }
        Ok(())
    }

    fn rtt_ms(&self, a: &str, b: &str) -> f64 {
        if a == b {
            return self.same_region_ms;
        }
        let k = key(a, b);
        self.pairs
            .iter()
            .find(|p| key(&p.regions[0], &p.regions[1]) == k)
            .map(|p| p.rtt_ms)
            .or(self.default_ms)
            .unwrap_or_else(|| builtin_rtt_ms(a, b))
    }
}

fn key<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

fn check_ms(ms: f64, what: &str) -> Result<(), EmulatorError> {
    if ms.is_finite() && (0.0..=MAX_RTT_MS).contains(&ms) {
        Ok(())
    } else {
        Err(EmulatorError::Invalid(format!(
            "{what} = {ms} must be between 0 and {MAX_RTT_MS} ms"
        )))
    }
}

/// A region of the catalog (any provider), or an error naming the nearest one.
fn check_region(region: &str, what: &str) -> Result<(), EmulatorError> {
    if site_of(region).is_some() {
        return Ok(());
    }
    let all = super::catalog::PROVIDERS
        .iter()
        .flat_map(|p| super::catalog::regions(p).iter().copied());
    let hint = skyplan_api::suggest::nearest(region, all)
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default();
    Err(EmulatorError::Invalid(format!(
        "{what}: {region:?} is not a region of the catalog{hint}"
    )))
}

/// Round trips the providers publish, in ms (rounded medians): Google Cloud's inter-region
/// latency dashboard (Network Intelligence Center, "Performance Dashboard", 2024) for the GCP
/// pairs the issue names, and the same figures for the other clouds' regions in the same
/// metros. Every other pair is estimated by [`estimate_ms`], fitted to these.
const PUBLISHED: &[(&str, &str, f64)] = &[
    ("us-east4", "us-west1", 60.0),
    ("us-east4", "europe-west1", 90.0),
    ("us-east4", "asia-southeast1", 220.0),
];

/// Between two zones of one region.
const SAME_REGION_MS: f64 = 1.0;
/// Between two regions of one metro (e.g. two clouds' Northern Virginia regions).
const SAME_METRO_MS: f64 = 2.0;

/// The built-in round trip between two catalog regions, in ms: a published figure when the
/// pair (or a pair of regions in the same metros) has one, else the distance estimate. An
/// unknown region counts as loopback (validation refuses them before this is asked).
pub fn builtin_rtt_ms(a: &str, b: &str) -> f64 {
    let (Some(sa), Some(sb)) = (site_of(a), site_of(b)) else {
        return 0.0;
    };
    if a == b {
        return SAME_REGION_MS;
    }
    if sa.metro == sb.metro {
        return SAME_METRO_MS;
    }
    for (x, y, ms) in PUBLISHED {
        let (Some(sx), Some(sy)) = (site_of(x), site_of(y)) else {
            continue;
        };
        if (sx.metro, sy.metro) == (sa.metro, sb.metro)
            || (sx.metro, sy.metro) == (sb.metro, sa.metro)
        {
            return *ms;
        }
    }
    estimate_ms(sa, sb)
}

/// A WAN round trip from the great-circle distance: light in fibre covers about 200 km per
/// ms, and cables do not follow great circles; the route factor (1.5) and the fixed cost (2 ms
/// of switching) put the published pairs within 10% (60 → 56, 90 → 95, 220 → 235).
fn estimate_ms(a: Site, b: Site) -> f64 {
    const EARTH_KM: f64 = 6371.0;
    let (la1, lo1, la2, lo2) = (
        a.lat.to_radians(),
        a.lon.to_radians(),
        b.lat.to_radians(),
        b.lon.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    let km = 2.0 * EARTH_KM * h.sqrt().asin();
    (2.0 + 2.0 * km / 200.0 * 1.5).round()
}

#[derive(Debug, Clone, Copy)]
struct Site {
    metro: &'static str,
    lat: f64,
    lon: f64,
}

/// Whether `region` is a catalog region (any provider); `Some(())` when it is.
pub(crate) fn site_known(region: &str) -> Option<()> {
    site_of(region).map(|_| ())
}

/// Where each catalog region is (the providers' published locations).
fn site_of(region: &str) -> Option<Site> {
    let (metro, lat, lon) = match region {
        "us-east4" | "us-east-1" | "eastus" | "eastus2" => ("ashburn", 39.0, -77.5),
        "us-east1" => ("moncks-corner", 33.2, -80.0),
        "us-east-2" => ("columbus", 40.0, -83.0),
        "us-central1" | "centralus" => ("council-bluffs", 41.3, -95.9),
        "us-west1" | "us-west-2" | "westus2" => ("oregon", 45.6, -121.2),
        "us-west-1" => ("n-california", 37.4, -121.9),
        "us-west2" => ("los-angeles", 34.1, -118.2),
        "us-west4" => ("las-vegas", 36.2, -115.1),
        "westus3" => ("phoenix", 33.4, -112.1),
        "northamerica-northeast1" | "ca-central-1" => ("montreal", 45.5, -73.6),
        "canadacentral" => ("toronto", 43.7, -79.4),
        "southamerica-east1" | "sa-east-1" => ("sao-paulo", -23.5, -46.6),
        "europe-north1" => ("hamina", 60.6, 27.2),
        "eu-north-1" | "swedencentral" => ("stockholm", 59.3, 18.1),
        "europe-west1" => ("st-ghislain", 50.5, 3.8),
        "europe-west4" | "westeurope" => ("eemshaven", 53.4, 6.8),
        "eu-west-1" | "northeurope" => ("dublin", 53.3, -6.3),
        "europe-west2" | "eu-west-2" | "uksouth" => ("london", 51.5, -0.1),
        "europe-west3" | "eu-central-1" => ("frankfurt", 50.1, 8.7),
        "eu-west-3" => ("paris", 48.9, 2.4),
        "me-west1" => ("tel-aviv", 32.1, 34.8),
        "asia-east1" => ("changhua", 24.1, 120.5),
        "asia-northeast1" | "ap-northeast-1" | "japaneast" => ("tokyo", 35.7, 139.7),
        "asia-northeast3" | "ap-northeast-2" => ("seoul", 37.6, 127.0),
        "asia-south1" | "ap-south-1" => ("mumbai", 19.1, 72.9),
        "asia-southeast1" | "ap-southeast-1" | "southeastasia" => ("singapore", 1.35, 103.8),
        "asia-southeast2" => ("jakarta", -6.2, 106.8),
        "australia-southeast1" | "ap-southeast-2" | "australiaeast" => ("sydney", -33.9, 151.2),
        _ => return None,
    };
    Some(Site { metro, lat, lon })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_region_has_a_place() {
        for p in super::super::catalog::PROVIDERS {
            for r in super::super::catalog::regions(p) {
                assert!(site_of(r).is_some(), "{p} {r} has no site");
            }
        }
    }

    #[test]
    fn the_built_in_table_gives_the_published_figures_and_estimates_near_them() {
        assert_eq!(builtin_rtt_ms("us-east4", "us-west1"), 60.0);
        assert_eq!(builtin_rtt_ms("us-west1", "us-east4"), 60.0);
        assert_eq!(builtin_rtt_ms("us-east4", "europe-west1"), 90.0);
        assert_eq!(builtin_rtt_ms("us-east4", "asia-southeast1"), 220.0);
        // Another cloud's region in the same metros gets the same published figure.
        assert_eq!(builtin_rtt_ms("us-east-1", "ap-southeast-1"), 220.0);
        assert_eq!(builtin_rtt_ms("us-east4", "us-east4"), SAME_REGION_MS);
        assert_eq!(builtin_rtt_ms("us-east4", "eastus"), SAME_METRO_MS);
        // The estimate of each published pair is within 10% of its figure.
        for (a, b, ms) in PUBLISHED {
            let est = estimate_ms(site_of(a).unwrap(), site_of(b).unwrap());
            assert!((est - ms).abs() / ms <= 0.10, "{a} {b}: {est} vs {ms}");
        }
        // Symmetric everywhere, and Sydney is further from Europe than London from Frankfurt.
        let (syd, lon, fra) = ("australia-southeast1", "europe-west2", "europe-west3");
        assert_eq!(builtin_rtt_ms(syd, lon), builtin_rtt_ms(lon, syd));
        assert!(
            builtin_rtt_ms(syd, lon) > 200.0,
            "{}",
            builtin_rtt_ms(syd, lon)
        );
        assert!(
            builtin_rtt_ms(lon, fra) < 20.0,
            "{}",
            builtin_rtt_ms(lon, fra)
        );
    }

    #[test]
    fn a_profile_file_parses_and_falls_back_as_documented() {
        let text = r#"
same_region_ms = 0.5
[[pair]]
regions = ["us-east4", "us-west1"]
rtt_ms = 20
"#;
        let f = FileProfile::parse(text, Path::new("lat.toml")).unwrap();
        let l = Latency {
            profile: Profile::File(f.clone()),
            ..Latency::default()
        };
        assert_eq!(l.rtt("us-west1", "us-east4"), Duration::from_millis(20));
        assert_eq!(l.one_way("us-east4", "us-west1"), Duration::from_millis(10));
        assert_eq!(l.rtt("us-east4", "us-east4"), Duration::from_micros(500));
        // Not listed, no default_ms: the built-in table.
        assert_eq!(l.rtt("us-east4", "europe-west1"), Duration::from_millis(90));
        let with_default = FileProfile {
            default_ms: Some(100.0),
            ..f
        };
        assert_eq!(with_default.rtt_ms("us-east4", "europe-west1"), 100.0);
        assert_eq!(
            Latency::default().rtt("us-east4", "asia-southeast1"),
            Duration::ZERO
        );
    }

    #[test]
    fn bad_profiles_are_refused_with_the_reason() {
        let cases = [
            ("rtt = 5\n", "unknown field `rtt`"),
            ("same_region_ms = -1\n", "same_region_ms = -1 must be between 0 and 2000"),
            ("default_ms = 1e9\n", "default_ms = 1000000000 must be between"),
            (
                "[[pair]]\nregions = [\"us-east4\", \"us-wets1\"]\nrtt_ms = 20\n",
                "\"us-wets1\" is not a region of the catalog (did you mean \"us-west1\"?)",
            ),
            (
                "[[pair]]\nregions = [\"us-east4\", \"us-east4\"]\nrtt_ms = 20\n",
                "a region with itself",
            ),
            (
                "[[pair]]\nregions = [\"us-east4\", \"us-west1\"]\nrtt_ms = 20\n[[pair]]\nregions = [\"us-west1\", \"us-east4\"]\nrtt_ms = 30\n",
                "pair 2 (us-west1 ↔ us-east4): the same pair as pair 1",
            ),
            ("[[pair]]\nregions = [\"us-east4\"]\nrtt_ms = 20\n", "lat.toml"),
            ("[[pair]]\nregions = [\"us-east4\", \"us-west1\"]\n", "missing field `rtt_ms`"),
        ];
        for (text, want) in cases {
            let e = FileProfile::parse(text, Path::new("lat.toml")).unwrap_err();
            assert!(e.to_string().contains(want), "{text:?}: {e}");
            assert!(e.to_string().contains("lat.toml"), "{text:?}: {e}");
        }
        let bad_client = Latency {
            client_region: Some("mars-1".into()),
            ..Latency::default()
        };
        assert!(bad_client
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--client-region"));
        let slow_api = Latency {
            api_delay_ms: MAX_API_DELAY_MS + 1,
            ..Latency::default()
        };
        assert!(slow_api.validate().is_err());
        assert!(Latency::parse_profile("/nonexistent/lat.toml")
            .unwrap_err()
            .to_string()
            .contains("not `none`, `regions` or a readable TOML file"));
        assert_eq!(Latency::parse_profile("regions").unwrap(), Profile::Regions);
        assert_eq!(Latency::parse_profile("none").unwrap(), Profile::None);
    }
}
