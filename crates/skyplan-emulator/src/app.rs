//! The shared state of a running emulator and the allowlist gate its proxies consult.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use tokio::task::JoinSet;

use super::faults::Faults;
use super::instances::Instances;
use super::options::ServeOptions;
use super::proxy::{self, Decision, Gate, ProxyHandle};
use super::reqlog::ReqLog;
use super::store::StoreFile;
use super::{allowlist, peer};

pub struct App {
    pub dir: PathBuf,
    pub opts: ServeOptions,
    /// Compared with `X-API-Key`; never logged.
    pub api_key: String,
    pub store: StoreFile,
    pub instances: Instances,
    pub faults: Faults,
    pub reqlog: ReqLog,
    /// Serialises starting and ending emulated outages (see [`super::outage`]).
    pub outage_lock: tokio::sync::Mutex<()>,
    proxies: Mutex<HashMap<String, ProxyHandle>>,
    /// Long operations in flight; aborted on shutdown (a restart recovers them from the store).
    ops: Mutex<JoinSet<()>>,
    /// Handed to proxies, which must not keep the app alive.
    myself: Weak<App>,
}

impl App {
    pub fn new(
        opts: ServeOptions,
        api_key: String,
        store: StoreFile,
        instances: Instances,
        reqlog: ReqLog,
    ) -> Arc<App> {
        Arc::new_cyclic(|myself| App {
            dir: opts.dir.clone(),
            faults: Faults::new(opts.fault_rate, opts.fault_seed),
            opts,
            api_key,
            store,
            instances,
            reqlog,
            outage_lock: tokio::sync::Mutex::new(()),
            proxies: Mutex::new(HashMap::new()),
            ops: Mutex::new(JoinSet::new()),
            myself: myself.clone(),
        })
    }

    /// Runs a long operation in the background.
    pub fn spawn_op(&self, op: impl Future<Output = ()> + Send + 'static) {
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        while ops.try_join_next().is_some() {}
        ops.spawn(op);
    }

    /// Aborts the operations in flight.
    pub fn abort_ops(&self) {
        self.ops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort_all();
    }

    /// Starts the allowlist proxy of `service_id` on `listeners`.
    pub fn start_proxy(&self, service_id: &str, listeners: Vec<tokio::net::TcpListener>) {
        let gate: Arc<dyn Gate> = Arc::new(AppGate(self.myself.clone()));
        let handle = proxy::spawn(listeners, service_id.to_string(), gate);
        self.proxies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(service_id.to_string(), handle);
    }

    /// Stops the proxy of `service_id` (its endpoint stops answering at once).
    pub fn stop_proxy(&self, service_id: &str) {
        self.proxies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(service_id);
    }

    pub fn stop_all_proxies(&self) {
        self.proxies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The decision behind every connection to a service endpoint; see [`super::proxy`].
    fn decide(&self, service_id: &str, listen: SocketAddr, peer_addr: SocketAddr) -> Decision {
        let target = self.store.read(|s| {
            s.service(service_id)
                .map(|r| (r.allow_list.clone(), r.db_port, r.outage.is_some()))
        });
        let Some((allow_list, db_port, in_outage)) = target else {
            return Decision::Deny {
                reason: "the service no longer exists".into(),
            };
        };
        // The endpoint keeps listening during an outage, so its port stays the service's.
        if in_outage {
            return Decision::Deny {
                reason: "the service is in an emulated region outage".into(),
            };
        }
        if !self.instances.is_running(service_id) || self.instances.is_api_only() {
            return Decision::Deny {
                reason: "its database is not running".into(),
            };
        }
        let candidates = self.instances.pids();
        let owner = peer::owner_of_connection(peer_addr, listen, &candidates);
        let (source_ip, who) = match owner {
            Some(owner) => {
                let ip = self.store.read(|s| {
                    s.service(&owner)
                        .and_then(|r| r.outbound_ip.parse::<IpAddr>().ok())
                });
                match ip {
                    Some(ip) => (ip, format!("service {owner}")),
                    None => (operator_ip(peer_addr), "the operator".to_string()),
                }
            }
            None => (operator_ip(peer_addr), "the operator".to_string()),
        };
        if allowlist::allows(&allow_list, source_ip) {
            Decision::Allow {
                upstream: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), db_port),
                source_ip,
            }
        } else {
            Decision::Deny {
                reason: format!("source {source_ip} ({who}) is not in its allowlist"),
            }
        }
    }
}

/// The operator's source IP: the peer's own address, with IPv6 loopback counted as 127.0.0.1.
fn operator_ip(peer_addr: SocketAddr) -> IpAddr {
    match peer::canonical(peer_addr).ip() {
        IpAddr::V6(v6) if v6.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    }
}

struct AppGate(Weak<App>);

impl Gate for AppGate {
    fn decide(&self, service_id: &str, listen: SocketAddr, peer_addr: SocketAddr) -> Decision {
        match self.0.upgrade() {
            Some(app) => app.decide(service_id, listen, peer_addr),
            None => Decision::Deny {
                reason: "the emulator is shutting down".into(),
            },
        }
    }
}

/// Unix time in seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// RFC 3339 UTC time, as the backup API writes times.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
