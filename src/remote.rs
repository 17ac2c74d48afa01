//! Reaching the world: the SkySQL API (the cloud, or the local emulator started on demand)
//! and the services' SQL endpoints with the right credentials and TLS.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tokio::sync::Mutex;

use crate::skysql::client::{ClientConfig, SkysqlClient};
use crate::skysql::error::SkysqlError;
use crate::skysql::retry::RetryPolicy;
use crate::skysql::secret::Secret;
use crate::sql::{SqlConn, SqlTarget, TlsMode};
use crate::state::State;
use crate::topology::Topology;

pub struct Remote {
    pub client: SkysqlClient,
    /// CA that signs the services' certificates when it is not a public one (the emulator's).
    pub sql_ca: Option<PathBuf>,
    /// Human name of the endpoint (for messages).
    pub endpoint: String,
    /// Which cloud this is, as a state records it: the API endpoint, or `local:<instance id>`
    /// for an emulator (another emulator directory is another cloud).
    pub identity: String,
    credentials: Mutex<HashMap<String, (String, Secret)>>,
    /// Services (by id) whose API is known not to answer for them: deleted or unreachable,
    /// as refresh saw, or as a credentials lookup found. Their credentials are not asked for
    /// again (each try would wait through the retries).
    lost: Mutex<std::collections::HashSet<String>>,
    /// `[provider] lost_after`: the most one service's credentials lookup may take, retries
    /// included, before that service counts as lost.
    pub lost_after: std::time::Duration,
    /// What the user should know about how the cloud was reached (an emulator started in the
    /// background): printed by the caller, which holds the printer.
    pub notes: Vec<String>,
    /// Refresh's SQL sessions, one per service, closed when the refresh ends.
    pub(crate) sessions: crate::sql::sessions::Sessions,
    /// How many services refresh reads over SQL at once: its own bound, above the API's
    /// (`--parallelism`), because a SQL read mostly waits on the network and each service is
    /// its own server (issue 28).
    pub sql_parallelism: usize,
}

/// [`Remote::sql_parallelism`] by default.
pub const DEFAULT_SQL_PARALLELISM: usize = 64;

impl Remote {
    /// Connect to the topology's endpoint. For `"local"`, find (or start) the emulator of
    /// `$SKYPLAN_EMULATOR_DIR` (default: the user's state directory) and use its key.
    pub async fn connect(topology: &Topology) -> Result<Remote> {
        let mut retry = RetryPolicy::default();
        if let Some(n) = topology.provider.max_retries {
            retry.max_attempts = n + 1;
        }
        Self::connect_with(topology, retry, None).await
    }

    /// `emulator_dir` overrides `$SKYPLAN_EMULATOR_DIR` for `endpoint = "local"`.
    pub async fn connect_with(
        topology: &Topology,
        retry: RetryPolicy,
        emulator_dir: Option<&std::path::Path>,
    ) -> Result<Remote> {
        let p = &topology.provider;
        let mut notes = vec![];
        let (endpoint, api_key, sql_ca, identity) = if p.is_local() {
            let dir = skyplan_emulator::resolve_dir(emulator_dir);
            let exe = skyplan_emulator::daemon::skyplan_exe()?;
            let (emu, started) = skyplan_emulator::daemon::start_background(
                &skyplan_emulator::options::ServeOptions::new(dir.clone()),
                &exe,
            )
            .await
            .with_context(|| format!("starting the local emulator in {}", dir.display()))?;
            // Under a latency profile, skyplan's own SQL comes from the topology's first region.
            if let Some(first) = topology.services.values().next() {
                if let Err(e) =
                    skyplan_emulator::daemon::report_client_region(&emu, &first.spec.region).await
                {
                    notes.push(format!("the emulator was not told the client region: {e}"));
                }
            }
            if started {
                notes.push(format!(
                    "started the local emulator in the background (pid {}, {}); it keeps running after this command: `skyplan emulator stop` stops it and its databases",
                    emu.pid,
                    emu.dir.display()
                ));
            }
            let identity = format!("local:{}", emu.instance_id);
            (
                emu.endpoint,
                Secret::new(emu.api_key),
                Some(emu.ca_cert),
                identity,
            )
        } else {
            let key = match std::env::var(&p.api_key_env) {
                Ok(k) if !k.trim().is_empty() => k,
                _ => bail!(
                    "the SkySQL API key is not set: export {}=<your key> (from https://app.skysql.com/user-profile/api-keys/)",
                    p.api_key_env
                ),
            };
            let identity = p.endpoint.trim_end_matches('/').to_string();
            (p.endpoint.clone(), Secret::new(key), None, identity)
        };
        let mut config = ClientConfig::new(endpoint.clone(), api_key);
        config.retry = retry;
        let client = SkysqlClient::new(config)?;
        let mut remote = Remote::new(client, endpoint, identity, sql_ca);
        remote.lost_after = p.lost_after();
        remote.notes = notes;
        Ok(remote)
    }

    /// A remote over a client already made: `identity` names the cloud in the state, `sql_ca`
    /// signs the services' certificates when it is not a public CA.
    pub fn new(
        client: SkysqlClient,
        endpoint: String,
        identity: String,
        sql_ca: Option<PathBuf>,
    ) -> Remote {
        Remote {
            client,
            sql_ca,
            endpoint,
            identity,
            credentials: Mutex::new(HashMap::new()),
            lost: Mutex::new(Default::default()),
            lost_after: std::time::Duration::from_secs(crate::topology::DEFAULT_LOST_AFTER_SECONDS),
            notes: vec![],
            sessions: Default::default(),
            sql_parallelism: DEFAULT_SQL_PARALLELISM,
        }
    }

    /// The service whose credentials work on `key`: after a restore a service accepts its
    /// source's credentials only (and the source may itself have been restored).
    pub fn credentials_owner<'a>(state: &'a State, key: &'a str) -> &'a str {
        let mut k = key;
        for _ in 0..state.resources.services.len() + 1 {
            match state
                .resources
                .services
                .get(k)
                .and_then(|r| r.credentials_from.as_deref())
            {
                Some(from) if from != k => k = from,
                _ => break,
            }
        }
        k
    }

    /// Refresh found service `id` deleted or not answering: credentials come from elsewhere.
    pub async fn mark_lost(&self, id: &str) {
        self.lost.lock().await.insert(id.to_string());
    }

    async fn credentials_of(&self, service_id: &str) -> Result<(String, Secret)> {
        if let Some(c) = self.credentials.lock().await.get(service_id) {
            return Ok(c.clone());
        }
        // A service the API does not answer for is not asked again (each try would wait
        // through the retries), and one ask is bounded by `lost_after` as a whole.
        if self.lost.lock().await.contains(service_id) {
            bail!("the SkySQL API does not answer for service {service_id}: its credentials cannot be read");
        }
        let c = match tokio::time::timeout(self.lost_after, self.client.get_credentials(service_id))
            .await
        {
            Ok(c) => c?,
            Err(_) => {
                self.mark_lost(service_id).await;
                bail!(
                    "the SkySQL API did not answer for service {service_id} within {} s ([provider] lost_after): its credentials cannot be read",
                    self.lost_after.as_secs()
                );
            }
        };
        let pair = (c.username.clone(), Secret::new(c.password.clone()));
        self.credentials
            .lock()
            .await
            .insert(service_id.to_string(), pair.clone());
        Ok(pair)
    }

    /// A SQL connection to service `key` as recorded in `state`.
    pub async fn sql(&self, state: &State, key: &str) -> Result<SqlConn> {
        let target = self.sql_target(state, key).await?;
        Ok(crate::sql::connect(&target).await?)
    }

    /// The refresh's session with service `key` (see [`crate::sql::sessions`]): connected on
    /// first use, shared by every phase of the refresh.
    pub(crate) async fn session(
        &self,
        state: &State,
        key: &str,
    ) -> Result<crate::sql::sessions::Session> {
        self.sessions.get(key, || self.sql(state, key)).await
    }

    /// Look up the credentials of `keys` at the API's bound (`parallelism`), so the SQL reads
    /// that follow, at their own higher bound, find them cached and make no API call. A
    /// failure is not reported here: the read that needs the credentials reports it.
    pub(crate) async fn prefetch_credentials<'a>(
        &self,
        state: &State,
        keys: impl IntoIterator<Item = &'a String>,
        parallelism: usize,
    ) {
        use futures::stream::{self, StreamExt};
        stream::iter(keys)
            .map(|key| async move {
                let _ = self.sql_target(state, key).await;
            })
            .buffer_unordered(parallelism.max(1))
            .collect::<Vec<()>>()
            .await;
    }

    pub async fn sql_target(&self, state: &State, key: &str) -> Result<SqlTarget> {
        let rec = state
            .resources
            .services
            .get(key)
            .with_context(|| format!("service.{key} is not in the state"))?;
        let (Some(host), Some(port)) = (rec.fqdn.clone(), rec.port) else {
            bail!("service.{key} ({}) has no endpoint yet", rec.spec.name);
        };
        let owner = Self::credentials_owner(state, key);
        let owner_id = state
            .resources
            .services
            .get(owner)
            .map(|r| r.id.clone())
            .with_context(|| {
                format!("service.{owner} (credentials of service.{key}) is not in the state")
            })?;
        // The service it was restored from may be lost (deleted, or its region down): then
        // its own credentials, from a live service (a restore makes the source's accounts
        // the target's, and the API reports them for the target).
        let owner_lost = owner != key && self.lost.lock().await.contains(&owner_id);
        let (user, password) = if owner_lost {
            self.credentials_of(&rec.id).await?
        } else {
            let owned = self.credentials_of(&owner_id).await;
            let gave_up = owned.is_err() && self.lost.lock().await.contains(&owner_id);
            match owned {
                Ok(c) => c,
                Err(e)
                    if owner != key
                        && (gave_up
                            || e.downcast_ref::<SkysqlError>().is_some_and(|e| {
                                e.is_not_found() || e.status().is_none_or(|s| s >= 500)
                            })) =>
                {
                    tracing::info!(
                        "service.{owner} does not answer ({e:#}): using service.{key}'s own credentials"
                    );
                    self.mark_lost(&owner_id).await;
                    self.credentials_of(&rec.id).await?
                }
                Err(e) => return Err(e),
            }
        };
        let tls = if rec.spec.ssl_enabled {
            TlsMode::Verified {
                ca_pem_path: self.sql_ca.clone(),
            }
        } else {
            TlsMode::Disabled
        };
        Ok(SqlTarget {
            host,
            port,
            user,
            password,
            tls,
        })
    }
}
