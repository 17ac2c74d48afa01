//! The real apply steps against the API-only emulator, in process: no `mariadbd`, operations
//! that settle at once and polls every few milliseconds, so each step's API conversation and
//! what it records in the state are checked in milliseconds. (The steps' seam is the SkySQL
//! HTTP API itself: the emulator is the test double, speaking the same wire contract as the
//! cloud; the steps that need SQL are covered end to end in the `e2e_*` suites.)

use std::sync::Arc;
use std::time::Duration;

use skyplan::apply::executor::{ProgressHandle, StepError, Steps};
use skyplan::apply::state_handle::StateHandle;
use skyplan::apply::steps::{RealSteps, StepOptions};
use skyplan::apply::wait::PollPolicy;
use skyplan::plan::{Action, ActionKind, Change};
use skyplan::remote::Remote;
use skyplan::skysql::client::{ClientConfig, SkysqlClient};
use skyplan::skysql::error::SkysqlError;
use skyplan::skysql::secret::Secret;
use skyplan::skysql::types::ServiceStatus;
use skyplan::state::LocalBackend;
use skyplan::topology::Topology;
use skyplan_emulator::{self as emulator, RunningEmulator, ServeOptions};

use crate::support::fixtures::{topology, STANDALONE};

/// The real steps over an in-process API-only emulator and a local state in a temp dir.
/// Dropping it stops the emulator.
struct Rig {
    steps: RealSteps,
    state: StateHandle,
    remote: Arc<Remote>,
    emu: RunningEmulator,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn new(t: Topology) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let emu = emulator::start(ServeOptions {
            op_seconds: 0.0,
            no_mariadb: true,
            ..ServeOptions::new(dir.path().join("emulator"))
        })
        .await
        .expect("the API-only emulator starts");
        let info = emu.info().clone();
        let client =
            SkysqlClient::new(ClientConfig::new(&info.endpoint, Secret::new(info.api_key)))
                .unwrap();
        let identity = format!("local:{}", info.instance_id);
        let remote = Arc::new(Remote::new(client, info.endpoint, identity, None));
        let backend = Arc::new(LocalBackend::new(dir.path().join("t.state.json")));
        let state = StateHandle::new(skyplan::state::new_state(), backend);
        let opts = StepOptions {
            poll: PollPolicy {
                first: Duration::from_millis(5),
                max: Duration::from_millis(20),
                deadline: Duration::from_secs(20),
                ..PollPolicy::default()
            },
            ..StepOptions::default()
        };
        let steps = RealSteps::new(remote.clone(), t, state.clone(), opts);
        Rig {
            steps,
            state,
            remote,
            emu,
            _dir: dir,
        }
    }

    async fn run(&self, kind: ActionKind) -> Result<String, StepError> {
        let action = Action {
            id: 0,
            address: kind.address(),
            change: Change::Update,
            kind,
            summary: String::new(),
            depends_on: vec![],
            before: None,
            after: None,
            wipes_data: false,
            reason: None,
            estimated_ms: None,
        };
        self.steps.run(&action, &ProgressHandle::detached()).await
    }

    /// Runs the create of the topology's service `key` (it must succeed).
    async fn create(&self, key: &str) {
        let spec = self.steps.topology.services[key].spec.clone();
        self.run(ActionKind::CreateService {
            key: key.into(),
            spec,
        })
        .await
        .unwrap();
    }

    async fn id(&self, key: &str) -> String {
        self.state
            .read(|s| s.resources.services[key].id.clone())
            .await
    }

    /// The entries on service `key`'s allowlist, as the API lists them.
    async fn allowlist(&self, key: &str) -> Vec<String> {
        let id = self.id(key).await;
        let listed = self.remote.client.get_allowlist(&id).await.unwrap();
        listed
            .into_iter()
            .flat_map(|e| e.allow_list.into_iter().map(|i| i.ip))
            .collect()
    }

    async fn api_status(&self, id: &str) -> ServiceStatus {
        self.remote
            .client
            .get_service(id)
            .await
            .unwrap()
            .expect("service exists")
            .status
    }
}

#[tokio::test]
async fn create_update_power_and_delete_carry_out_what_they_say_and_record_it() {
    let t = topology(STANDALONE);
    let spec = t.services["archive"].spec.clone();
    let rig = Rig::new(t).await;

    rig.create("archive").await;
    let id = rig.id("archive").await;
    let svc = rig.remote.client.get_service(&id).await.unwrap().unwrap();
    assert_eq!(svc.status, ServiceStatus::Ready);
    let rec = rig
        .state
        .read(|s| s.resources.services["archive"].clone())
        .await;
    assert_eq!(rec.status, Some(ServiceStatus::Ready));
    assert!(rec.in_flight.is_none(), "nothing left in flight");
    assert!(rec.fqdn.is_some() && rec.port.is_some(), "{rec:?}");
    // The ownership tags prove the service is this state's.
    assert!(!svc.tags.unwrap_or_default().is_empty());

    let mut bigger = spec.clone();
    bigger.size = "sky-4x16".into();
    let done = rig
        .run(ActionKind::UpdateService {
            key: "archive".into(),
            from: spec.clone(),
            to: bigger.clone(),
        })
        .await
        .unwrap();
    assert_eq!(done, "updated size");
    let svc = rig.remote.client.get_service(&id).await.unwrap().unwrap();
    assert_eq!(svc.size, "sky-4x16");
    let recorded = rig
        .state
        .read(|s| s.resources.services["archive"].spec.size.clone())
        .await;
    assert_eq!(recorded, "sky-4x16");

    let stop = ActionKind::SetPower {
        key: "archive".into(),
        active: false,
    };
    assert_eq!(rig.run(stop.clone()).await.unwrap(), "stopped");
    assert_eq!(rig.api_status(&id).await, ServiceStatus::Stopped);
    let recorded = rig
        .state
        .read(|s| s.resources.services["archive"].status.clone())
        .await;
    assert_eq!(recorded, Some(ServiceStatus::Stopped));
    // Already there (a stop by hand since the plan): nothing sent, nothing refused.
    assert_eq!(rig.run(stop).await.unwrap(), "already stopped");
    // Tags change on a stopped service, and the update settles on `stopped`.
    let mut tagged = bigger.clone();
    tagged.tags.insert("team".into(), "dr".into());
    rig.run(ActionKind::UpdateService {
        key: "archive".into(),
        from: bigger.clone(),
        to: tagged,
    })
    .await
    .unwrap();
    assert_eq!(
        rig.run(ActionKind::SetPower {
            key: "archive".into(),
            active: true,
        })
        .await
        .unwrap(),
        "ready"
    );
    assert_eq!(rig.api_status(&id).await, ServiceStatus::Ready);

    rig.run(ActionKind::DeleteService {
        key: "archive".into(),
        spec: bigger,
    })
    .await
    .unwrap();
    assert!(rig.remote.client.get_service(&id).await.unwrap().is_none());
    let gone = rig
        .state
        .read(|s| !s.resources.services.contains_key("archive"))
        .await;
    assert!(gone, "a deleted service is forgotten");
    drop(rig.emu);
}

#[tokio::test]
async fn a_create_that_ends_failed_is_an_error_recorded_as_failed() {
    let t = topology(STANDALONE);
    let spec = t.services["archive"].spec.clone();
    let rig = Rig::new(t).await;
    let endpoint = rig.emu.info().endpoint.clone();
    let key = rig.emu.info().api_key.clone();
    let resp = reqwest::Client::new()
        .post(format!(
            "{endpoint}/emulator/v1/services/skysql-archive/fail-next"
        ))
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());

    let err = rig
        .run(ActionKind::CreateService {
            key: "archive".into(),
            spec,
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ended in status failed"), "{err}");
    assert!(
        err.contains("injected failure"),
        "the API's reason is kept: {err}"
    );
    let rec = rig
        .state
        .read(|s| s.resources.services["archive"].clone())
        .await;
    assert_eq!(rec.status, Some(ServiceStatus::Failed));
    assert!(rec.in_flight.is_none(), "a failed create is over: {rec:?}");
}

#[tokio::test]
async fn a_step_refused_by_the_api_keeps_the_apis_error_as_a_typed_cause() {
    let t = topology(STANDALONE);
    let spec = t.services["archive"].spec.clone();
    let rig = Rig::new(t).await;
    rig.create("archive").await;
    let mut odd = spec.clone();
    odd.size = "sky-2x9".into();
    let err = rig
        .run(ActionKind::UpdateService {
            key: "archive".into(),
            from: spec,
            to: odd,
        })
        .await
        .unwrap_err();
    assert!(!err.is_interrupted());
    let api = err
        .cause::<SkysqlError>()
        .unwrap_or_else(|| panic!("no API error in {err:?}"));
    assert_eq!(api.status(), Some(400));
    let text = err.to_string();
    assert!(text.contains("sky-2x9"), "{text}");
    // One line, each cause once.
    assert_eq!(text.matches("is not offered").count(), 1, "{text}");
}

#[tokio::test]
async fn a_grant_on_a_new_source_keeps_the_old_one_until_its_revoke_runs() {
    let three = format!(
        "{STANDALONE}\n[services.old]\nname = \"skysql-old\"\nprovider = \"gcp\"\nregion = \"us-east4\"\nsize = \"sky-2x8\"\nstorage = 100\n\n[services.new]\nname = \"skysql-new\"\nprovider = \"gcp\"\nregion = \"us-west1\"\nsize = \"sky-2x8\"\nstorage = 100\n"
    );
    let t = topology(&three);
    let rig = Rig::new(t).await;
    for key in ["archive", "old", "new"] {
        rig.create(key).await;
    }
    let grant = |source: &str| ActionKind::AllowlistGrant {
        source: source.into(),
        replica: "archive".into(),
    };
    rig.run(grant("old")).await.unwrap();
    let entries = rig
        .state
        .read(|s| s.resources.allowlists["archive"].entries.clone())
        .await;
    assert!(rig.allowlist("old").await.contains(&entries[0]));

    // Re-pointed to `new` (as a failover does while `old` does not answer): `old`'s entries
    // stay recorded as an earlier grant.
    rig.run(grant("new")).await.unwrap();
    let rec = rig
        .state
        .read(|s| s.resources.allowlists["archive"].clone())
        .await;
    assert_eq!(rec.on, "new");
    assert_eq!(rec.earlier.len(), 1, "{rec:?}");
    assert_eq!(rec.earlier[0].on, "old");

    // `old` answers again: the revoke removes the entries and the earlier grant.
    rig.run(ActionKind::AllowlistRevoke {
        source: "old".into(),
        replica: "archive".into(),
        entries: rec.earlier[0].entries.clone(),
    })
    .await
    .unwrap();
    assert!(!rig.allowlist("old").await.contains(&entries[0]));
    assert!(rig.allowlist("new").await.contains(&entries[0]));
    let rec = rig
        .state
        .read(|s| s.resources.allowlists["archive"].clone())
        .await;
    assert_eq!(rec.on, "new");
    assert!(rec.earlier.is_empty(), "{rec:?}");
}
