//! Ports for the services' `mariadbd`s. A port is picked free and bound by `mariadbd` moments
//! later, so something else can take it in between. Picking from the kernel's ephemeral range
//! (what binding port 0 does) loses that race easily: every outgoing connection on the machine
//! (replicas, HTTP clients, other tests) draws its source port from the same range. So ports
//! come from just below that range, and a create whose port was taken anyway starts again on
//! another one (see `ops::on_a_free_port`), as does a restart after the port was taken while
//! the database was down.

use rand::Rng;

/// Where the kernel's ephemeral range starts (`ip_local_port_range`), 32768 if unreadable.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A port on 127.0.0.1 free right now, below the ephemeral range when possible.
pub(crate) fn db_port() -> std::io::Result<u16> {
    let top = ephemeral_start();
    let bottom = top.saturating_sub(12_000).max(10_000);
    if bottom < top {
        let mut rng = rand::thread_rng();
        for _ in 0..64 {
            let port = rng.gen_range(bottom..top);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Whether a failed start says the port was taken (MariaDB's "Bind on TCP/IP port … 98").
pub(crate) fn port_was_taken(e: &crate::mariadb::MariadbError) -> bool {
    let text = e.to_string();
    text.contains("Address already in use") || text.contains("Bind on TCP/IP port")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_port_is_free_and_below_the_ephemeral_range() {
        let port = super::db_port().unwrap();
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        assert!(port < super::ephemeral_start(), "{port}");
    }
}
