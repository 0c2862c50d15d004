//! Ephemeral events (docs/protocol.md §11): relayed on the path they came on, but never
//! numbered, kept or replayed, and marked `"ephemeral": true` when relayed; datagram-class
//! events are always ephemeral.

mod common;

use common::{room_of_two, TestServer, T};
use jam_client::Received;
use jam_protocol::ServerEvent;
use serde_json::{json, Value};

fn is_note(r: &Received) -> bool {
    matches!(r.event(), ServerEvent::Broadcast { .. })
}

fn raw(r: &Received) -> Value {
    serde_json::from_slice(&r.raw).unwrap()
}

#[tokio::test]
async fn an_ephemeral_note_is_relayed_without_seq_and_never_replayed() {
    let s = TestServer::start().await;
    let (mut a, mut b, joined) = room_of_two(&s, "ws", "wt").await;
    let room = joined.room_code.clone();
    let note = |ephemeral: Option<Value>, n: u32| {
        let mut data = json!({"roomCode": room, "eventName": "note", "payload": {"n": n}});
        if let Some(e) = ephemeral {
            data["ephemeral"] = e;
        }
        json!({"event": "event:broadcast", "data": data})
    };
    let last_seq = b.last_seq();

    // On the reliable path: relayed, no seq, marked.
    a.send(&note(Some(json!(true)), 1)).await.unwrap();
    let got = b.wait_for(T, is_note).await.unwrap();
    assert_eq!(got.message.seq, None, "an ephemeral event gets no seq");
    assert_eq!(raw(&got)["data"]["ephemeral"], true);
    assert_eq!(raw(&got)["data"]["payload"]["n"], 1);
    // Not ephemeral (false, or absent): numbered, not marked.
    for (ephemeral, n) in [(Some(json!(false)), 2), (None, 3)] {
        a.send(&note(ephemeral, n)).await.unwrap();
        let got = b.wait_for(T, is_note).await.unwrap();
        assert!(got.message.seq.is_some(), "note {n} is numbered");
        assert_eq!(raw(&got)["data"].get("ephemeral"), None);
    }
    // A datagram is always ephemeral.
    b.broadcast_datagram(&room, "note", &json!({"n": 4}))
        .unwrap();
    let got = a.wait_for(T, is_note).await.unwrap();
    assert_eq!(raw(&got)["data"]["ephemeral"], true);

    // B's link drops; it resumes from before the first note: only the two numbered ones
    // are replayed.
    b.abort();
    a.wait_for(T, |r| matches!(r.event(), ServerEvent::UserAway { .. }))
        .await
        .unwrap();
    let mut b2 = s.ws().await;
    let back = b2
        .resume(&room, &joined.resume_token, last_seq)
        .await
        .unwrap();
    assert_eq!(back.replayed, Some(true));
    let mut replayed = Vec::new();
    while replayed.len() < 2 {
        let got = b2.wait_for(T, is_note).await.unwrap();
        replayed.push(raw(&got)["data"]["payload"]["n"].clone());
    }
    assert_eq!(replayed, [json!(2), json!(3)]);
    // Nothing else was kept: a marker sent now is the next thing B hears.
    a.send(&note(None, 5)).await.unwrap();
    let next = b2.wait_for(T, is_note).await.unwrap();
    assert_eq!(raw(&next)["data"]["payload"]["n"], 5);
}

#[tokio::test]
async fn ephemeral_other_than_true_or_false_is_invalid() {
    let s = TestServer::start().await;
    let (mut a, _b, joined) = room_of_two(&s, "ws", "ws").await;
    for bad in [json!(null), json!("yes"), json!(1), json!({})] {
        let msg = json!({"event": "event:broadcast", "id": 7, "data": {
            "roomCode": joined.room_code, "eventName": "note", "payload": 1, "ephemeral": bad
        }});
        a.send(&msg).await.unwrap();
        let got =
            common::expect_error(&mut a, jam_protocol::ErrorCode::InvalidMessage, "ephemeral")
                .await;
        assert_eq!(got, Some(json!(7)), "{bad}");
    }
}
