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
    /// Where the operator sits under a latency profile when `--client-region` did not say:
    /// the first region of the topology being applied, as skyplan reports it
    /// (`PUT /emulator/v1/client-region`); until then, the oldest service's region.
    client_region: Mutex<Option<String>>,
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
            client_region: Mutex::new(None),
        })
    }

    /// The operator's region: `--client-region`, else what skyplan reported, else None (the
    /// oldest service's region is used).
    pub fn client_region(&self) -> Option<String> {
        self.opts.latency.client_region.clone().or_else(|| {
            self.client_region
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        })
    }

    /// The region skyplan applies a topology from (`PUT /emulator/v1/client-region`); a
    /// `--client-region` given at start wins. Returns the region in force.
    pub fn report_client_region(&self, region: &str) -> Option<String> {
        if self.opts.latency.client_region.is_none() {
            *self.client_region.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(region.to_string());
        }
        self.client_region()
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

    /// Stops the proxy of `service_id`; its endpoint's port is closed when this returns.
    pub async fn stop_proxy(&self, service_id: &str) {
        let handle = self
            .proxies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(service_id);
        if let Some(handle) = handle {
            handle.stop().await;
        }
    }

    /// Stops every proxy; their ports are closed when this returns.
    pub async fn stop_all_proxies(&self) {
        let handles: Vec<_> = self
            .proxies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, h)| h)
            .collect();
        for handle in handles {
            handle.stop().await;
        }
    }

    /// Starts stopping every proxy without waiting (for `Drop`, which cannot wait).
    pub fn drop_all_proxies(&self) {
        self.proxies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The decision behind every connection to a service endpoint; see [`super::proxy`].
    fn decide(&self, service_id: &str, listen: SocketAddr, peer_addr: SocketAddr) -> Decision {
        let target = self.store.read(|s| {
            s.service(service_id).map(|r| {
                (
                    r.allow_list.clone(),
                    r.db_port,
                    r.outage.is_some(),
                    // Whose mariadbd serves it (its own, or the shared one's).
                    r.shared_host.clone().unwrap_or_else(|| r.id.clone()),
                )
            })
        });
        let Some((allow_list, db_port, in_outage, server)) = target else {
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
        // One look at the processes answers both questions: is the target's server up, and is
        // the client another service's server (a replica's IO thread)? It must be a look at
        // the processes, not at what this emulator has recorded: a replica's mariadbd connects
        // as soon as it is up, before its start has finished, and that connection must come
        // from its outbound IP, or the primary refuses its grant (user@outbound IP) with 1045.
        let running = self.instances.pids();
        if self.instances.is_api_only() || !running.iter().any(|(id, _)| *id == server) {
            return Decision::Deny {
                reason: "its database is not running".into(),
            };
        }
        let owner = peer::owner_of_connection(peer_addr, listen, &running);
        let (source_ip, who) = match &owner {
            Some(owner) => {
                let ip = self.store.read(|s| {
                    s.service(owner)
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
                delay: self.one_way_delay(service_id, owner.as_deref()),
            }
        } else {
            Decision::Deny {
                reason: format!("source {source_ip} ({who}) is not in its allowlist"),
            }
        }
    }
}

impl App {
    /// Half the round trip between the client and `target` under the latency profile: the
    /// client is the service `from` (a replica's IO thread), or the operator, who sits in the
    /// client region (`--client-region`, else the region of the oldest service: for one
    /// topology, the first region skyplan created a service in).
    fn one_way_delay(&self, target: &str, from: Option<&str>) -> std::time::Duration {
        let latency = &self.opts.latency;
        if latency.profile == super::latency::Profile::None {
            return std::time::Duration::ZERO;
        }
        self.store
            .read(|s| {
                let region = |id: &str| s.service(id).map(|r| r.region.clone());
                let to = region(target)?;
                let from = match from {
                    Some(service) => region(service)?,
                    None => self
                        .client_region()
                        .or_else(|| s.services.first().map(|r| r.region.clone()))?,
                };
                Some(latency.one_way(&from, &to))
            })
            .unwrap_or_default()
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
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// RFC 3339 UTC time, as the backup API writes times.
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mariadb::Binaries;
    use crate::store::ServiceRecord;
    use std::io::Read;
    use std::net::TcpListener;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};

    /// A stand-in for a service's mariadbd that the emulator never started nor recorded: bash
    /// under the name `mariadbd`, with the service's `--defaults-file` on its command line (as
    /// every real start has), holding a TCP connection to `port` open, as a replica's IO thread
    /// does. Killed on drop.
    struct FakeServer(Child);

    impl FakeServer {
        fn connect(program: &Path, defaults_file: &Path, port: u16) -> FakeServer {
            let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port}; read -t 60 -u 3 line");
            let child = Command::new(program)
                .arg("-c")
                .arg(script)
                .arg("mariadbd")
                .arg(format!("--defaults-file={}", defaults_file.display()))
                .stdin(Stdio::null())
                .spawn()
                .expect("bash runs");
            FakeServer(child)
        }
    }

    impl Drop for FakeServer {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// The next connection to `endpoint`; panics after 10 s rather than hang.
    fn accept(endpoint: &TcpListener) -> (std::net::TcpStream, SocketAddr) {
        endpoint.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match endpoint.accept() {
                Ok((stream, peer)) => {
                    stream.set_nonblocking(false).unwrap();
                    return (stream, peer);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "nothing connected");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    fn service(seq: u64, id: &str, allow: &[&str]) -> ServiceRecord {
        let allow_list: Vec<_> = allow
            .iter()
            .map(|ip| serde_json::json!({ "ip": ip }))
            .collect();
        serde_json::from_value(serde_json::json!({
            "seq": seq, "id": id, "name": id, "status": "ready", "provider": "gcp",
            "region": "us-east4", "service_type": "transactional", "topology": "es-replica",
            "architecture": "amd64", "version": "11.4", "size": "sky-2x8", "nodes": 1,
            "storage": {"size": 100}, "ssl_enabled": false, "tags": null, "created_on": 0,
            "updated_on": 0, "public_port": 1, "db_port": 2, "server_id": 1000 + seq,
            "gtid_domain_id": seq, "outbound_ip": format!("127.0.1.{seq}"),
            "allow_list": allow_list, "username": id, "password": "pw"
        }))
        .unwrap()
    }

    /// The first connection of a freshly started replica comes from its outbound IP even though
    /// the emulator has recorded nothing about its server yet (it is not even the one that
    /// started it): the pid it would have recorded is not what identifies it. Before, a server
    /// was known only once its start had finished, so this connection came from the operator's
    /// 127.0.0.1 and the primary answered the replication user with 1045.
    #[test]
    fn a_replica_is_recognised_before_its_start_has_finished() {
        let bash = ["/bin/bash", "/usr/bin/bash"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
            .expect("bash");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir(dir.join("bin")).unwrap();
        let mariadbd = dir.join("bin").join("mariadbd");
        std::os::unix::fs::symlink(bash, &mariadbd).unwrap();
        let binaries = Binaries {
            mariadbd: mariadbd.clone(),
            install_db: "/bin/false".into(),
            backup: "/bin/false".into(),
        };
        let store = StoreFile::open(dir).unwrap();
        store
            .update(|s| {
                s.services
                    .push(service(1, "primary", &["127.0.0.1/32", "127.0.1.2/32"]));
                s.services.push(service(2, "replica", &[]));
                Ok(())
            })
            .unwrap();
        let app = App::new(
            ServeOptions::new(dir.to_path_buf()),
            "key".into(),
            store,
            Instances::with_binaries(dir, binaries).unwrap(),
            ReqLog::open(dir).unwrap(),
        );
        let services = dir.join("services");
        let endpoint = TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = endpoint.local_addr().unwrap();
        let port = listen.port();

        let _primary = FakeServer::connect(&mariadbd, &services.join("primary/my.cnf"), port);
        let (_p_conn, primary_peer) = accept(&endpoint);
        let replica = FakeServer::connect(&mariadbd, &services.join("replica/my.cnf"), port);
        let (mut r_conn, replica_peer) = accept(&endpoint);
        let operator = std::net::TcpStream::connect(listen).unwrap();
        let (_o_conn, operator_peer) = accept(&endpoint);

        let source = |peer| match app.decide("primary", listen, peer) {
            Decision::Allow { source_ip, .. } => source_ip.to_string(),
            Decision::Deny { reason } => format!("denied: {reason}"),
        };
        assert_eq!(
            source(replica_peer),
            "127.0.1.2",
            "the replica's outbound IP"
        );
        // The primary's own server is recognised too (and is not in its own allowlist).
        assert!(source(primary_peer).contains("127.0.1.1 (service primary)"));
        assert_eq!(
            source(operator_peer),
            "127.0.0.1",
            "anyone else is the operator"
        );
        drop(operator);
        let mut ids: Vec<String> = app.instances.pids().into_iter().map(|(id, _)| id).collect();
        ids.sort();
        assert_eq!(ids, ["primary", "replica"]);
        assert!(app.instances.is_running("replica"));

        // Its server gone, a service is not running and its endpoint refuses.
        drop(replica);
        let mut rest = Vec::new();
        let _ = r_conn.read_to_end(&mut rest);
        assert!(!app.instances.is_running("replica"));
        assert!(matches!(
            app.decide("replica", listen, operator_peer),
            Decision::Deny { .. }
        ));
    }
}
