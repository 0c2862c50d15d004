//! The server's hot path without sockets: one incoming `event:broadcast` is parsed
//! (`jam_protocol::Envelope::parse` + `message()`), routed to its room, encoded once
//! (`jam_protocol::encode_broadcast`) and handed to 7 receivers (`room::Hub` + `outbox::Outbox`),
//! whose queues the bench drains. Criterion measures the time; a counting global
//! allocator, run outside Criterion's timing, counts heap allocations per event.
//!
//! `cargo bench --bench hot_path` (add `-- --quick` for a short run).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput};
use jam_protocol::{self as protocol, ClientMessage, Encoding, Envelope, RoomCode};
use jam_server::outbox::{Path, Relayed};

mod support;
use support::{drain, event_text, room, room_of, Room, RECEIVERS};

/// Counts every allocation and reallocation of the process.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Parse + validate only.
fn decode(text: &str) -> usize {
    let env = Envelope::parse(text).expect("valid envelope");
    match env.message().expect("valid broadcast") {
        ClientMessage::Broadcast(b) => b.payload.get().len(),
        _ => unreachable!(),
    }
}

/// A server time of today, in µs, as the session stamps every relayed event.
const SERVER_TIME_US: u64 = 1_796_007_548_777_423;

/// Encode once, the way the session does (the session reads the clock first; the full
/// path below includes that read).
fn encode(payload: &serde_json::value::RawValue, sender: &jam_protocol::UserId) -> Relayed {
    Relayed::new(protocol::encode_broadcast(
        "note",
        payload,
        sender,
        SERVER_TIME_US,
    ))
}

/// The whole path: one event into the sender's session, 7 deliveries out of the queues.
fn full(r: &mut Room, text: &str) -> usize {
    r.sender.handle_text(text, Path::Reliable);
    drain(r)
}

fn full_datagram(r: &mut Room, bytes: &[u8]) -> usize {
    r.sender.handle_datagram(bytes);
    drain(r)
}

fn count_allocs(n: u64, mut f: impl FnMut()) -> (f64, f64) {
    let (a0, b0) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for _ in 0..n {
        f();
    }
    let (a1, b1) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    ((a1 - a0) as f64 / n as f64, (b1 - b0) as f64 / n as f64)
}

/// The payload of a realistic note event, as raw JSON.
fn note_payload() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(
        r#"{"jb":[12,345,1234567890,1234568000],"type":"noteOn","note":60,"velocity":100,"channel":0,"instrument":"piano"}"#
            .to_owned(),
    )
    .expect("valid JSON")
}

/// Allocations per event for each stage, printed before Criterion runs.
fn allocation_report() {
    const N: u64 = 20_000;
    let user = jam_protocol::UserId::generate();
    let mut reliable = room(None);
    let text = event_text(&reliable.code);
    let raw = note_payload();
    let code = RoomCode::normalize(&reliable.code).expect("room code");
    let mut dgram_json = room(Some(Encoding::Json));
    let dgram_text = event_text(&dgram_json.code);
    let mut one = room_of(None, 1);
    let one_text = event_text(&one.code);
    let mut dgram_one = room_of(Some(Encoding::Json), 1);
    let dgram_one_text = event_text(&dgram_one.code);
    let mut dgram_mp = room(Some(Encoding::MsgPack));
    let mp_text = event_text(&dgram_mp.code);

    let rows: Vec<(&str, (f64, f64))> = vec![
        (
            "decode (parse + message)",
            count_allocs(N, || {
                black_box(decode(black_box(&text)));
            }),
        ),
        (
            "route (room code check)",
            count_allocs(N, || {
                black_box(RoomCode::normalize(black_box(code.as_str())) == Some(code.clone()));
            }),
        ),
        (
            "encode once (encode_broadcast)",
            count_allocs(N, || {
                black_box(encode(&raw, &user));
            }),
        ),
        (
            "full, 1 WebSocket/stream receiver",
            count_allocs(N, || {
                assert_eq!(full(&mut one, &one_text), 1);
            }),
        ),
        (
            "full, 1 JSON datagram receiver",
            count_allocs(N, || {
                black_box(full_datagram(&mut dgram_one, dgram_one_text.as_bytes()));
            }),
        ),
        (
            "full, 7 WebSocket/stream receivers",
            count_allocs(N, || {
                assert_eq!(full(&mut reliable, &text), RECEIVERS);
            }),
        ),
        (
            "full, 7 JSON datagram receivers",
            count_allocs(N, || {
                black_box(full_datagram(&mut dgram_json, dgram_text.as_bytes()));
            }),
        ),
        (
            "full, 7 MessagePack datagram receivers",
            count_allocs(N, || {
                black_box(full_datagram(&mut dgram_mp, mp_text.as_bytes()));
            }),
        ),
    ];
    println!("hot_path allocations ({N} events each, counted outside Criterion's timing):");
    for (name, (allocs, bytes)) in rows {
        println!("  {name:<40} {allocs:>6.2} allocations/event, {bytes:>7.0} bytes/event");
    }
}

fn benches(c: &mut Criterion) {
    let user = jam_protocol::UserId::generate();
    let mut reliable = room(None);
    let text = event_text(&reliable.code);
    let raw = note_payload();
    let mut g = c.benchmark_group("hot_path");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode", |b| b.iter(|| decode(black_box(&text))));
    g.bench_function("encode_once", |b| b.iter(|| encode(black_box(&raw), &user)));
    g.bench_function(BenchmarkId::new("full_reliable", RECEIVERS), |b| {
        b.iter(|| full(&mut reliable, black_box(&text)))
    });
    let mut dj = room(Some(Encoding::Json));
    let dj_text = event_text(&dj.code);
    g.bench_function(BenchmarkId::new("full_datagram_json", RECEIVERS), |b| {
        b.iter(|| full_datagram(&mut dj, black_box(dj_text.as_bytes())))
    });
    let mut dm = room(Some(Encoding::MsgPack));
    let dm_text = event_text(&dm.code);
    g.bench_function(BenchmarkId::new("full_datagram_msgpack", RECEIVERS), |b| {
        b.iter(|| full_datagram(&mut dm, black_box(dm_text.as_bytes())))
    });
    g.finish();
}

fn main() {
    allocation_report();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
