//! Signing in with the app's JWTs (docs/protocol.md §13): the verification key the flags
//! name, the one algorithm it allows, and what a seat takes from a valid token.
//!
//! The algorithm is the key's: an HS256 secret, or an RS256, ES256 or EdDSA public key in
//! PEM. A token whose header names anything else (`none` included, or HS256 signed with a
//! public key's bytes) is refused before its signature is looked at. Tokens are never
//! logged, counted by value or echoed in an error.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use jam_protocol::{validate_name, ErrorCode, Name, ProtocolError, RoomCode};

/// Leeway on `exp` and `nbf`, for clocks that disagree a little (§13).
pub const LEEWAY: Duration = Duration::from_secs(30);

/// Why a sign-in was refused: the `reason` label of `jam_auth_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token where one is required.
    Missing,
    /// Not a JWT, a bad signature, or an algorithm other than the key's.
    Invalid,
    /// `exp` has passed (with the leeway).
    Expired,
    /// `nbf` is still ahead (with the leeway).
    NotYetValid,
    /// `iss` is not the configured issuer.
    Issuer,
    /// `aud` does not name the configured audience.
    Audience,
    /// No `sub`, or not a non-empty string.
    Subject,
    /// A `name`, `rooms` or `create` claim of the wrong shape, or a name this server
    /// refuses.
    Claims,
    /// The room is outside the token's `rooms`.
    Room,
    /// A create with `create: false`.
    Create,
    /// `auth:refresh` with another `sub`.
    OtherSubject,
    /// A seat's token ran out without a refresh.
    SeatExpired,
}

impl Refusal {
    /// Every reason, in the order of their counters.
    pub const ALL: [Refusal; crate::stats::AUTH_REFUSAL_REASONS] = [
        Refusal::Missing,
        Refusal::Invalid,
        Refusal::Expired,
        Refusal::NotYetValid,
        Refusal::Issuer,
        Refusal::Audience,
        Refusal::Subject,
        Refusal::Claims,
        Refusal::Room,
        Refusal::Create,
        Refusal::OtherSubject,
        Refusal::SeatExpired,
    ];

    /// Its counter in [`crate::stats::Stats::auth_refused`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Invalid => "invalid",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::Issuer => "issuer",
            Refusal::Audience => "audience",
            Refusal::Subject => "subject",
            Refusal::Claims => "claims",
            Refusal::Room => "room",
            Refusal::Create => "create",
            Refusal::OtherSubject => "other_subject",
            Refusal::SeatExpired => "seat_expired",
        }
    }

    /// The error answer: `unauthorized` for a token that is no good, `forbidden` for one
    /// that does not allow this, `token_expired` for a seat whose token ran out. The
    /// message says what to do, never what the token held.
    pub fn error(self) -> ProtocolError {
        let (code, message) = match self {
            Refusal::Missing => (
                ErrorCode::Unauthorized,
                "sign-in is required: send the app's token as `token`",
            ),
            Refusal::Invalid => (
                ErrorCode::Unauthorized,
                "the token is not valid (not a JWT, a bad signature, or another algorithm than this server's key)",
            ),
            Refusal::Expired => (ErrorCode::Unauthorized, "the token has expired; get a new one"),
            Refusal::NotYetValid => (ErrorCode::Unauthorized, "the token is not valid yet (nbf)"),
            Refusal::Issuer => (ErrorCode::Unauthorized, "the token is from another issuer (iss)"),
            Refusal::Audience => (ErrorCode::Unauthorized, "the token is for another audience (aud)"),
            Refusal::Subject => (
                ErrorCode::Unauthorized,
                "the token has no user id: `sub` must be a non-empty string",
            ),
            Refusal::Claims => (
                ErrorCode::Unauthorized,
                "the token's claims are malformed: `name` must be a valid name, `rooms` a list of room codes, `create` true or false",
            ),
            Refusal::Room => (ErrorCode::Forbidden, "the token does not allow this room"),
            Refusal::Create => (ErrorCode::Forbidden, "the token does not allow creating rooms"),
            Refusal::OtherSubject => (
                ErrorCode::Forbidden,
                "the new token is for another user than the seat's",
            ),
            Refusal::SeatExpired => (
                ErrorCode::TokenExpired,
                "the sign-in token expired without a refresh; sign in again and join",
            ),
        };
        ProtocolError::new(code, message)
    }
}

/// What a valid token gives a seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The app's user id: one seat per room, never sent to anyone.
    pub sub: String,
    /// The seat's name, replacing the one asked for.
    pub name: Option<Name>,
    /// The rooms it may join (`None`: any).
    pub rooms: Option<Vec<String>>,
    /// Whether it may create rooms.
    pub create: bool,
    /// When it expires, seconds since the Unix epoch.
    pub exp: u64,
}

impl Signed {
    /// Whether the token allows joining the room typed as `typed`.
    pub fn allows_room(&self, typed: &str) -> bool {
        let Some(rooms) = &self.rooms else {
            return true;
        };
        let Some(code) = RoomCode::normalize(typed) else {
            // Not a code at all: the room core answers that, not sign-in.
            return true;
        };
        rooms
            .iter()
            .any(|r| RoomCode::normalize(r).as_ref() == Some(&code))
    }
}

/// The seat's sign-in, as the room keeps it: whose seat, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatSignIn {
    /// The app's user id.
    pub sub: String,
    /// When the seat's token expires, seconds since the Unix epoch.
    pub exp: u64,
}

/// A key flag that cannot be used: the start stops with this (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Both key flags were given.
    #[error("--jwt-secret-file and --jwt-public-key-file cannot both be set: give one key")]
    Both,
    /// The file could not be read.
    #[error("{flag}: cannot read {path}: {error}")]
    Unreadable {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
    /// The secret is empty.
    #[error("--jwt-secret-file: {path} is empty; an HS256 secret needs at least one byte (32 or more are recommended)")]
    EmptySecret {
        /// The file.
        path: String,
    },
    /// No RSA, EC or Ed25519 public key in PEM.
    #[error("--jwt-public-key-file: {path} holds no RSA, EC (P-256) or Ed25519 public key in PEM (-----BEGIN PUBLIC KEY-----)")]
    NotAPublicKey {
        /// The file.
        path: String,
    },
    /// `--jwt-issuer` or `--jwt-audience` without a key.
    #[error("{flag} needs a key: set --jwt-secret-file or --jwt-public-key-file")]
    NoKey {
        /// The flag.
        flag: &'static str,
    },
    /// An empty issuer or audience.
    #[error("{flag} cannot be empty")]
    Empty {
        /// The flag.
        flag: &'static str,
    },
}

/// The verification key and its rules.
pub struct Auth {
    key: DecodingKey,
    validation: Validation,
    algorithm: Algorithm,
    leeway: Duration,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The flags that configure sign-in.
#[derive(Debug, Clone, Copy)]
pub struct AuthFlags<'a> {
    /// `--jwt-secret-file`.
    pub secret_file: Option<&'a Path>,
    /// `--jwt-public-key-file`.
    pub public_key_file: Option<&'a Path>,
    /// `--jwt-issuer`.
    pub issuer: Option<&'a str>,
    /// `--jwt-audience`.
    pub audience: Option<&'a str>,
    /// The leeway on `exp` and `nbf`: [`LEEWAY`] (only tests of expiry shorten it).
    pub leeway: Duration,
}

impl Default for AuthFlags<'_> {
    fn default() -> Self {
        AuthFlags {
            secret_file: None,
            public_key_file: None,
            issuer: None,
            audience: None,
            leeway: LEEWAY,
        }
    }
}

impl Auth {
    /// Sign-in as the flags configure it: `None` when off (no key flag).
    pub fn from_flags(flags: AuthFlags<'_>) -> Result<Option<Auth>, KeyError> {
        let read = |flag: &'static str, path: &Path| {
            std::fs::read(path).map_err(|error| KeyError::Unreadable {
                flag,
                path: path.display().to_string(),
                error: error.to_string(),
            })
        };
        let (key, algorithm) = match (flags.secret_file, flags.public_key_file) {
            (Some(_), Some(_)) => return Err(KeyError::Both),
            (None, None) => {
                for (flag, set) in [
                    ("--jwt-issuer", flags.issuer.is_some()),
                    ("--jwt-audience", flags.audience.is_some()),
                ] {
                    if set {
                        return Err(KeyError::NoKey { flag });
                    }
                }
                return Ok(None);
            }
            (Some(path), None) => {
                let bytes = read("--jwt-secret-file", path)?;
                // A secret written with `echo` ends in a newline that is not part of it.
                let secret = bytes.trim_ascii_end();
                if secret.is_empty() {
                    return Err(KeyError::EmptySecret {
                        path: path.display().to_string(),
                    });
                }
                let key = DecodingKey::from_secret(secret).map_err(|_| KeyError::EmptySecret {
                    path: path.display().to_string(),
                })?;
                (key, Algorithm::HS256)
            }
            (None, Some(path)) => {
                let pem = read("--jwt-public-key-file", path)?;
                let not_a_key = || KeyError::NotAPublicKey {
                    path: path.display().to_string(),
                };
                public_key(&pem).ok_or_else(not_a_key)?
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = flags.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match flags.issuer {
            Some("") => {
                return Err(KeyError::Empty {
                    flag: "--jwt-issuer",
                })
            }
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => {}
        }
        match flags.audience {
            Some("") => {
                return Err(KeyError::Empty {
                    flag: "--jwt-audience",
                })
            }
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            // Without a configured audience, an `aud` in the token is the app's business.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Some(Auth {
            key,
            validation,
            algorithm,
            leeway: flags.leeway,
        }))
    }

    /// The one algorithm tokens must use.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Checks `token` (signature, algorithm, `exp`, `nbf`, `iss`, `aud`) and reads what
    /// it gives a seat.
    pub fn verify(&self, token: Option<&str>) -> Result<Signed, Refusal> {
        let token = token.filter(|t| !t.is_empty()).ok_or(Refusal::Missing)?;
        // The header first: an algorithm other than the key's is refused before anything
        // else is read (jsonwebtoken checks it too).
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Invalid)?;
        if header.alg != self.algorithm {
            return Err(Refusal::Invalid);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => Refusal::Expired,
                ErrorKind::ImmatureSignature => Refusal::NotYetValid,
                ErrorKind::InvalidIssuer => Refusal::Issuer,
                ErrorKind::InvalidAudience => Refusal::Audience,
                ErrorKind::MissingRequiredClaim(claim) if claim == "sub" => Refusal::Subject,
                ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => Refusal::Issuer,
                ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => Refusal::Audience,
                _ => Refusal::Invalid,
            },
        )?;
        data.claims.signed()
    }
}

/// The claims this server reads, each checked for its shape here (jsonwebtoken checks the
/// times, the issuer and the audience).
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Value,
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    rooms: Option<Value>,
    #[serde(default)]
    create: Option<Value>,
    exp: Value,
}

impl Claims {
    fn signed(self) -> Result<Signed, Refusal> {
        let sub = match self.sub {
            Value::String(s) if !s.trim().is_empty() => s,
            _ => return Err(Refusal::Subject),
        };
        let name = match self.name {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) => Some(validate_name(&n).map_err(|_| Refusal::Claims)?),
            Some(_) => return Err(Refusal::Claims),
        };
        let rooms = match self.rooms {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) => Some(
                list.into_iter()
                    .map(|r| match r {
                        Value::String(s) => Ok(s),
                        _ => Err(Refusal::Claims),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err(Refusal::Claims),
        };
        let create = match self.create {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(Refusal::Claims),
        };
        let exp = self
            .exp
            .as_f64()
            .filter(|e| e.is_finite() && *e >= 0.0)
            .ok_or(Refusal::Invalid)? as u64;
        Ok(Signed {
            sub,
            name,
            rooms,
            create,
            exp,
        })
    }
}

/// The key in `pem` and its algorithm: RSA (RS256), EC (ES256) or Ed25519 (EdDSA).
fn public_key(pem: &[u8]) -> Option<(DecodingKey, Algorithm)> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Some((key, Algorithm::RS256));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Some((key, Algorithm::ES256));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Some((key, Algorithm::EdDSA));
    }
    None
}

/// Now, in seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Auth {
    /// How long until `exp` (seconds since the Unix epoch) has passed by the leeway: a
    /// seat's token counts as expired then, as it would at a join (§13).
    pub fn until_expiry(&self, exp: u64) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (Duration::from_secs(exp) + self.leeway).saturating_sub(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"a secret of some thirty-two bytes!";

    fn hs(flags: AuthFlags<'_>) -> Auth {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, [SECRET, b"\n"].concat()).unwrap();
        Auth::from_flags(AuthFlags {
            secret_file: Some(&path),
            ..flags
        })
        .unwrap()
        .unwrap()
    }

    fn token(claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap()
    }

    fn exp() -> u64 {
        unix_now() + 600
    }

    #[test]
    fn a_valid_token_gives_the_seat_its_claims() {
        let auth = hs(AuthFlags::default());
        let t = token(
            json!({"sub": "u1", "exp": exp(), "name": "Ana", "rooms": ["abcdef"], "create": false}),
        );
        let s = auth.verify(Some(&t)).unwrap();
        assert_eq!(s.sub, "u1");
        assert_eq!(s.name.as_ref().unwrap().display, "Ana");
        assert!(!s.create);
        assert!(s.allows_room("ABCDEF"));
        assert!(!s.allows_room("ZZZZZZ"));
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let auth = hs(AuthFlags {
            issuer: Some("app"),
            audience: Some("jam"),
            ..AuthFlags::default()
        });
        let ok = json!({"sub": "u1", "exp": exp(), "iss": "app", "aud": "jam"});
        let with = |k: &str, v: Value| {
            let mut c = ok.clone();
            c[k] = v;
            token(c)
        };
        assert!(auth.verify(Some(&token(ok.clone()))).is_ok());
        let cases = [
            (None, Refusal::Missing),
            (Some("not a jwt".to_string()), Refusal::Invalid),
            (Some(with("exp", json!(unix_now() - 31))), Refusal::Expired),
            (
                Some(with("nbf", json!(unix_now() + 31))),
                Refusal::NotYetValid,
            ),
            (Some(with("iss", json!("other"))), Refusal::Issuer),
            (Some(with("aud", json!("other"))), Refusal::Audience),
            (Some(with("sub", json!(""))), Refusal::Subject),
            (Some(with("sub", json!(7))), Refusal::Subject),
            (Some(with("name", json!(""))), Refusal::Claims),
            (Some(with("rooms", json!("ABCDEF"))), Refusal::Claims),
            (Some(with("create", json!("no"))), Refusal::Claims),
        ];
        for (t, want) in cases {
            assert_eq!(auth.verify(t.as_deref()), Err(want), "{t:?}");
        }
        // Within the 30 s leeway, both ways.
        assert!(auth
            .verify(Some(&with("exp", json!(unix_now() - 20))))
            .is_ok());
        assert!(auth
            .verify(Some(&with("nbf", json!(unix_now() + 20))))
            .is_ok());
    }

    #[test]
    fn key_flags_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let missing = dir.path().join("missing");
        fn flags<'a>(secret: Option<&'a Path>, public: Option<&'a Path>) -> AuthFlags<'a> {
            AuthFlags {
                secret_file: secret,
                public_key_file: public,
                ..AuthFlags::default()
            }
        }
        assert!(matches!(
            Auth::from_flags(flags(Some(&empty), Some(&junk))),
            Err(KeyError::Both)
        ));
        assert!(matches!(
            Auth::from_flags(flags(Some(&empty), None)),
            Err(KeyError::EmptySecret { .. })
        ));
        assert!(matches!(
            Auth::from_flags(flags(None, Some(&junk))),
            Err(KeyError::NotAPublicKey { .. })
        ));
        assert!(matches!(
            Auth::from_flags(flags(Some(&missing), None)),
            Err(KeyError::Unreadable { .. })
        ));
        assert!(matches!(
            Auth::from_flags(AuthFlags {
                issuer: Some("app"),
                ..AuthFlags::default()
            }),
            Err(KeyError::NoKey { .. })
        ));
        assert!(Auth::from_flags(AuthFlags::default()).unwrap().is_none());
    }
}
