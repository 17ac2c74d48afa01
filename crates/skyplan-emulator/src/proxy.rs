//! The allowlist, really enforced: each service's public `readwrite` port is a TCP proxy.
//!
//! # Mechanism
//!
//! An emulated service's `mariadbd` listens on a private port on 127.0.0.1. The port the API
//! publishes (`endpoints[0].ports[readwrite]`) belongs to a small TCP proxy inside the emulator
//! that forwards to that private port. On every accepted connection the proxy first works out
//! the connection's *source IP*, as the cloud would see it:
//!
//! 1. Everything runs on one machine, so the peer address is always loopback. The kernel still
//!    knows which process owns the client socket: the proxy finds the socket whose local address
//!    is the peer's address:port in `/proc/net/tcp` and `/proc/net/tcp6` (→ its inode), then
//!    looks for `socket:[inode]` under `/proc/<pid>/fd` of each emulated service's `mariadbd`
//!    (see [`super::peer`]). Those servers are found afresh for every connection, by their
//!    command line (`--defaults-file=<dir>/services/<service id>/my.cnf`, see
//!    `Instances::pids`), so a replica is recognised from its first connection on, made while
//!    its start is still running.
//! 2. If the client is an emulated service's `mariadbd` (a replica's IO thread), the source IP is
//!    that service's outbound IP (`outbound_ips[0]`, 127.0.1.N). Otherwise the client is the
//!    operator (the `mariadb` CLI, skyplan itself) and the source IP is the peer's own address,
//!    127.0.0.1 (`::1` counts as 127.0.0.1).
//! 3. The connection passes only if that IP lies inside one of the target service's allowlist
//!    entries; otherwise it is closed at once, before the server greeting. A client sees "Lost
//!    connection … reading initial communication packet"; a replica's IO thread retries and
//!    `sky.replication_status()` shows the connect error in `Last_IO_Error`.
//! 4. A passing connection is forwarded byte for byte (TLS is negotiated in-band, end to end
//!    with `mariadbd`). The proxy binds its upstream socket to the source IP (all of 127/8 is
//!    local on Linux), so `mariadbd` also sees the replica's outbound IP as the client host.
//!
//! 5. With a latency profile ([`super::latency`]), each chunk is forwarded half the round trip
//!    between the two regions after it was read, in each direction: the IO thread of a replica
//!    pays its source's distance, the operator the distance from the client region. Chunks
//!    keep their order and are pipelined, so the delay costs time, not throughput.
//!
//! The allowlist is checked when a connection opens; open connections survive an allowlist
//! change, as on most clouds. The private port is reachable by anyone on the machine who looks
//! for it: the emulator enforces the allowlist on the published endpoint only.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// The verdict on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Forward to `upstream`, binding the upstream socket to `source_ip` when it is loopback,
    /// each chunk `delay` after it was read (in both directions).
    Allow {
        upstream: SocketAddr,
        source_ip: IpAddr,
        delay: Duration,
    },
    /// Close the connection; `reason` goes to the emulator log.
    Deny { reason: String },
}

/// Decides the fate of connections to a service's endpoint.
pub(crate) trait Gate: Send + Sync + 'static {
    fn decide(&self, service_id: &str, listen: SocketAddr, peer: SocketAddr) -> Decision;
}

/// A running proxy. [`ProxyHandle::stop`] closes its listeners and connections and returns once
/// they are closed; dropping it starts the same shutdown without waiting for it.
pub(crate) struct ProxyHandle {
    /// The port it listens on (the tests connect to it; the emulator knows it already).
    #[cfg(test)]
    port: u16,
    /// Dropped to stop the proxy.
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ProxyHandle {
    /// Stops the proxy and waits until its listening sockets are closed, so that a new proxy
    /// (an emulator restarted on the same directory) can bind the same port at once. Aborting
    /// the task alone would close them only whenever the runtime next got to it.
    pub(crate) async fn stop(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The listeners of one endpoint: 127.0.0.1:`preferred` (any free port when 0 or taken), plus
/// [::1] on the same port when it is free, because clients resolving "localhost" may try IPv6
/// first.
pub(crate) async fn bind(preferred: u16) -> io::Result<Vec<TcpListener>> {
    let v4 = match preferred {
        0 => TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?,
        port => match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            Ok(l) => l,
            Err(_) => TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?,
        },
    };
    let port = v4.local_addr()?.port();
    let mut listeners = vec![v4];
    if let Ok(v6) = TcpListener::bind((Ipv6Addr::LOCALHOST, port)).await {
        listeners.push(v6);
    }
    Ok(listeners)
}

/// Serves `listeners` for `service_id`, asking `gate` about every connection.
pub(crate) fn spawn(
    listeners: Vec<TcpListener>,
    service_id: String,
    gate: Arc<dyn Gate>,
) -> ProxyHandle {
    #[cfg(test)]
    let port = listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port())
        .unwrap_or(0);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Accept loops (each owning its listener and its connections) live in this set.
        let (closing, closed) = tokio::sync::watch::channel(false);
        let mut tasks = JoinSet::new();
        for listener in listeners {
            let (service_id, gate) = (service_id.clone(), gate.clone());
            tasks.spawn(accept_loop(listener, service_id, gate, closed.clone()));
        }
        tokio::select! {
            // Stop asked, or the handle dropped.
            _ = stopped => {}
            () = async { while tasks.join_next().await.is_some() {} } => {}
        }
        // Each accept loop closes its listener and its connections, then ends: once they
        // have, the port is free (an abort would free it only whenever the runtime got to it).
        let _ = closing.send(true);
        while tasks.join_next().await.is_some() {}
    });
    ProxyHandle {
        #[cfg(test)]
        port,
        stop: Some(stop),
        task: Some(task),
    }
}

async fn accept_loop(
    listener: TcpListener,
    service_id: String,
    gate: Arc<dyn Gate>,
    mut closed: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(listen) = listener.local_addr() else {
        return;
    };
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // Only `true` is ever sent; an error means the proxy task is gone: stop too.
            _ = closed.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (service_id, gate) = (service_id.clone(), gate.clone());
                    connections.spawn(handle(stream, listen, peer, service_id, gate));
                }
                Err(e) => {
                    tracing::warn!("proxy for {service_id} on {listen}: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn handle(
    mut client: TcpStream,
    listen: SocketAddr,
    peer: SocketAddr,
    service_id: String,
    gate: Arc<dyn Gate>,
) {
    // The /proc scan reads files: keep it off the async workers.
    let id = service_id.clone();
    let decision = tokio::task::spawn_blocking(move || gate.decide(&id, listen, peer)).await;
    let (upstream, source_ip, delay) = match decision {
        Ok(Decision::Allow {
            upstream,
            source_ip,
            delay,
        }) => (upstream, source_ip, delay),
        Ok(Decision::Deny { reason }) => {
            tracing::info!("refused connection to {service_id} from {peer}: {reason}");
            return;
        }
        Err(e) => {
            tracing::warn!("deciding on a connection to {service_id}: {e}");
            return;
        }
    };
    let mut server = match connect_from(source_ip, upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!("connection to {service_id}: upstream {upstream} unreachable: {e}");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    if delay.is_zero() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        return;
    }
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        delayed_copy(client_read, server_write, delay),
        delayed_copy(server_read, client_write, delay),
    );
}

/// Chunks in flight on one direction of a delayed connection: enough for a WAN's
/// bandwidth-delay product at the chunk size below, small enough to bound the memory.
const DELAYED_CHUNKS: usize = 256;

/// Copies `from` to `to`, each chunk `delay` after it was read, in order; then shuts `to` down
/// (as `copy_bidirectional` does on end of file). The reader does not wait for the writer:
/// a stream of chunks is delayed as a whole, not chunk after chunk.
async fn delayed_copy(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    delay: Duration,
) {
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(DELAYED_CHUNKS);
    let read = async move {
        loop {
            let mut buf = vec![0u8; 16 * 1024];
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.truncate(n);
                    let due = tokio::time::Instant::now() + delay;
                    if tx.send((due, buf)).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let write = async move {
        while let Some((due, buf)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&buf).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

/// Connects to `upstream` from `source_ip` when that is a loopback IPv4 address other than
/// the default, so the server sees the emulated source; falls back to an unbound socket.
async fn connect_from(source_ip: IpAddr, upstream: SocketAddr) -> io::Result<TcpStream> {
    if let IpAddr::V4(v4) = source_ip {
        if v4.is_loopback() && v4 != Ipv4Addr::LOCALHOST && upstream.is_ipv4() {
            let socket = TcpSocket::new_v4()?;
            if socket.bind(SocketAddr::new(source_ip, 0)).is_ok() {
                return socket.connect(upstream).await;
            }
        }
    }
    TcpStream::connect(upstream).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Allows only connections whose service id is "open"; reports the source IP it chose.
    struct TestGate {
        upstream: SocketAddr,
        delay: Duration,
    }

    impl Gate for TestGate {
        fn decide(&self, service_id: &str, _listen: SocketAddr, _peer: SocketAddr) -> Decision {
            if service_id == "open" {
                Decision::Allow {
                    upstream: self.upstream,
                    source_ip: "127.0.1.9".parse().unwrap(),
                    delay: self.delay,
                }
            } else {
                Decision::Deny {
                    reason: "not allowed".into(),
                }
            }
        }
    }

    /// An upstream that writes back the address it saw the client come from.
    async fn reporting_upstream() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, peer)) = listener.accept().await {
                let _ = s.write_all(peer.ip().to_string().as_bytes()).await;
            }
        });
        addr
    }

    async fn read_all_from(port: u16) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    #[tokio::test]
    async fn forwards_allowed_connections_from_the_emulated_source_ip() {
        let gate = Arc::new(TestGate {
            upstream: reporting_upstream().await,
            delay: Duration::ZERO,
        });
        let open = spawn(bind(0).await.unwrap(), "open".into(), gate.clone());
        assert_eq!(read_all_from(open.port).await, "127.0.1.9");
    }

    #[tokio::test]
    async fn closes_refused_connections_at_once() {
        let gate = Arc::new(TestGate {
            upstream: reporting_upstream().await,
            delay: Duration::ZERO,
        });
        let closed = spawn(bind(0).await.unwrap(), "closed".into(), gate);
        assert_eq!(read_all_from(closed.port).await, "");
    }

    #[tokio::test]
    async fn dropping_the_handle_stops_listening() {
        let gate = Arc::new(TestGate {
            upstream: reporting_upstream().await,
            delay: Duration::ZERO,
        });
        let handle = spawn(bind(0).await.unwrap(), "open".into(), gate);
        let port = handle.port;
        drop(handle);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    }

    /// A restarted emulator binds its services' ports again right after the old one stopped:
    /// `stop` returns only once the port is free (seen in CI: with an abort alone, the new bind
    /// could come first and move the endpoint to another port).
    #[tokio::test]
    async fn the_port_is_free_when_stop_returns() {
        let gate = Arc::new(TestGate {
            upstream: reporting_upstream().await,
            delay: Duration::ZERO,
        });
        for _ in 0..20 {
            let handle = spawn(bind(0).await.unwrap(), "open".into(), gate.clone());
            let port = handle.port;
            // A connection in flight too, as a replica's IO thread would hold one.
            let _client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            handle.stop().await;
            let again = bind(port).await.unwrap();
            assert_eq!(again[0].local_addr().unwrap().port(), port);
        }
    }
    /// An upstream that echoes every byte back.
    async fn echo_upstream() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.into_split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// A round trip through a proxy delaying 40 ms each way takes 80 ms or a little more, and
    /// a burst of 50 exchanges written at once takes about one round trip, not 50: the delay
    /// costs latency, not throughput.
    #[tokio::test]
    async fn a_delayed_connection_pays_the_round_trip_once_per_exchange() {
        let gate = Arc::new(TestGate {
            upstream: echo_upstream().await,
            delay: Duration::from_millis(40),
        });
        let proxy = spawn(bind(0).await.unwrap(), "open".into(), gate);
        let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0u8; 4];
        let t = std::time::Instant::now();
        s.write_all(b"ping").await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
        let rtt = t.elapsed();
        assert_eq!(&buf, b"ping");
        assert!(rtt >= Duration::from_millis(80), "{rtt:?}");
        assert!(rtt < Duration::from_millis(300), "{rtt:?}");
        let t = std::time::Instant::now();
        for _ in 0..50 {
            s.write_all(b"ping").await.unwrap();
        }
        let mut all = vec![0u8; 200];
        s.read_exact(&mut all).await.unwrap();
        let burst = t.elapsed();
        assert!(burst >= Duration::from_millis(80), "{burst:?}");
        assert!(
            burst < Duration::from_millis(400),
            "{burst:?}: chunks were not pipelined"
        );
        // The end of the stream is forwarded too: the upstream sees EOF, the client then.
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}
