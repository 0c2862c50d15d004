//! Receivers that stop reading, on the transports whose buffers sit below the outbox: a
//! burst that fits the outbox (in messages and in bytes) but not the peer's windows leaves
//! the server's writes blocked, and the member is cut off within the peer timeout, with the
//! server's memory bounded meanwhile. (The WebSocket case is in `transport.rs`.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use jam_protocol::ServerEvent;
use serde_json::json;

const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// ~3 MB of reliable events: fewer than the outbox's 1024 messages and its 4 MiB, more than
/// what QUIC's windows take.
const BURST: usize = 200;
const PAD: usize = 15_000;

/// A server with a short peer timeout and no event rate limit to speak of, and a
/// WebSocket member that created a room, to send the burst.
async fn room_with_sender() -> (TestServer, jam_client::Client, jam_protocol::SessionInfo) {
    let s = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_millis(200);
        c.peer_timeout = PEER_TIMEOUT;
        c.rate_limit = 100_000;
        c.rate_burst = 100_000;
    })
    .await;
    let mut sender = s.ws().await;
    let room = create(&mut sender, "S").await;
    (s, sender, room)
}

#[tokio::test]
async fn a_webtransport_receiver_that_stops_reading_its_control_stream_is_cut_off() {
    let (s, mut sender, room) = room_with_sender().await;

    // The stalled member: a WebTransport session that joins on its control stream and
    // never reads it (its QUIC stack still answers, so the session is not idle).
    let endpoint = jam_client::wt_endpoint(&s.server.cert_hash(), None).unwrap();
    let session = endpoint
        .connect(s.server.wt_url())
        .await
        .expect("wt connects");
    let (mut send, _never_read) = session.open_bi().await.unwrap().await.unwrap();
    let join = json!({"event":"session:join","data":{"roomCode": room.room_code, "name": "Stall"}});
    send.write_all(format!("{join}\n").as_bytes())
        .await
        .unwrap();
    let ServerEvent::UserJoined(stalled) = next_event(&mut sender).await else {
        panic!("the stalled member joins")
    };

    let rss_before = jam_server::metrics::resident_bytes().unwrap();
    let pad = "p".repeat(PAD);
    for i in 0..BURST {
        sender
            .broadcast(&room.room_code, "note", &json!({"i": i, "pad": pad}))
            .await
            .unwrap();
    }
    let burst_sent = Instant::now();
    let away = sender
        .wait_for(PEER_TIMEOUT + T, |r| {
            matches!(r.event(), ServerEvent::UserAway { .. })
        })
        .await
        .expect("the stalled member is cut off");
    let cut_off = burst_sent.elapsed();
    assert_eq!(
        away.message.event,
        ServerEvent::UserAway {
            user_id: stalled.id,
            reason: Some(jam_protocol::AwayReason::Disconnected),
        }
    );
    let closed = tokio::time::timeout(T, session.closed())
        .await
        .expect("the session is closed");
    let rss_growth = jam_server::metrics::resident_bytes()
        .unwrap()
        .saturating_sub(rss_before);
    eprintln!("cut off {cut_off:?} after the burst ({closed}); RSS grew {rss_growth} bytes");
    assert!(
        closed.to_string().contains("outgoing queue overflowed")
            || closed.to_string().contains('2'),
        "closed as a slow consumer: {closed}"
    );
    assert!(s.server.stats().snapshot().slow_consumers >= 1);
    assert!(
        cut_off < PEER_TIMEOUT + Duration::from_secs(2),
        "cut off only after {cut_off:?}"
    );
    assert!(
        rss_growth < 32 * 1024 * 1024,
        "RSS grew {rss_growth} bytes for one stalled member"
    );
}
