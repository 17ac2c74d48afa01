//! The emulator's certificate authority and the per-service server certificates it issues.
//!
//! rcgen (without its x509 parser) cannot load an existing CA certificate, but signing only
//! needs the issuer's subject name, key identifier and private key. So the CA's parameters are
//! fixed here (`ca_params`) and rebuilt around the stored key: certificates issued after an
//! emulator restart chain to the same `ca.pem` as before.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::{fsutil, MariadbError};

const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";

/// The emulator CA: `cert_pem_path` is what clients (and replicas) trust.
pub struct Ca {
    pub cert_pem_path: PathBuf,
    key_path: PathBuf,
    key: KeyPair,
    /// A certificate carrying the CA's name and key, used only as the issuer when signing.
    issuer: Certificate,
}

impl std::fmt::Debug for Ca {
    // The private key stays out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("cert_pem_path", &self.cert_pem_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

/// The TLS files of one server. `ca` is a copy of the CA certificate, so an instance
/// directory is self-contained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    /// Loads the CA from `dir` (`ca.pem`, `ca-key.pem`), creating both when neither exists.
    pub fn load_or_create(dir: &Path) -> Result<Ca, MariadbError> {
        let cert_pem_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        fsutil::create_dir_private(dir)?;
        let key = match (cert_pem_path.exists(), key_path.exists()) {
            (true, true) => {
                let pem = std::fs::read_to_string(&key_path)
                    .map_err(|e| MariadbError::io("reading CA key", &key_path, e))?;
                KeyPair::from_pem(&pem).map_err(|e| {
                    MariadbError::Tls(format!("CA key {} is invalid: {e}", key_path.display()))
                })?
            }
            (false, false) => {
                let key = KeyPair::generate().map_err(tls_err)?;
                let mut params = ca_params();
                let now = OffsetDateTime::now_utc();
                params.not_before = now - Duration::days(1);
                params.not_after = now + Duration::days(3650);
                let cert = params.self_signed(&key).map_err(tls_err)?;
                fsutil::write_private(&key_path, key.serialize_pem().as_bytes())?;
                fsutil::write_atomic(&cert_pem_path, cert.pem().as_bytes())?;
                key
            }
            _ => {
                return Err(MariadbError::Tls(format!(
                    "{} holds only one of {CA_CERT_FILE} and {CA_KEY_FILE}; remove the other \
                     to create a new CA (existing service certificates will then be invalid)",
                    dir.display()
                )))
            }
        };
        let issuer = ca_params().self_signed(&key).map_err(tls_err)?;
        Ok(Ca {
            cert_pem_path,
            key_path,
            key,
            issuer,
        })
    }

    /// Issues a server certificate for `hostnames` plus 127.0.0.1 and localhost into `out_dir`
    /// (`ca.pem`, `server-cert.pem`, `server-key.pem`).
    pub fn issue_server_cert(
        &self,
        out_dir: &Path,
        hostnames: &[String],
    ) -> Result<TlsFiles, MariadbError> {
        let mut names: Vec<String> = Vec::new();
        for name in hostnames
            .iter()
            .map(String::as_str)
            .chain(["127.0.0.1", "localhost"])
        {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        let mut params = CertificateParams::new(names.clone()).map_err(tls_err)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].clone());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(825);
        params.serial_number = Some(random_serial());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(tls_err)?;
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(tls_err)?;

        fsutil::create_dir_private(out_dir)?;
        let files = TlsFiles {
            ca: out_dir.join("ca.pem"),
            cert: out_dir.join("server-cert.pem"),
            key: out_dir.join("server-key.pem"),
        };
        let ca_pem = std::fs::read(&self.cert_pem_path)
            .map_err(|e| MariadbError::io("reading CA certificate", &self.cert_pem_path, e))?;
        fsutil::write_atomic(&files.ca, &ca_pem)?;
        fsutil::write_private(&files.key, key.serialize_pem().as_bytes())?;
        fsutil::write_atomic(&files.cert, cert.pem().as_bytes())?;
        Ok(files)
    }
}

/// The CA's fixed identity. Changing it invalidates every certificate already issued.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "skyplan emulator CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "skyplan");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // a positive INTEGER
    SerialNumber::from_slice(&bytes)
}

fn tls_err(e: rcgen::Error) -> MariadbError {
    MariadbError::Tls(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloaded_ca_keeps_its_certificate_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = Ca::load_or_create(dir.path()).unwrap();
        let pem = std::fs::read_to_string(&first.cert_pem_path).unwrap();
        let second = Ca::load_or_create(dir.path()).unwrap();
        assert_eq!(pem, std::fs::read_to_string(&second.cert_pem_path).unwrap());
        assert_eq!(first.key.public_key_der(), second.key.public_key_der());
    }

    #[test]
    fn half_a_ca_is_an_error_not_a_silent_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        Ca::load_or_create(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();
        let err = Ca::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("only one of"), "{err}");
    }
}
