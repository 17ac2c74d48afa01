//! Who is on the other end of a loopback connection?
//!
//! Every emulated service and the operator connect from the same machine, so the peer address
//! alone says nothing. The kernel knows more: `/proc/net/tcp` and `/proc/net/tcp6` list every
//! TCP socket with its local and remote address and its inode, and `/proc/<pid>/fd/*` links to
//! `socket:[<inode>]` for each socket a process holds. The client end of an accepted connection
//! is the socket whose local address is the peer address and whose remote address is the
//! listener's; the process holding that inode is the client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Returns the key of the candidate process that owns the client end of the connection from
/// `peer` to `listen`, or `None` when none of them does (or /proc cannot say).
pub(crate) fn owner_of_connection<K: Clone>(
    peer: SocketAddr,
    listen: SocketAddr,
    candidates: &[(K, u32)],
) -> Option<K> {
    if candidates.is_empty() {
        return None;
    }
    let inode = tcp_socket_inode(peer, listen)?;
    let pid = pid_with_socket(inode, candidates.iter().map(|(_, pid)| *pid))?;
    candidates
        .iter()
        .find(|(_, p)| *p == pid)
        .map(|(k, _)| k.clone())
}

/// The inode of the TCP socket whose local end is `local` and whose remote end is `remote`.
pub(crate) fn tcp_socket_inode(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let (local, remote) = (canonical(local), canonical(remote));
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let row = parse_row(line)?;
                (row.local == local && row.remote == remote && row.inode != 0).then_some(row.inode)
            })
        })
}

/// The first of `pids` holding a file descriptor on socket `inode`.
pub(crate) fn pid_with_socket(inode: u64, pids: impl IntoIterator<Item = u32>) -> Option<u32> {
    let target = format!("socket:[{inode}]");
    pids.into_iter().find(|pid| {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .map(|link| link.as_os_str() == target.as_str())
                .unwrap_or(false)
        })
    })
}

struct Row {
    local: SocketAddr,
    remote: SocketAddr,
    inode: u64,
}

/// One line of /proc/net/tcp{,6}: `sl local rem st tx:rx tr:when retrnsmt uid timeout inode …`.
fn parse_row(line: &str) -> Option<Row> {
    let cols: Vec<&str> = line.split_whitespace().collect();
    if cols.len() < 10 {
        return None;
    }
    Some(Row {
        local: canonical(parse_addr(cols[1])?),
        remote: canonical(parse_addr(cols[2])?),
        inode: cols[9].parse().ok()?,
    })
}

/// `0100007F:0CEA` (IPv4) or 32 hex digits + port (IPv6). The kernel prints each 32-bit word
/// of the address as an integer in host byte order, so the word's native-endian bytes are the
/// address bytes.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(addr)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(&addr[i * 8..i * 8 + 8])?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`, used by dual-stack sockets) as plain IPv4,
/// so both tables compare alike.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_addresses() {
        assert_eq!(
            parse_addr("0100007F:0CEA"),
            Some("127.0.0.1:3306".parse().unwrap())
        );
        assert_eq!(
            parse_addr("00000000000000000000000001000000:0050"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            parse_addr("0000000000000000FFFF00000100007F:0050").map(canonical),
            Some("127.0.0.1:80".parse().unwrap())
        );
    }

    #[test]
    fn finds_this_process_as_the_owner_of_its_own_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(listen).unwrap();
        let (_server_end, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let me = std::process::id();
        let owner = owner_of_connection(peer, listen, &[("other", u32::MAX - 1), ("me", me)]);
        assert_eq!(owner, Some("me"));
        assert_eq!(
            owner_of_connection(peer, listen, &[("other", u32::MAX - 1)]),
            None
        );
    }
}
