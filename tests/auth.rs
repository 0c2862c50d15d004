//! Signing in with the app's JWTs (docs/protocol.md §13), over WebSocket and
//! WebTransport against the real server, with real tokens: HS256, RS256, ES256 and
//! EdDSA keys (the asymmetric ones made by `openssl`), every way a token can be wrong,
//! the `rooms` and `create` claims, one seat per `sub`, refresh, and the close at expiry.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{create_with, expect_error, ClientExt, TestServer, KINDS, T};
use jam_client::{Client, ClientError, Closed};
use jam_protocol::{ErrorCode, ServerEvent};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &[u8] = b"the app's HS256 secret, 32 bytes or more";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A key pair made by `openssl genpkey`: the private key signs, the public one is the
/// server's `--jwt-public-key-file`.
struct KeyPair {
    private: Vec<u8>,
    public: PathBuf,
}

fn openssl(dir: &Path, name: &str, genpkey: &[&str]) -> KeyPair {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let private_s = private.to_str().unwrap();
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey);
    args.extend_from_slice(&["-out", private_s]);
    run(&args);
    run(&[
        "pkey",
        "-in",
        private_s,
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    KeyPair {
        private: std::fs::read(&private).unwrap(),
        public,
    }
}

/// A server with sign-in on, and what signs its tokens.
struct Signing {
    s: TestServer,
    alg: Algorithm,
    key: EncodingKey,
    _dir: tempfile::TempDir,
    public: Option<PathBuf>,
}

impl Signing {
    /// A server verifying `alg` ("HS256", "RS256", "ES256", "EdDSA"), with `tweak` for the
    /// rest of its configuration.
    async fn start(alg: Algorithm, tweak: impl FnOnce(&mut jam_server::Config)) -> Signing {
        let dir = tempfile::tempdir().unwrap();
        let (key, secret_file, public) = match alg {
            Algorithm::HS256 => {
                let path = dir.path().join("secret");
                std::fs::write(&path, [SECRET, b"\n"].concat()).unwrap();
                (EncodingKey::from_secret(SECRET).unwrap(), Some(path), None)
            }
            Algorithm::RS256 => {
                let pair = openssl(
                    dir.path(),
                    "rsa",
                    &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                );
                let key = EncodingKey::from_rsa_pem(&pair.private).unwrap();
                (key, None, Some(pair.public))
            }
            Algorithm::ES256 => {
                let pair = openssl(
                    dir.path(),
                    "ec",
                    &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                );
                let key = EncodingKey::from_ec_pem(&pair.private).unwrap();
                (key, None, Some(pair.public))
            }
            Algorithm::EdDSA => {
                let pair = openssl(dir.path(), "ed", &["-algorithm", "ed25519"]);
                let key = EncodingKey::from_ed_pem(&pair.private).unwrap();
                (key, None, Some(pair.public))
            }
            other => panic!("no test key for {other:?}"),
        };
        let (sf, pf) = (secret_file.clone(), public.clone());
        let s = TestServer::start_with(move |c| {
            c.jwt_secret_file = sf;
            c.jwt_public_key_file = pf;
            tweak(c);
        })
        .await;
        Signing {
            s,
            alg,
            key,
            _dir: dir,
            public,
        }
    }

    /// A token for `claims` (an `exp` ten minutes ahead unless given).
    fn token(&self, claims: Value) -> String {
        let mut claims = claims;
        if claims.get("exp").is_none() {
            claims["exp"] = json!(now() + 600);
        }
        encode(&Header::new(self.alg), &claims, &self.key).unwrap()
    }
}

async fn create_signed(c: &mut Client, token: Option<&str>, name: &str) -> ServerEvent {
    let mut data = json!({ "name": name, "instrument": "piano" });
    if let Some(t) = token {
        data["token"] = json!(t);
    }
    c.request("session:create", data).await.unwrap().event
}

async fn join_signed(c: &mut Client, room: &str, token: Option<&str>, name: &str) -> ServerEvent {
    let mut data = json!({ "roomCode": room, "name": name });
    if let Some(t) = token {
        data["token"] = json!(t);
    }
    c.request("session:join", data).await.unwrap().event
}

fn code_of(e: &ServerEvent) -> Option<ErrorCode> {
    match e {
        ServerEvent::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn tokens_of_every_key_kind_create_and_join_and_sub_is_never_sent() {
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let sign = Signing::start(alg, |_| {}).await;
        let (status, body) = sign.s.get("/connect").await;
        assert_eq!(status, 200);
        let connect: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(connect["auth"], "required", "{alg:?}");
        assert!(
            connect["features"]
                .as_array()
                .unwrap()
                .contains(&json!("auth")),
            "{alg:?}"
        );

        let mut a = sign.s.ws().await;
        let ta = sign.token(json!({"sub": "app-user-ana", "name": "Ana Signed"}));
        let created = match create_signed(&mut a, Some(&ta), "asked-for").await {
            ServerEvent::Created(info) => info,
            other => panic!("{alg:?}: {other:?}"),
        };
        assert_eq!(
            created.participants[0].name, "Ana Signed",
            "the name claim wins"
        );

        let mut b = sign.s.wt().await;
        let tb = sign.token(json!({"sub": "app-user-ben"}));
        let joined = match join_signed(&mut b, &created.room_code, Some(&tb), "Ben").await {
            ServerEvent::Joined(info) => info,
            other => panic!("{alg:?}: {other:?}"),
        };
        assert_eq!(joined.participants.len(), 2);
        b.broadcast(&created.room_code, "note", &json!({"n": 1}))
            .await
            .unwrap();
        // Whatever A hears, no `sub` is in it.
        let mut heard = Vec::new();
        while let Ok(r) = a.recv_timeout(Duration::from_millis(300)).await {
            heard.push(String::from_utf8_lossy(&r.raw).into_owned());
        }
        assert!(!heard.is_empty(), "{alg:?}: A heard B");
        for raw in heard {
            assert!(!raw.contains("app-user"), "{alg:?}: sub sent: {raw}");
        }
        // And the Rust client's token provider does the same.
        let mut c = sign.s.ws().await;
        let tc = sign.token(json!({"sub": "app-user-cy"}));
        c.set_token_provider(Arc::new(move || Some(tc.clone())));
        c.join(&created.room_code, "Cy", "")
            .await
            .expect("signed join");
    }
}

#[tokio::test]
async fn tokens_that_are_no_good_answer_unauthorized_and_the_connection_stays_usable() {
    let sign = Signing::start(Algorithm::RS256, |c| {
        c.jwt_issuer = Some("https://app.example".into());
        c.jwt_audience = Some("jam".into());
    })
    .await;
    let good = json!({"sub": "u1", "iss": "https://app.example", "aud": "jam"});
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        sign.token(c)
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        sign.token(c)
    };
    let valid = sign.token(good.clone());
    let parts: Vec<&str> = valid.split('.').collect();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let payload_tampered = {
        let mut claims = good.clone();
        claims["sub"] = json!("someone-else");
        claims["exp"] = json!(now() + 600);
        format!("{}.{}.{}", parts[0], b64(&claims), parts[2])
    };
    let signature_tampered = {
        let mut sig = parts[2].to_string();
        let last = if sig.ends_with('A') { "B" } else { "A" };
        sig.replace_range(sig.len() - 1.., last);
        format!("{}.{}.{}", parts[0], parts[1], sig)
    };
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        parts[1]
    );
    // Algorithm confusion: HS256 "signed" with the server's RS256 public key as secret.
    let public_pem = std::fs::read(sign.public.as_ref().unwrap()).unwrap();
    let confused = {
        let mut claims = good.clone();
        claims["exp"] = json!(now() + 600);
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&public_pem).unwrap(),
        )
        .unwrap()
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("not a JWT", Some("not.a.jwt".into())),
        ("expired", Some(with("exp", json!(now() - 60)))),
        ("not yet valid", Some(with("nbf", json!(now() + 60)))),
        (
            "wrong issuer",
            Some(with("iss", json!("https://evil.example"))),
        ),
        ("no issuer", Some(without("iss"))),
        ("wrong audience", Some(with("aud", json!("other")))),
        ("tampered payload", Some(payload_tampered)),
        ("tampered signature", Some(signature_tampered)),
        ("alg none", Some(alg_none)),
        ("HS256 with the public key", Some(confused)),
        ("no sub", Some(without("sub"))),
        ("empty sub", Some(with("sub", json!("")))),
        ("sub not a string", Some(with("sub", json!(42)))),
        ("invalid name claim", Some(with("name", json!("   ")))),
        ("rooms not a list", Some(with("rooms", json!("ABCDEF")))),
    ];
    for kind in KINDS {
        for (what, token) in &cases {
            // A connection per case: a connection gets at most 10 errors a second.
            let mut c = sign.s.client(kind).await;
            let answer = create_signed(&mut c, token.as_deref(), "Ana").await;
            assert_eq!(
                code_of(&answer),
                Some(ErrorCode::Unauthorized),
                "{kind}, {what}: {answer:?}"
            );
            if let (ServerEvent::Error { message, .. }, Some(t)) = (&answer, token) {
                assert!(!message.contains(t.as_str()), "{what}: the token echoed");
            }
            let answer = join_signed(&mut c, "ABCDEF", token.as_deref(), "Ana").await;
            assert_eq!(
                code_of(&answer),
                Some(ErrorCode::Unauthorized),
                "{kind}, join, {what}: {answer:?}"
            );
            // Refused, and still usable.
            let answer = create_signed(&mut c, Some(&valid), "Ana").await;
            assert!(
                matches!(answer, ServerEvent::Created(_)),
                "{kind}, {what}: {answer:?}"
            );
        }
        // Within the 30 s leeway both ways.
        for (k, v) in [("exp", now() - 20), ("nbf", now() + 20)] {
            let host_token = with("sub", json!(format!("host-{k}-{kind}")));
            let (_host, mut other, room) = s_room(&sign, kind, host_token).await;
            let answer = join_signed(&mut other, &room, Some(&with(k, json!(v))), "Ana").await;
            assert!(
                matches!(answer, ServerEvent::Joined(_)),
                "{kind}, {k} within the leeway: {answer:?}"
            );
        }
    }
    // Counted by reason, never by token.
    let (_, body) = sign.s.get("/metrics").await;
    let metrics = String::from_utf8(body).unwrap();
    for reason in [
        "missing",
        "invalid",
        "expired",
        "not_yet_valid",
        "issuer",
        "audience",
        "subject",
        "claims",
    ] {
        let line = format!("jam_auth_refused_total{{reason=\"{reason}\"}}");
        let n: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("{line} missing"));
        assert!(n > 0, "{line} counted");
    }
    assert!(!metrics.contains(&valid), "no token in the metrics");
}

/// A room's host (whose seat keeps the room), a fresh connection of `kind` to join it,
/// and its code.
async fn s_room(sign: &Signing, kind: &str, t: String) -> (Client, Client, String) {
    let mut host = sign.s.ws().await;
    let room = match create_signed(&mut host, Some(&t), "Host").await {
        ServerEvent::Created(info) => info.room_code,
        other => panic!("{other:?}"),
    };
    (host, sign.s.client(kind).await, room)
}

#[tokio::test]
async fn rooms_and_create_claims_forbid_and_one_sub_holds_one_seat() {
    let sign = Signing::start(Algorithm::HS256, |_| {}).await;
    for kind in KINDS {
        let mut host = sign.s.client(kind).await;
        let t = sign.token(json!({"sub": format!("host-{kind}")}));
        let room = match create_signed(&mut host, Some(&t), "Host").await {
            ServerEvent::Created(info) => info.room_code,
            other => panic!("{other:?}"),
        };
        let mut c = sign.s.client(kind).await;
        // `create: false`: no room of its own, and the connection is still usable.
        let no_create = sign.token(json!({"sub": format!("guest-{kind}"), "create": false}));
        let answer = create_signed(&mut c, Some(&no_create), "Guest").await;
        assert_eq!(
            code_of(&answer),
            Some(ErrorCode::Forbidden),
            "{kind}: {answer:?}"
        );
        // `rooms` without this room.
        let elsewhere = sign.token(json!({"sub": format!("guest-{kind}"), "rooms": ["ZZZZZZ"]}));
        let answer = join_signed(&mut c, &room, Some(&elsewhere), "Guest").await;
        assert_eq!(
            code_of(&answer),
            Some(ErrorCode::Forbidden),
            "{kind}: {answer:?}"
        );
        // `rooms` with it, as typed in lower case.
        let here = sign.token(json!({
            "sub": format!("guest-{kind}"), "rooms": [room.to_lowercase()], "create": false,
        }));
        let joined = match join_signed(&mut c, &room, Some(&here), "Guest").await {
            ServerEvent::Joined(info) => info,
            other => panic!("{kind}: {other:?}"),
        };
        // The same `sub` again, under another name: one seat per user.
        let mut twin = sign.s.client(kind).await;
        let answer = join_signed(&mut twin, &room, Some(&here), "Guest Two").await;
        assert_eq!(
            code_of(&answer),
            Some(ErrorCode::NameTaken),
            "{kind}: {answer:?}"
        );
        // Still so while the seat is away; the seat's own resume is the way back.
        let last_seq = c.last_seq();
        c.abort();
        host.wait_for(T, |r| matches!(r.event(), ServerEvent::UserAway { .. }))
            .await
            .unwrap();
        let answer = join_signed(&mut twin, &room, Some(&here), "Guest Two").await;
        assert_eq!(
            code_of(&answer),
            Some(ErrorCode::NameTaken),
            "{kind}, away: {answer:?}"
        );
        let mut back = sign.s.client(kind).await;
        back.resume(&room, &joined.resume_token, last_seq)
            .await
            .expect("a resume needs no JWT");
    }
}

#[tokio::test]
async fn a_seat_whose_token_runs_out_is_closed_and_leaves_unless_refreshed() {
    // No leeway, so that a token lives seconds, not half a minute, in this test.
    let sign = Signing::start(Algorithm::HS256, |c| c.jwt_leeway = Duration::ZERO).await;
    for kind in KINDS {
        let mut host = sign.s.ws().await;
        let th = sign.token(json!({"sub": format!("host-{kind}")}));
        let room = match create_signed(&mut host, Some(&th), "Host").await {
            ServerEvent::Created(info) => info.room_code,
            other => panic!("{other:?}"),
        };
        // Refreshed ahead of its expiry: the seat stays.
        let mut kept = sign.s.client(kind).await;
        let short = sign.token(json!({"sub": format!("kept-{kind}"), "exp": now() + 2}));
        let kept_id = match join_signed(&mut kept, &room, Some(&short), "Kept").await {
            ServerEvent::Joined(info) => info.user_id,
            other => panic!("{kind}: {other:?}"),
        };
        let fresh = sign.token(json!({"sub": format!("kept-{kind}"), "exp": now() + 600}));
        let answer = kept
            .request("auth:refresh", json!({ "token": fresh }))
            .await
            .unwrap();
        assert!(
            matches!(answer.event, ServerEvent::AuthRefreshed { exp } if exp >= now() + 590),
            "{kind}: {:?}",
            answer.event
        );
        // A refresh for another user is forbidden, and changes nothing.
        let other = sign.token(json!({"sub": "someone-else", "exp": now() + 600}));
        let answer = kept
            .request("auth:refresh", json!({ "token": other }))
            .await
            .unwrap();
        assert_eq!(code_of(&answer.event), Some(ErrorCode::Forbidden), "{kind}");

        // Not refreshed: token_expired, the close, and the seat leaves.
        let mut lapsing = sign.s.client(kind).await;
        let short = sign.token(json!({"sub": format!("lapsing-{kind}"), "exp": now() + 2}));
        let lapsing_id = match join_signed(&mut lapsing, &room, Some(&short), "Lapsing").await {
            ServerEvent::Joined(info) => info.user_id,
            other => panic!("{kind}: {other:?}"),
        };
        let err = expect_error(&mut lapsing, ErrorCode::TokenExpired, kind).await;
        let _ = err;
        let closed = lapsing.wait_closed(T).await.unwrap();
        match (kind, &closed) {
            ("ws", Closed::WebSocket { code, reason }) => {
                assert_eq!((*code, reason.as_str()), (4003, "token expired"))
            }
            ("wt", Closed::WebTransport { code, reason }) => {
                assert_eq!((*code, reason.as_str()), (7, "token expired"))
            }
            other => panic!("{other:?}"),
        }
        let left = host
            .wait_for(T, |r| matches!(r.event(), ServerEvent::UserLeft { .. }))
            .await
            .unwrap();
        assert_eq!(
            left.event(),
            &ServerEvent::UserLeft {
                user_id: lapsing_id
            },
            "{kind}: the seat left, with no resume window"
        );
        // The refreshed seat is still there, past its first token's expiry.
        kept.broadcast(&room, "still", &json!({})).await.unwrap();
        let heard = host
            .wait_for(T, |r| matches!(r.event(), ServerEvent::Broadcast { .. }))
            .await
            .unwrap();
        assert!(
            matches!(heard.event(), ServerEvent::Broadcast { sender_id, .. } if *sender_id == kept_id),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn a_refresh_outside_a_room_or_without_sign_in_is_refused() {
    let sign = Signing::start(Algorithm::HS256, |_| {}).await;
    let mut c = sign.s.ws().await;
    let t = sign.token(json!({"sub": "u"}));
    let answer = c
        .request("auth:refresh", json!({ "token": t }))
        .await
        .unwrap();
    assert_eq!(code_of(&answer.event), Some(ErrorCode::NotInSession));

    let plain = TestServer::start().await;
    let mut c = plain.ws().await;
    create_with(
        &mut c,
        json!({"name": "Ana", "token": "ignored.when.off"}),
        "off",
    )
    .await;
    let answer = c
        .request("auth:refresh", json!({ "token": t }))
        .await
        .unwrap();
    assert_eq!(code_of(&answer.event), Some(ErrorCode::InvalidMessage));
    let (_, body) = plain.get("/connect").await;
    let connect: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(connect.get("auth"), None, "no sign-in, no auth key");
    // The provider's refresh is refused the same way, as an error the caller can read.
    c.set_token_provider(Arc::new(|| Some("x.y.z".into())));
    assert!(matches!(
        c.refresh_token().await,
        Err(ClientError::Refused { .. })
    ));
}
