//! Allowlist entries: the one place that knows how SkySQL allow lists spell networks.
//!
//! An entry is an address (`1.2.3.4`, the network `1.2.3.4/32`) or a netblock
//! (`10.0.0.0/24`). Clouds and users write the same entry in different ways (`1.2.3.4` or
//! `1.2.3.4/32`; `10.0.0.1/24` for `10.0.0.0/24`), so entries are compared by [`key`], never
//! as text. Validation (what a topology may list), the plan's diff, the client's idempotent
//! add/delete and the emulator's enforcement all go through [`Cidr`].

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// A parsed allowlist entry, as written (host bits kept: [`Cidr::has_host_bits`] tells).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

impl Cidr {
    /// `"1.2.3.4"` (a /32, or /128), `"1.2.3.0/24"`, IPv4 or IPv6, surrounding blanks ignored.
    /// `None` for anything else.
    pub fn parse(entry: &str) -> Option<Cidr> {
        let entry = entry.trim();
        entry
            .parse::<IpNet>()
            .ok()
            .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
            .map(Cidr)
    }

    /// The network as `ipnet` has it.
    pub fn net(&self) -> IpNet {
        self.0
    }

    /// The network it denotes (host bits cleared): what comparisons use.
    pub fn network(&self) -> Cidr {
        Cidr(self.0.trunc())
    }

    pub fn is_ipv4(&self) -> bool {
        matches!(self.0, IpNet::V4(_))
    }

    /// Written with host bits set (`10.0.0.1/24`): not the network it looks like.
    pub fn has_host_bits(&self) -> bool {
        self.0.trunc() != self.0
    }

    /// The whole internet (a `/0`).
    pub fn is_everything(&self) -> bool {
        self.0.prefix_len() == 0
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.contains(ip)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An entry in canonical form, for comparisons only: the network with its prefix. Text that
/// is no address is compared as written, trimmed.
/// Whether `entries` (valid CIDRs; others are skipped) open a service to the internet at
/// large: one entry of `/1` or wider, or all of them together covering every IPv4 address
/// (`0.0.0.0/1` and `128.0.0.0/1` are the whole internet in two pieces). Overlaps are merged
/// first, so the union is measured, not the sum.
pub fn is_public(entries: &[String]) -> bool {
    let nets: Vec<ipnet::Ipv4Net> = entries
        .iter()
        .filter_map(|e| Cidr::parse(e))
        .filter_map(|c| match c.net() {
            IpNet::V4(n) => Some(n.trunc()),
            IpNet::V6(_) => None,
        })
        .collect();
    if nets.iter().any(|n| n.prefix_len() <= 1) {
        return true;
    }
    let covered: u64 = ipnet::Ipv4Net::aggregate(&nets)
        .iter()
        .map(|n| 1u64 << (32 - u32::from(n.prefix_len())))
        .sum();
    covered >= 1u64 << 32
}

pub fn key(entry: &str) -> String {
    match Cidr::parse(entry) {
        Some(c) => c.network().to_string(),
        None => entry.trim().to_string(),
    }
}

/// Whether two entries denote the same network.
pub fn same(a: &str, b: &str) -> bool {
    key(a) == key(b)
}

/// Whether `list` holds `entry` (compared by [`key`]).
pub fn contains(list: &[String], entry: &str) -> bool {
    let k = key(entry);
    list.iter().any(|e| key(e) == k)
}

/// The entry that admits exactly one address, as skyplan writes it: `ip/32` (an entry that
/// already has a prefix is kept as it is).
pub fn host(ip: &str) -> String {
    if ip.contains('/') {
        ip.to_string()
    } else {
        format!("{ip}/32")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_internet_in_pieces_is_public() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_public(&v(&["0.0.0.0/1", "128.0.0.0/1"])));
        assert!(is_public(&v(&["0.0.0.0/0"])));
        assert!(is_public(&v(&["128.0.0.0/1"])));
        let quarters = v(&["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"]);
        assert!(is_public(&quarters));
        assert!(!is_public(&quarters[..3]));
        assert!(!is_public(&v(&[
            "10.0.0.0/8",
            "10.0.0.0/8",
            "192.168.0.0/16"
        ])));
    }

    #[test]
    fn the_same_entry_written_differently_is_the_same() {
        assert!(same("1.2.3.4", "1.2.3.4/32"));
        assert!(same(" 10.0.0.1/24", "10.0.0.0/24"));
        assert!(!same("10.0.0.0/24", "10.0.0.0/25"));
        assert!(same("not an address ", "not an address"));
        assert!(contains(&["1.2.3.4/32".into()], "1.2.3.4"));
        assert_eq!(key("1.2.3.4"), "1.2.3.4/32");
        assert_eq!(host("1.2.3.4"), "1.2.3.4/32");
        assert_eq!(host("1.2.3.0/24"), "1.2.3.0/24");
    }

    #[test]
    fn parsing_says_what_an_entry_is() {
        let c = Cidr::parse("10.0.0.1/24").unwrap();
        assert!(c.has_host_bits() && c.is_ipv4() && !c.is_everything());
        assert_eq!(c.network().to_string(), "10.0.0.0/24");
        assert!(c.contains(&"10.0.0.200".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().is_everything());
        assert!(!Cidr::parse("::1").unwrap().is_ipv4());
        assert_eq!(Cidr::parse("nope"), None);
    }
}
