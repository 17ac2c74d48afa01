//! Fixtures for the planner's unit tests: the guide's setup (a primary and one replica) as a
//! topology, as the state an apply of it records and as refresh sees it, so each rule of the
//! diff is tested on small inputs. The core reads no files: the topology is a string here.

use std::path::Path;

use skyplan_api::types::ServiceStatus;

use crate::observed::{Observed, ObservedService, RemoteService};
use crate::state::State;
use crate::topology::{ServiceSpec, Topology};

/// The guide's topology: `primary`, and `secondary` replicating from it, named and sized like
/// the records of [`guide_state`] (`ServiceSpec::for_test`), so that one planned against the
/// other finds nothing to do.
pub(super) const GUIDE: &str = r#"
[defaults]
provider = "gcp"
region = "us-east4"
size = "sky-2x8"
storage = 100

[services.primary]
name = "svc-primary"

[services.secondary]
name = "svc-secondary"

[services.secondary.replication]
from = "primary"
"#;

/// A topology that must be valid.
pub(super) fn topology(text: &str) -> Topology {
    crate::topology::parse(text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn guide_topology() -> Topology {
    topology(GUIDE)
}

/// The guide applied (`state::edit::tests::guide`): services `svc-primary` and
/// `svc-secondary`, the secondary seeded from backup `b-1`, granted `10.0.0.1/32` on the
/// primary, linked and healthy at `0-1-5`, as `skysql_replication_x@10.0.0.2`.
pub(super) fn guide_state() -> State {
    crate::state::edit::tests::guide()
}

/// What the API reports of a ready service with this id and spec (no outbound IPs).
pub(super) fn remote(id: &str, spec: &ServiceSpec) -> RemoteService {
    RemoteService {
        id: id.into(),
        name: spec.name.clone(),
        status: ServiceStatus::Ready,
        provider: spec.provider.clone(),
        region: spec.region.clone(),
        architecture: spec.architecture.clone(),
        size: spec.size.clone(),
        nodes: spec.nodes,
        storage: spec.storage,
        ssl_enabled: spec.ssl_enabled,
        fqdn: Some(format!("{id}.example.com")),
        port: Some(3306),
        outbound_ips: vec![],
        tags: Default::default(),
        config_id: None,
    }
}

/// A refresh that found every recorded service as recorded, and looked at nothing else.
pub(super) fn seen(state: &State) -> Observed {
    Observed {
        refreshed: true,
        services: state
            .resources
            .services
            .iter()
            .map(|(k, r)| (k.clone(), ObservedService::Present(remote(&r.id, &r.spec))))
            .collect(),
        ..Observed::default()
    }
}
