//! The real binary's command line: a value the server cannot run with stops it at start
//! with a message naming the flag, instead of a panic later.

use std::process::Command;

fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_jam-server"))
        .args(["--http-addr", "127.0.0.1:0", "--wt-addr", "127.0.0.1:0"])
        .arg("--ephemeral-cert")
        .args(args)
        .output()
        .expect("the binary runs");
    assert!(!out.status.success(), "{args:?} was accepted");
    assert_eq!(out.status.code(), Some(2), "{args:?}: a usage error");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_zero_ping_interval_is_refused_with_the_flag_named() {
    let err = refused(&["--ping-interval", "0s"]);
    assert!(err.contains("--ping-interval is 0s"), "{err}");
    let err = refused(&["--peer-timeout", "5s", "--ping-interval", "10s"]);
    assert!(err.contains("must be shorter than --peer-timeout"), "{err}");
    let err = refused(&["--outbox-capacity", "0"]);
    assert!(err.contains("--outbox-capacity is 0"), "{err}");
}

#[test]
fn a_message_limit_larger_than_a_receiver_can_take_is_refused() {
    let err = refused(&["--max-message-bytes", "300000"]);
    assert!(err.contains("--max-message-bytes"), "{err}");
    assert!(err.contains("131072"), "the limit is named: {err}");
}

#[test]
fn an_origin_wildcard_over_a_public_suffix_is_refused() {
    let err = refused(&[
        "--allowed-origins",
        "https://jam.example.com,https://*.co.uk",
    ]);
    assert!(err.contains("https://*.co.uk"), "{err}");
    assert!(err.contains("public suffix"), "{err}");
}

#[test]
fn connection_caps_out_of_range_are_refused_with_the_flag_named() {
    let err = refused(&["--max-connections", "0"]);
    assert!(err.contains("--max-connections is 0"), "{err}");
    let err = refused(&["--max-http-connections-per-address", "0"]);
    assert!(
        err.contains("--max-http-connections-per-address is 0"),
        "{err}"
    );
    // hyper's smallest buffer; a smaller one would panic at the first connection.
    let err = refused(&["--http-buffer-bytes", "4096"]);
    assert!(err.contains("--http-buffer-bytes is 4096"), "{err}");
}

#[test]
fn quic_retry_and_handshake_caps_out_of_range_are_refused_with_the_flag_named() {
    let err = refused(&["--quic-retry", "sometimes"]);
    assert!(err.contains("--quic-retry"), "{err}");
    assert!(err.contains("auto, always or never"), "{err}");
    let err = refused(&["--max-handshakes-per-address", "0"]);
    assert!(err.contains("--max-handshakes-per-address is 0"), "{err}");
    let err = refused(&["--max-handshakes", "0"]);
    assert!(err.contains("--max-handshakes is 0"), "{err}");
}

#[test]
fn sign_in_keys_that_cannot_be_used_are_refused_with_the_flag_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let secret = path("secret", "a secret\n");
    let empty = path("empty", "\n");
    let junk = path(
        "junk.pem",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    );
    let missing = dir.path().join("missing").to_str().unwrap().to_string();

    let err = refused(&["--jwt-secret-file", &secret, "--jwt-public-key-file", &junk]);
    assert!(
        err.contains("--jwt-secret-file and --jwt-public-key-file"),
        "{err}"
    );
    let err = refused(&["--jwt-secret-file", &empty]);
    assert!(
        err.contains("--jwt-secret-file") && err.contains("empty"),
        "{err}"
    );
    let err = refused(&["--jwt-secret-file", &missing]);
    assert!(err.contains("--jwt-secret-file: cannot read"), "{err}");
    let err = refused(&["--jwt-public-key-file", &junk]);
    assert!(
        err.contains("--jwt-public-key-file") && err.contains("no RSA"),
        "{err}"
    );
    let err = refused(&["--jwt-issuer", "https://app.example"]);
    assert!(err.contains("--jwt-issuer needs a key"), "{err}");
    let err = refused(&["--jwt-secret-file", &secret, "--jwt-audience", ""]);
    assert!(err.contains("--jwt-audience cannot be empty"), "{err}");
    // The secret itself is never printed.
    let err = refused(&["--jwt-secret-file", &secret, "--jwt-audience", ""]);
    assert!(!err.contains("a secret"), "{err}");
}
