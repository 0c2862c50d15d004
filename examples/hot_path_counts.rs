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
use jam_protocol::{self as protocol, ClientMessage, Envelope, UserId};
use jam_server::outbox::{Inbox, Path};
use jam_server::session::Session;
use serde_json::value::RawValue;

#[path = "../benches/support/mod.rs"]
mod support;
use support::{room, RECEIVERS};

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
            1_796_007_548_777_423,
        ));
    }
}

#[inline(never)]
fn run_full(sender: &mut Session, queues: &mut [Inbox<Bytes>], text: &str, n: usize) {
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
    let mut r = room(None);
    let text = support::event_text(&r.code);
    let payload: &RawValue = serde_json::from_str(
        r#"{"jb":[12,345,1234567890,1234568000],"type":"noteOn","note":60,"velocity":100,"channel":0,"instrument":"piano"}"#,
    )
    .expect("valid JSON");
    let user = UserId::generate();
    run_decode(&text, n);
    run_encode(payload, &user, n);
    run_full(&mut r.sender, &mut r.queues, &text, n);
}
