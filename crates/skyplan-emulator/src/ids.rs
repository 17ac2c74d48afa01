//! Identifiers and generated secrets, shaped like SkySQL's.

use rand::distributions::Alphanumeric;
use rand::Rng;
use std::net::Ipv4Addr;

/// A service id like SkySQL's: `dbpgf` followed by 8 digits (uniqueness is the caller's check).
pub(crate) fn service_id() -> String {
    format!(
        "dbpgf{:08}",
        rand::thread_rng().gen_range(0..100_000_000u32)
    )
}

/// A custom configuration's id, shaped like a service's: `cfg` followed by 8 digits
/// (uniqueness is the caller's check).
pub(crate) fn config_id() -> String {
    format!("cfg{:08}", rand::thread_rng().gen_range(0..100_000_000u32))
}

/// An opaque 32-hex-digit id (backups, trace ids).
pub(crate) fn hex_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A random alphanumeric secret (service passwords, API keys): no characters a shell or a
/// connection URL would need to quote.
pub(crate) fn secret(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The outbound IP of the `seq`-th service (1-based): 127.0.1.1, 127.0.1.2, … 127.0.1.254,
/// 127.0.2.1, … All of 127.0.0.0/8 is loopback on Linux, so the proxy can really bind these as
/// source addresses; 127.0.0.x is left to the operator.
pub(crate) fn outbound_ip(seq: u64) -> Option<Ipv4Addr> {
    let k = seq.checked_sub(1)?;
    let third = 1 + k / 254;
    let fourth = 1 + k % 254;
    (third <= 255).then(|| Ipv4Addr::new(127, 0, third as u8, fourth as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ids_look_like_skysql() {
        let id = service_id();
        assert_eq!(id.len(), 13);
        assert!(id.starts_with("dbpgf") && id[5..].chars().all(|c| c.is_ascii_digit()));
        let id = config_id();
        assert!(
            id.len() == 11 && id.starts_with("cfg") && id[3..].chars().all(|c| c.is_ascii_digit())
        );
    }

    #[test]
    fn outbound_ips_are_unique_and_never_the_operator() {
        assert_eq!(outbound_ip(1), Some(Ipv4Addr::new(127, 0, 1, 1)));
        assert_eq!(outbound_ip(254), Some(Ipv4Addr::new(127, 0, 1, 254)));
        assert_eq!(outbound_ip(255), Some(Ipv4Addr::new(127, 0, 2, 1)));
        assert_eq!(outbound_ip(0), None);
        assert_eq!(outbound_ip(254 * 255 + 1), None);
    }
}
