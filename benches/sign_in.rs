//! What signing in costs per create, join or refresh (docs/protocol.md §13): one
//! `Auth::verify` of a valid token, for each key kind the server accepts. The note path
//! does no token work, so this is the whole cost of sign-in on a busy server: once per
//! seat, and once per refresh.
//!
//! `cargo bench --bench sign_in` (needs `openssl` for the RSA, EC and Ed25519 keys).

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::Criterion;
use jam_server::auth::{Auth, AuthFlags};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

/// A private key made by `openssl genpkey` and its public key's file.
fn openssl_pair(dir: &Path, name: &str, genpkey: &[&str]) -> (Vec<u8>, std::path::PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let run = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .status()
            .expect("openssl runs");
        assert!(ok.success(), "openssl {args:?}");
    };
    let p = private.to_str().unwrap();
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey);
    args.extend_from_slice(&["-out", p]);
    run(&args);
    run(&[
        "pkey",
        "-in",
        p,
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (std::fs::read(&private).unwrap(), public)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = json!({"sub": "app-user-1", "name": "Ana", "rooms": ["K7F3QX"], "exp": exp});
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "a bench secret of thirty-two bytes").unwrap();

    let mut cases = vec![(
        "HS256",
        Auth::from_flags(AuthFlags {
            secret_file: Some(&secret),
            ..AuthFlags::default()
        })
        .unwrap()
        .unwrap(),
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"a bench secret of thirty-two bytes").unwrap(),
        )
        .unwrap(),
    )];
    let kinds: [(&str, Algorithm, &[&str]); 3] = [
        (
            "RS256",
            Algorithm::RS256,
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        ),
        (
            "ES256",
            Algorithm::ES256,
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        ("EdDSA", Algorithm::EdDSA, &["-algorithm", "ed25519"]),
    ];
    for (name, alg, genpkey) in kinds {
        let (private, public) = openssl_pair(dir.path(), name, genpkey);
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&private),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&private),
            _ => EncodingKey::from_ed_pem(&private),
        }
        .unwrap();
        let auth = Auth::from_flags(AuthFlags {
            public_key_file: Some(&public),
            ..AuthFlags::default()
        })
        .unwrap()
        .unwrap();
        cases.push((
            name,
            auth,
            encode(&Header::new(alg), &claims, &key).unwrap(),
        ));
    }

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("sign_in");
    for (name, auth, token) in &cases {
        assert!(
            auth.verify(Some(token)).is_ok(),
            "{name}: the token is valid"
        );
        group.bench_function(format!("verify_{name}"), |b| {
            b.iter(|| black_box(auth.verify(black_box(Some(token.as_str())))))
        });
    }
    group.finish();
    c.final_summary();
}
