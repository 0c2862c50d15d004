//! The acceptance criteria of the protocol on both transports and in mixed rooms:
//! create, join, presence, leave, host hand-over, broadcast fan-out.

mod common;

use common::*;
use jam_client::Via;
use jam_protocol::{ErrorCode, ServerEvent};
use serde_json::json;

#[tokio::test]
async fn create_join_presence_and_broadcast_on_each_transport() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let mut a = s.client(kind).await;
        let mut b = s.client(kind).await;
        let mut c = s.client(kind).await;

        let room = create(&mut a, "Ana").await;
        assert_eq!(room.room_code.len(), 6, "{kind}");
        assert_eq!(room.host_id, room.user_id);
        assert_eq!(room.participants.len(), 1);
        assert_eq!(room.participants[0].name, "Ana");
        assert_eq!(room.participants[0].instrument, "piano");

        let bj = b
            .join(&room.room_code, "Bo", "bass")
            .await
            .expect("b joins");
        assert_eq!(bj.room_code, room.room_code);
        assert_eq!(bj.host_id, room.user_id);
        let names: Vec<_> = bj.participants.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Ana", "Bo"], "{kind}: join order");
        match next_event(&mut a).await {
            ServerEvent::UserJoined(p) => {
                assert_eq!(p.id, bj.user_id);
                assert_eq!(p.name, "Bo");
                assert_eq!(p.instrument, "bass");
            }
            other => panic!("{kind}: expected user-joined, got {other:?}"),
        }
        let cj = c.join(&room.room_code, "Cy", "").await.expect("c joins");
        assert_eq!(cj.participants.len(), 3);
        assert!(matches!(next_event(&mut a).await, ServerEvent::UserJoined(p) if p.name == "Cy"));
        assert!(matches!(next_event(&mut b).await, ServerEvent::UserJoined(p) if p.name == "Cy"));

        // Broadcast reaches every other member and never its sender.
        let payload = json!({"type": "on", "note": 60, "velocity": 100});
        a.broadcast(&room.room_code, "note", &payload)
            .await
            .unwrap();
        for (who, rx) in [("b", &mut b), ("c", &mut c)] {
            match next_event(rx).await {
                ServerEvent::Broadcast {
                    event_name,
                    payload: p,
                    sender_id,
                    ..
                } => {
                    assert_eq!(event_name, "note");
                    assert_eq!(p, payload, "{kind}/{who}");
                    assert_eq!(sender_id, room.user_id);
                }
                other => panic!("{kind}/{who}: expected broadcast, got {other:?}"),
            }
        }
        // The sender hears nothing of it: its next message is its barrier's answer.
        barrier(&mut a, &format!("{kind}: sender")).await;

        // A disconnect gives the others user-away: the seat is held for a resume (1.1).
        drop(c);
        for rx in [&mut a, &mut b] {
            assert_eq!(
                next_event(rx).await,
                ServerEvent::UserAway {
                    user_id: cj.user_id.clone(),
                    reason: Some(jam_protocol::AwayReason::Disconnected),
                },
                "{kind}"
            );
        }
    }
}

#[tokio::test]
async fn unknown_room_answers_room_not_found() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let mut a = s.client(kind).await;
        a.send(&json!({"event":"session:join","data":{"roomCode":"ZZZZZZ","name":"A"},"id":"j1"}))
            .await
            .unwrap();
        let id = expect_error(&mut a, ErrorCode::RoomNotFound, kind).await;
        assert_eq!(id, Some(json!("j1")));
        // The connection stays usable.
        assert_usable(&mut a, kind).await;
    }
}

#[tokio::test]
async fn mixed_room_sees_joins_events_and_leaves_across_transports() {
    let s = TestServer::start().await;
    let (mut ws, mut wt, joined) = room_of_two(&s, "ws", "wt").await;
    let code = joined.room_code.as_str();

    ws.broadcast(code, "note", &json!({"n": 1})).await.unwrap();
    let got = next_broadcast(&mut wt).await;
    assert_eq!(
        got.via,
        Via::Stream,
        "a WebSocket event reaches WebTransport on its stream"
    );

    wt.broadcast(code, "note", &json!({"n": 2})).await.unwrap();
    let got = next_broadcast(&mut ws).await;
    assert!(
        matches!(got.event(), ServerEvent::Broadcast { payload, .. } if payload == &json!({"n": 2}))
    );

    wt.broadcast_datagram(code, "note", &json!({"n": 3}))
        .unwrap();
    let got = next_broadcast(&mut ws).await;
    assert_eq!(
        got.via,
        Via::WebSocket,
        "datagram events reach WebSocket on its socket"
    );

    wt.close().await.unwrap();
    assert_eq!(
        next_event(&mut ws).await,
        ServerEvent::UserLeft {
            user_id: joined.user_id
        }
    );
}

#[tokio::test]
async fn leave_keeps_the_connection_and_hands_over_the_host() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let mut a = s.client(kind).await;
        let mut b = s.client(kind).await;
        let mut c = s.client(kind).await;
        let room = create(&mut a, "A").await;
        let bj = b.join(&room.room_code, "B", "").await.unwrap();
        c.join(&room.room_code, "C", "").await.unwrap();

        let left = a.leave(&room.room_code.to_lowercase()).await.unwrap();
        assert_eq!(
            left.event,
            ServerEvent::Left {
                room_code: room.room_code.clone()
            }
        );
        for rx in [&mut b, &mut c] {
            // user-left first, then host-changed (joined-earliest becomes host).
            let ev = rx
                .wait_for(T, |r| matches!(r.event(), ServerEvent::UserLeft { .. }))
                .await
                .unwrap();
            assert_eq!(
                ev.message.event,
                ServerEvent::UserLeft {
                    user_id: room.user_id.clone()
                }
            );
            assert_eq!(
                next_event(rx).await,
                ServerEvent::HostChanged {
                    host_id: bj.user_id.clone()
                },
                "{kind}"
            );
        }
        // A can create or join again on the same connection.
        let again = a.join(&room.room_code, "A", "").await.unwrap();
        assert_eq!(again.host_id, bj.user_id);
        // After everyone leaves, the code is gone.
        b.leave(&room.room_code).await.unwrap();
        c.leave(&room.room_code).await.unwrap();
        a.leave(&room.room_code).await.unwrap();
        let mut d = s.client(kind).await;
        let err = d.join(&room.room_code, "D", "").await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::RoomNotFound));
    }
}
