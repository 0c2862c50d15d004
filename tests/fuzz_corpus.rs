//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the very bodies the
//! cargo-fuzz targets run (`fuzz/src/lib.rs`, included here), so plain `cargo test` on
//! stable keeps every input the fuzzer found interesting, crashes it once found included,
//! passing. Fuzzing itself needs nightly: see docs/testing.md, "Fuzzing".

use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod bodies;

/// Every file of one target's corpus; panics if there are none, so a corpus that went
/// missing fails the test rather than passing it empty.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "{}: only {} files",
        dir.display(),
        files.len()
    );
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a corpus file");
            (p, bytes)
        })
        .collect()
}

/// Runs `body` on every file of `target`'s corpus, naming the file that fails.
fn replay(target: &str, body: fn(&[u8])) {
    for (path, bytes) in corpus(target) {
        let outcome = std::panic::catch_unwind(|| body(&bytes));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
    }
}

#[test]
fn envelope_corpus_replays() {
    replay("envelope", bodies::envelope);
}

#[test]
fn lines_corpus_replays() {
    replay("lines", bodies::lines);
}

#[test]
fn session_corpus_replays_and_reaches_every_part_of_the_state_machine() {
    let mut seen = bodies::Seen::new();
    for (path, bytes) in corpus("session") {
        match std::panic::catch_unwind(|| bodies::session(&bytes)) {
            Ok(kinds) => seen.extend(kinds),
            Err(_) => panic!("session: {} fails", path.display()),
        }
    }
    // What the corpus must keep reaching, so that a change that makes the state machine
    // refuse early (and the corpus pass trivially) fails here.
    let want = [
        "session:created",
        "session:joined",
        "session:resumed",
        "taken over",
        "session:left",
        "session:user-joined",
        "session:user-left",
        "session:user-away",
        "session:user-back",
        "session:host-changed",
        "event:broadcast",
        "datagram",
        "clock:pong",
        "tempo:changed",
        "invalid_message",
        "not_in_session",
        "already_in_session",
        "room_not_found",
        "room_full",
        "name_taken",
        "rate_limited",
        "payload_too_large",
        "resume_failed",
    ];
    let missing: Vec<_> = want.iter().filter(|k| !seen.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "never reached: {missing:?}; seen {seen:?}"
    );
}

/// What the fuzz targets found, by hand (their inputs are in the corpus too): a JSON number
/// one ulp off after MessagePack (`-20e200`), MessagePack nested deeper than JSON may be,
/// and numbers beyond f64 that the server copies as written (legal JSON; a serde_json
/// client must still read the rest of the message).
#[test]
fn the_fuzzers_findings_stay_fixed() {
    bodies::envelope(b"-20e200");
    let mut deep = vec![0x81, 0xa2, b'i', b'd', 0x07, 0xa5];
    deep.extend_from_slice(b"event");
    deep.extend(std::iter::repeat_n(0x91, 200));
    deep.push(0xc0);
    bodies::envelope(&deep);
    bodies::envelope(br#"{"id":1e400,"event":"nope","data":{}}"#);
    bodies::envelope(
        br#"{"event":"event:broadcast","data":{"roomCode":"A","eventName":"n","payload":[1e400]}}"#,
    );
    // Two connections in a room: the first relays a payload beyond f64 and pings with
    // such a t0; both must still read as messages.
    let mut session = vec![0u8];
    for (head, text) in [
        (0u8, r#"{"event":"session:create","data":{"name":"A"}}"#),
        (
            1,
            r#"{"event":"session:join","data":{"roomCode":"$C0","name":"B"},"id":-1e999}"#,
        ),
        (
            0,
            r#"{"event":"event:broadcast","data":{"roomCode":"$C0","eventName":"n","payload":{"v":1e400}}}"#,
        ),
        (13, r#"{"event":"clock:ping","data":{"t0":9e999}}"#),
    ] {
        session.push(b'\n');
        session.push(head);
        session.extend_from_slice(text.as_bytes());
    }
    let seen = bodies::session(&session);
    assert!(
        seen.contains("session:joined") && seen.contains("event:broadcast"),
        "{seen:?}"
    );
}
