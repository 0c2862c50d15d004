//! Certificates for WebTransport: load a PEM pair, or make, store, reuse and renew a
//! development certificate that Chromium accepts through `serverCertificateHashes`
//! (ECDSA P-256, valid at most 14 days). Also the SHA-256 that `/connect` publishes.
//! This module does not know about endpoints (the server reloads its config with what
//! this module hands back), nor about the resume key beside the certificates
//! (`credentials.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use wtransport::tls::{Certificate, CertificateChain, PrivateKey};
use wtransport::Identity;

use crate::private_file::{read_small, write_private, MAX_CERT_BYTES, MAX_KEY_BYTES};

/// How far `notBefore` is back-dated, for clocks that are slightly behind.
const BACKDATE: Duration = Duration::from_secs(3600);
/// A stored development certificate is reused only while it has more than this left,
/// and the running server renews it this long before it expires (a quarter of a shorter
/// lifetime: [`rotation`]).
pub const RENEW_BEFORE: Duration = Duration::from_secs(24 * 3600);
/// How long before the switch the next development certificate's hash is announced in
/// `/connect` beside the current one (an eighth of a shorter lifetime).
pub const OVERLAP: Duration = Duration::from_secs(3600);
/// A development certificate's lifetime from when it is made (`--dev-cert-lifetime`).
pub const DEV_CERT_LIFETIME: Duration = Duration::from_secs(13 * 24 * 3600 - 3600);
/// The longest lifetime Chromium accepts for a certificate it checks by hash (14 days
/// from `notBefore`, which is back-dated an hour).
pub const MAX_DEV_CERT_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600 - 3600);

/// For a development certificate of `lifetime`: how long before it expires it is
/// replaced, and how long before that its successor's hash is announced.
pub fn rotation(lifetime: Duration) -> (Duration, Duration) {
    (RENEW_BEFORE.min(lifetime / 4), OVERLAP.min(lifetime / 8))
}

const DEV_CERT_FILE: &str = "dev-cert.pem";
const DEV_KEY_FILE: &str = "dev-key.pem";

/// Where the WebTransport certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// A real certificate chain and key, as PEM files.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// A development certificate, stored in `dir` (or only in memory when `None`), made
    /// to last `lifetime`.
    Dev {
        /// Directory for `dev-cert.pem` and `dev-key.pem`.
        dir: Option<PathBuf>,
        /// How long each certificate lasts from when it is made.
        lifetime: Duration,
    },
}

/// A loaded identity with what the server publishes about it.
pub struct TlsIdentity {
    /// The identity for the WebTransport endpoint.
    pub identity: Identity,
    /// SHA-256 of the leaf certificate's DER, 64 lowercase hex digits.
    pub hash_hex: String,
    /// When the leaf certificate expires.
    pub not_after: SystemTime,
    /// Whether a browser can check the certificate by its hash alone: ECDSA P-256 and
    /// valid for at most 14 days (WebTransport's `serverCertificateHashes`). Only then
    /// does `/connect` offer the hash; any other certificate is checked by its name.
    pub hash_checkable: bool,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("hash_hex", &self.hash_hex)
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl CertSource {
    /// Loads (or makes) the identity.
    pub fn load(&self) -> Result<TlsIdentity> {
        match self {
            CertSource::Files { cert, key } => load_pem_files(cert, key),
            CertSource::Dev {
                dir: Some(dir),
                lifetime,
            } => load_or_make_dev(dir, *lifetime),
            CertSource::Dev {
                dir: None,
                lifetime,
            } => Ok(make_dev_for(*lifetime)?.0),
        }
    }

    /// Makes a fresh development identity (stored when the source has a directory);
    /// `None` for real certificates, which are not the server's to renew.
    pub fn renew(&self) -> Result<Option<TlsIdentity>> {
        match self {
            CertSource::Files { .. } => Ok(None),
            CertSource::Dev { dir, lifetime } => {
                let (id, cert_pem, key_pem) = make_dev_for(*lifetime)?;
                if let Some(dir) = dir {
                    store(dir, &cert_pem, &key_pem)?;
                }
                Ok(Some(id))
            }
        }
    }
}

/// SHA-256 of `der` as lowercase hex.
pub fn sha256_hex(der: &[u8]) -> String {
    hex(&Sha256::digest(der))
}

/// Bytes as lowercase hex digits.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn identity_from_pem(cert_pem: &str, key_pem: &str) -> Result<TlsIdentity> {
    let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<std::result::Result<_, _>>()
        .context("reading PEM certificates")?;
    let Some(leaf) = certs.first().cloned() else {
        bail!("no certificate in the PEM file");
    };
    let (not_before, not_after) = leaf_validity(&leaf)?;
    let hash_checkable = not_after
        .duration_since(not_before)
        .is_ok_and(|d| d <= Duration::from_secs(14 * 24 * 3600))
        && is_p256(&leaf);
    let now = SystemTime::now();
    if now > not_after {
        bail!(
            "the certificate expired on {}",
            humantime::format_rfc3339_seconds(not_after)
        );
    }
    if now < not_before {
        bail!(
            "the certificate is not valid until {}",
            humantime::format_rfc3339_seconds(not_before)
        );
    }
    let hash_hex = sha256_hex(&leaf);
    let chain = certs
        .into_iter()
        .map(|der| Certificate::from_der(der).context("parsing certificate"))
        .collect::<Result<Vec<_>>>()?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .context("reading PEM private key")?
        .context("no private key in the PEM file")?;
    // A key that does not belong to the certificate would only fail inside the QUIC
    // stack, at the first handshake (wtransport panics): say so at start instead.
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| anyhow::anyhow!("the private key cannot sign: {e}"))?;
    rustls::sign::CertifiedKey::new(vec![rustls::pki_types::CertificateDer::from(leaf)], signer)
        .keys_match()
        .map_err(|e| anyhow::anyhow!("the private key does not match the certificate ({e})"))?;
    let key = match key {
        rustls::pki_types::PrivateKeyDer::Pkcs8(k) => {
            PrivateKey::from_der_pkcs8(k.secret_pkcs8_der().to_vec())
        }
        _ => bail!("the private key must be PKCS#8 (BEGIN PRIVATE KEY)"),
    };
    Ok(TlsIdentity {
        identity: Identity::new(CertificateChain::new(chain), key),
        hash_hex,
        not_after,
        hash_checkable,
    })
}

/// Whether the leaf certificate's key is ECDSA on P-256.
fn is_p256(der: &[u8]) -> bool {
    const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    const P256: &str = "1.2.840.10045.3.1.7";
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let alg = &cert.public_key().algorithm;
    alg.algorithm.to_id_string() == EC_PUBLIC_KEY
        && alg
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|oid| oid.to_id_string() == P256)
}

/// The leaf certificate's validity: not before, not after.
fn leaf_validity(der: &[u8]) -> Result<(SystemTime, SystemTime)> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).context("parsing the leaf certificate")?;
    let at =
        |secs: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    let validity = cert.validity();
    Ok((
        at(validity.not_before.timestamp()),
        at(validity.not_after.timestamp()),
    ))
}

fn load_pem_files(cert: &Path, key: &Path) -> Result<TlsIdentity> {
    let cert_pem = read_small(cert, MAX_CERT_BYTES, false)
        .with_context(|| format!("reading certificate {}", cert.display()))?;
    let key_pem = read_small(key, MAX_KEY_BYTES, true)
        .with_context(|| format!("reading key {}", key.display()))?;
    identity_from_pem(&cert_pem, &key_pem)
}

/// Makes a development certificate: ECDSA P-256, for `localhost`, `127.0.0.1` and `::1`,
/// valid from an hour ago for [`DEV_CERT_LIFETIME`] from now. Returns it with its PEM
/// text.
pub fn make_dev() -> Result<(TlsIdentity, String, String)> {
    make_dev_for(DEV_CERT_LIFETIME)
}

/// [`make_dev`] valid for `lifetime` from now.
pub fn make_dev_for(lifetime: Duration) -> Result<(TlsIdentity, String, String)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("generating a P-256 key")?;
    let mut params = rcgen::CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .context("certificate names")?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "jam-server development certificate",
    );
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime.min(MAX_DEV_CERT_LIFETIME);
    let cert = params
        .self_signed(&key)
        .context("signing the certificate")?;
    let cert_pem = cert.pem();
    let key_pem = key.serialize_pem();
    let id = identity_from_pem(&cert_pem, &key_pem)?;
    Ok((id, cert_pem, key_pem))
}

fn store(dir: &Path, cert_pem: &str, key_pem: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key_path = dir.join(DEV_KEY_FILE);
    write_private(&key_path, key_pem)?;
    std::fs::write(dir.join(DEV_CERT_FILE), cert_pem)
        .with_context(|| format!("writing {}", dir.join(DEV_CERT_FILE).display()))?;
    Ok(())
}

/// Reuses the stored development certificate while it has more than its renewal time
/// ([`rotation`]) left (and is one Chromium accepts); otherwise makes and stores a new
/// one lasting `lifetime`.
pub fn load_or_make_dev(dir: &Path, lifetime: Duration) -> Result<TlsIdentity> {
    let (renew_before, _) = rotation(lifetime);
    let cert = dir.join(DEV_CERT_FILE);
    let key = dir.join(DEV_KEY_FILE);
    if cert.exists() && key.exists() {
        match load_pem_files(&cert, &key) {
            Ok(id) if remaining(&id) > renew_before => return Ok(id),
            Ok(_) => {
                tracing::info!("stored development certificate expires soon; making a new one")
            }
            Err(e) => {
                tracing::warn!(error = %e, "stored development certificate unusable; making a new one")
            }
        }
    }
    let (id, cert_pem, key_pem) = make_dev_for(lifetime)?;
    store(dir, &cert_pem, &key_pem)?;
    Ok(id)
}

/// Time left before the identity expires (zero when it has).
pub fn remaining(id: &TlsIdentity) -> Duration {
    id.not_after
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_of_another_certificate_is_a_clear_error() {
        let (_, cert_a, _) = make_dev().unwrap();
        let (_, _, key_b) = make_dev().unwrap();
        let Err(err) = identity_from_pem(&cert_a, &key_b) else {
            panic!("a foreign key was accepted");
        };
        assert!(
            err.to_string().contains("does not match the certificate"),
            "{err}"
        );
    }

    #[test]
    fn expired_and_future_certificates_are_clear_errors() {
        for (from_now, want) in [(-30i64, "expired on"), (30, "not valid until")] {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
            let now = time::OffsetDateTime::now_utc();
            let days = time::Duration::days;
            (params.not_before, params.not_after) = if from_now < 0 {
                (now - days(60), now + days(from_now))
            } else {
                (now + days(from_now), now + days(60))
            };
            let cert = params.self_signed(&key).unwrap();
            let Err(err) = identity_from_pem(&cert.pem(), &key.serialize_pem()) else {
                panic!("{want}: accepted");
            };
            assert!(err.to_string().contains(want), "{err}");
        }
    }

    #[test]
    fn dev_certificate_is_p256_and_short_lived() {
        let (id, cert_pem, _) = make_dev().unwrap();
        let der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let v = cert.validity();
        let days = (v.not_after.timestamp() - v.not_before.timestamp()) as f64 / 86400.0;
        assert!(days <= 14.0, "valid {days} days");
        assert!(days >= 12.0, "valid {days} days");
        let alg = &cert.public_key().algorithm;
        assert_eq!(
            alg.algorithm.to_id_string(),
            "1.2.840.10045.2.1",
            "EC public key"
        );
        let curve = alg.parameters.as_ref().unwrap().as_oid().unwrap();
        assert_eq!(curve.to_id_string(), "1.2.840.10045.3.1.7", "P-256");
        assert_eq!(id.hash_hex, sha256_hex(&der));
        assert_eq!(id.hash_hex.len(), 64);
        let names = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(names.value.general_names.len(), 3);
    }

    #[test]
    fn stored_certificate_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_make_dev(dir.path(), DEV_CERT_LIFETIME).unwrap();
        let b = load_or_make_dev(dir.path(), DEV_CERT_LIFETIME).unwrap();
        assert_eq!(a.hash_hex, b.hash_hex);
        let renewed = CertSource::Dev {
            dir: Some(dir.path().into()),
            lifetime: DEV_CERT_LIFETIME,
        }
        .renew()
        .unwrap()
        .unwrap();
        assert_ne!(renewed.hash_hex, a.hash_hex);
        assert_eq!(
            load_or_make_dev(dir.path(), DEV_CERT_LIFETIME)
                .unwrap()
                .hash_hex,
            renewed.hash_hex
        );
    }
}
