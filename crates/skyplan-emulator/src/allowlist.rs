//! Allowlist entries: parsing, matching and normalised comparison.
//!
//! Entries are kept as the client wrote them (`"1.2.3.4"` stays `"1.2.3.4"`), so what the
//! engine reads back equals what it wrote; duplicates and deletions compare the parsed network.

use ipnet::IpNet;
use std::net::IpAddr;

use skyplan_api::cidr::Cidr;
use skyplan_api::types::AllowListItem;

/// Parses `"1.2.3.4"` (a /32) or `"1.2.3.0/24"` ([`Cidr`], shared with skyplan).
pub(crate) fn parse(entry: &str) -> Option<IpNet> {
    Cidr::parse(entry).map(|c| c.net())
}

/// Checks that an entry is a valid IPv4 address or netblock, as the cloud requires.
pub(crate) fn validate(entry: &str) -> Result<IpNet, String> {
    match parse(entry) {
        Some(net @ IpNet::V4(_)) => Ok(net),
        Some(IpNet::V6(_)) => Err(format!("{entry:?} is IPv6; only IPv4 is supported")),
        None => Err(format!(
            "{entry:?} is not an IPv4 address or netblock (e.g. 1.2.3.4/32)"
        )),
    }
}

/// Is `ip` inside any entry of `list`?
pub(crate) fn allows(list: &[AllowListItem], ip: IpAddr) -> bool {
    list.iter()
        .filter_map(|item| parse(&item.ip))
        .any(|net| net.contains(&ip))
}

/// The index of the entry denoting the same network as `entry`.
pub(crate) fn position(list: &[AllowListItem], entry: &IpNet) -> Option<usize> {
    list.iter()
        .position(|item| parse(&item.ip).as_ref() == Some(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(ip: &str) -> AllowListItem {
        AllowListItem {
            ip: ip.into(),
            comment: None,
        }
    }

    #[test]
    fn matches_addresses_and_netblocks() {
        let list = [item("127.0.0.1"), item("10.1.0.0/16")];
        assert!(allows(&list, "127.0.0.1".parse().unwrap()));
        assert!(allows(&list, "10.1.200.3".parse().unwrap()));
        assert!(!allows(&list, "127.0.1.1".parse().unwrap()));
        assert!(!allows(&[], "127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn same_network_in_another_spelling_is_found() {
        let list = [item("127.0.1.1")];
        assert_eq!(position(&list, &parse("127.0.1.1/32").unwrap()), Some(0));
    }

    #[test]
    fn rejects_garbage_and_ipv6() {
        assert!(validate("1.2.3.4/33").is_err());
        assert!(validate("nonsense").is_err());
        assert!(validate("::1/128").is_err());
        assert!(validate("0.0.0.0/0").is_ok());
    }
}
