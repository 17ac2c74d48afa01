//! How far apart a benchmark's services are (issue 28): loopback, or a latency profile of the
//! emulator with the guide's secondary moved to another region. Each row says which.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use skyplan_emulator::latency::{Latency, Profile};
use skyplan_emulator::ServeOptions;

/// Where the guide's primary is, and where skyplan and the writer run from.
pub const PRIMARY_REGION: &str = "us-east4";

#[derive(Debug, Clone, PartialEq)]
pub struct Distance {
    /// The emulator's latency options (`Profile::None`: loopback).
    pub latency: Latency,
    /// The region of the guide's secondary (the guide has it in us-west1).
    pub secondary_region: String,
}

impl Distance {
    pub fn loopback() -> Distance {
        Distance {
            latency: Latency::default(),
            secondary_region: "us-west1".into(),
        }
    }

    /// The guide's pair with its secondary in `region`, under `profile`, skyplan and the
    /// writer beside the primary.
    pub fn pair(profile: &Profile, region: &str, api_delay_ms: u64) -> Distance {
        Distance {
            latency: Latency {
                profile: profile.clone(),
                client_region: Some(PRIMARY_REGION.into()),
                api_delay_ms,
            },
            secondary_region: region.into(),
        }
    }

    pub fn is_loopback(&self) -> bool {
        self.latency.is_none()
    }

    /// For a row's name: `loopback`, or `us-east4 <-> asia-southeast1, 220 ms RTT, API +30 ms`.
    pub fn label(&self) -> String {
        if self.is_loopback() {
            return "loopback".into();
        }
        let rtt = self.latency.rtt(PRIMARY_REGION, &self.secondary_region);
        let mut s = format!(
            "{PRIMARY_REGION} <-> {}, {} ms RTT",
            self.secondary_region,
            rtt.as_millis()
        );
        if self.latency.api_delay_ms > 0 {
            s.push_str(&format!(", API +{} ms", self.latency.api_delay_ms));
        }
        s
    }

    pub fn serve_options(&self, dir: PathBuf) -> ServeOptions {
        ServeOptions {
            latency: self.latency.clone(),
            ..ServeOptions::new(dir)
        }
    }

    /// The example's text with its secondary in this distance's region.
    pub fn topology(&self, example: &Path) -> Result<String> {
        let text = std::fs::read_to_string(example)
            .with_context(|| format!("reading {}", example.display()))?;
        Ok(text.replacen(
            "region = \"us-west1\"",
            &format!("region = \"{}\"", self.secondary_region),
            1,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_distance_says_where_it_is() {
        assert_eq!(Distance::loopback().label(), "loopback");
        let far = Distance::pair(&Profile::Regions, "asia-southeast1", 30);
        assert_eq!(
            far.label(),
            "us-east4 <-> asia-southeast1, 220 ms RTT, API +30 ms"
        );
        let guide = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/global-replication.toml"
        );
        let text = far.topology(Path::new(guide)).unwrap();
        assert!(text.contains("region = \"asia-southeast1\""));
        assert!(!text.contains("region = \"us-west1\""));
        assert_eq!(
            Distance::loopback().topology(Path::new(guide)).unwrap(),
            std::fs::read_to_string(guide).unwrap()
        );
    }
}
