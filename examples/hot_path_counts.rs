//! The hot path of `benches/hot_path.rs` as fixed work for callgrind, whose instruction
//! counts repeat run after run where wall-clock timings on a shared machine do not.
//!
//! ```text
//! cargo build --profile profiling --example hot_path_counts
//! valgrind --tool=callgrind --collect-atstart=no \
//!     --toggle-collect='hot_path_counts::run_full' --callgrind-out-file=full.out \
//!     target/profiling/examples/hot_path_counts 10000
//! grep '^totals:' full.out
//! ```
//!
//! Each `run_*` function handles the given number of events (10,000 by default); its
//! inclusive instruction count divided by that number is the cost of one event.

use std::hint::black_box;

use bytes::Bytes;
use jam_server::protocol::{self, ClientMessage, Envelope, ServerEvent, ServerMessage, UserId};
use jam_server::room::{Hub, Limits, Outbox, Path};
use jam_server::session::{Session, SessionLimits};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const RECEIVERS: usize = 7;

/// The bench's note event.
fn event_text(room: &str) -> String {
    format!(
        "{{\"event\":\"event:broadcast\",\"data\":{{\"roomCode\":\"{room}\",\"eventName\":\"note\",\
         \"payload\":{{\"jb\":[12,345,1234567890,1234568000],\"type\":\"noteOn\",\"note\":60,\
         \"velocity\":100,\"channel\":0,\"instrument\":\"piano\"}}}}}}"
    )
}

/// A room of one sender and 7 receivers on reliable paths, with the receivers' queues.
fn room() -> (String, Session, Vec<mpsc::Receiver<Bytes>>) {
    let hub = Hub::new(Limits::default());
    let limits = SessionLimits {
        max_message_bytes: 16 * 1024,
        rate_limit: u32::MAX,
        rate_burst: u32::MAX,
    };
    let open = || {
        let (outbox, rx) = Outbox::new(1024, None, CancellationToken::new(), hub.stats().clone());
        (Session::new(hub.clone(), outbox, limits.clone()), rx)
    };
    let (mut sender, mut sender_rx) = open();
    sender.handle_text(
        r#"{"event":"session:create","data":{"name":"p0"}}"#,
        Path::Reliable,
    );
    let created = sender_rx.try_recv().expect("session:created");
    let code = match ServerMessage::from_json(&created).map(|m| m.event) {
        Ok(ServerEvent::Created(info)) => info.room_code,
        other => panic!("expected session:created, got {other:?}"),
    };
    let mut queues = Vec::new();
    for i in 1..=RECEIVERS {
        let (mut s, mut rx) = open();
        s.handle_text(
            &format!(r#"{{"event":"session:join","data":{{"roomCode":"{code}","name":"p{i}"}}}}"#),
            Path::Reliable,
        );
        while rx.try_recv().is_ok() {}
        // Sessions must outlive their memberships.
        Box::leak(Box::new(s));
        queues.push(rx);
    }
    Box::leak(Box::new(sender_rx));
    for q in &mut queues {
        while q.try_recv().is_ok() {}
    }
    (code, sender, queues)
}

#[inline(never)]
fn run_decode(text: &str, n: usize) {
    for _ in 0..n {
        let env = Envelope::parse(black_box(text)).expect("valid envelope");
        match env.message().expect("valid broadcast") {
            ClientMessage::Broadcast(b) => black_box(b.payload),
            _ => unreachable!(),
        };
    }
}

#[inline(never)]
fn run_encode(payload: &RawValue, sender: &UserId, n: usize) {
    for _ in 0..n {
        black_box(protocol::encode_broadcast(
            "note",
            black_box(payload),
            sender,
        ));
    }
}

#[inline(never)]
fn run_full(sender: &mut Session, queues: &mut [mpsc::Receiver<Bytes>], text: &str, n: usize) {
    for _ in 0..n {
        sender.handle_text(black_box(text), Path::Reliable);
        let mut delivered = 0;
        for q in queues.iter_mut() {
            while let Ok(b) = q.try_recv() {
                black_box(b);
                delivered += 1;
            }
        }
        assert_eq!(delivered, RECEIVERS);
    }
}

fn main() {
    let n = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a number of events"))
        .unwrap_or(10_000);
    let (code, mut sender, mut queues) = room();
    let text = event_text(&code);
    let payload: &RawValue = serde_json::from_str(
        r#"{"jb":[12,345,1234567890,1234568000],"type":"noteOn","note":60,"velocity":100,"channel":0,"instrument":"piano"}"#,
    )
    .expect("valid JSON");
    let user = UserId::generate();
    run_decode(&text, n);
    run_encode(payload, &user, n);
    run_full(&mut sender, &mut queues, &text, n);
}
