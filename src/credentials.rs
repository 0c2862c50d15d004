//! Resume credentials (docs/protocol.md §6): the key, and the tokens it signs. A token is
//! what a seat needs to come back, signed so that the server can trust it after a restart
//! that forgot every room: `base64url(claims JSON) "." base64url(HMAC-SHA256)`; clients
//! treat it as opaque.
//!
//! The claims carry a fresh 128-bit nonce each time a token is issued; the room core keeps
//! the nonce of each seat's current token, which is what makes a token single-use while
//! the server runs. After a restart only the signature and the restart window vouch for a
//! token, so the key outlives the process: it is read from a file (`resume.key` beside the
//! certificates, or `--resume-key-file`), made and stored there (mode 0600) the first time.
//! Which seats a token may bring back is the room core's rule (`room/resume.rs`), not
//! this module's; certificates are `tls.rs`'s.

use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::private_file::{read_small, write_private, MAX_KEY_BYTES};

/// The longest token this server issues is well under this; longer input is refused
/// before any decoding.
const MAX_TOKEN_CHARS: usize = 2048;
/// Signed along with the claims, so a signature made for anything else never verifies.
const CONTEXT: &[u8] = b"jam-resume-v1.";

/// The secret that signs tokens: 32 random bytes, kept in a file beside the certificates.
#[derive(Clone)]
pub struct ResumeKey([u8; 32]);

impl std::fmt::Debug for ResumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeKey(..)")
    }
}

impl ResumeKey {
    /// A fresh key from the operating system's secure generator.
    pub fn generate() -> Self {
        ResumeKey(rand::rng().random())
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ResumeKey(bytes)
    }

    /// The key's 32 bytes (for storing it).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(CONTEXT);
        mac.update(payload);
        mac
    }

    /// Signs `claims` into a token.
    pub fn sign(&self, claims: &Claims) -> String {
        // Serialising a plain struct cannot fail.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let payload = B64.encode(json);
        let tag = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!("{payload}.{}", B64.encode(tag))
    }

    /// The claims of a token this key signed; `None` for anything else (in constant time
    /// for the signature).
    pub fn verify(&self, token: &str) -> Option<Claims> {
        if token.len() > MAX_TOKEN_CHARS {
            return None;
        }
        let (payload, tag) = token.split_once('.')?;
        let tag = B64.decode(tag).ok()?;
        self.mac(payload.as_bytes()).verify_slice(&tag).ok()?;
        serde_json::from_slice(&B64.decode(payload).ok()?).ok()
    }
}

/// What a token says about its seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The room's canonical code.
    #[serde(rename = "r")]
    pub room: String,
    /// The seat's user id.
    #[serde(rename = "u")]
    pub user: String,
    /// The display name.
    #[serde(rename = "n")]
    pub name: String,
    /// The instrument.
    #[serde(rename = "i")]
    pub instrument: String,
    /// The seat's place in the room's join order (smaller joined earlier).
    #[serde(rename = "o")]
    pub order: u64,
    /// 128 random bits, new for every token issued.
    #[serde(rename = "k")]
    pub nonce: String,
}

/// A fresh token nonce: 128 random bits as 32 hex digits.
pub fn nonce() -> String {
    let bits: u128 = rand::rng().random();
    format!("{bits:032x}")
}

/// The resume key's file name in the certificate folder.
pub const RESUME_KEY_FILE: &str = "resume.key";

/// Reads the resume-token key from `path` (64 hex digits), or makes one and stores it
/// there (mode 0600) when the file does not exist. A file that exists but holds no key is
/// an error, never silently replaced: every token signed with it would stop working.
pub fn load_or_make_resume_key(path: &Path) -> Result<ResumeKey> {
    match read_small(path, MAX_KEY_BYTES, true) {
        Ok(text) => {
            let hex = text.trim();
            let mut bytes = [0u8; 32];
            let ok = hex.len() == 64
                && hex.is_ascii()
                && bytes.iter_mut().enumerate().all(|(i, b)| {
                    u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                        .map(|v| *b = v)
                        .is_ok()
                });
            if !ok {
                bail!(
                    "{} does not hold a resume key (64 hex digits)",
                    path.display()
                );
            }
            Ok(ResumeKey::from_bytes(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = ResumeKey::generate();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let hex: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
            write_private(path, &format!("{hex}\n"))?;
            tracing::info!(path = %path.display(), "made a new resume key");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            room: "K7F3Q0".into(),
            user: "u".repeat(32),
            name: "Ana \"é\"".into(),
            instrument: "piano".into(),
            order: 3,
            nonce: nonce(),
        }
    }

    #[test]
    fn a_signed_token_verifies_with_its_key_only() {
        let key = ResumeKey::generate();
        let token = key.sign(&claims());
        assert_eq!(key.verify(&token).map(|c| c.name), Some(claims().name));
        assert_eq!(ResumeKey::generate().verify(&token), None, "another key");
        let same = ResumeKey::from_bytes(key.to_bytes());
        assert!(same.verify(&token).is_some(), "the key survives a restart");
    }

    #[test]
    fn tampered_or_malformed_tokens_are_refused() {
        let key = ResumeKey::generate();
        let token = key.sign(&claims());
        let (payload, tag) = token.split_once('.').unwrap();
        let mut forged = claims();
        forged.user = "v".repeat(32);
        let forged_payload = B64.encode(serde_json::to_vec(&forged).unwrap());
        for bad in [
            format!("{forged_payload}.{tag}"),
            format!("{payload}.{}", B64.encode([0u8; 32])),
            format!("{payload}.{}", &tag[1..]),
            format!("{payload}{tag}"),
            format!("{payload}.{tag}.x"),
            String::new(),
            ".".into(),
            "é.é".into(),
            "x".repeat(5000),
        ] {
            assert_eq!(key.verify(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn nonces_are_128_random_bits() {
        let (a, b) = (nonce(), nonce());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn the_resume_key_is_made_once_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(RESUME_KEY_FILE);
        let key = load_or_make_resume_key(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_make_resume_key(&path).unwrap();
        assert_eq!(again.to_bytes(), key.to_bytes(), "reused across restarts");
        std::fs::write(&path, "not a key").unwrap();
        let err = load_or_make_resume_key(&path).unwrap_err();
        assert!(
            err.to_string().contains("does not hold a resume key"),
            "{err}"
        );
        std::fs::write(&path, "é".repeat(32)).unwrap();
        assert!(
            load_or_make_resume_key(&path).is_err(),
            "non-ASCII never panics"
        );
    }
}
