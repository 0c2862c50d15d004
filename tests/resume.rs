//! Seats that survive the network (docs/protocol.md §6), on real sockets over both transports
//! and across them: away on a lost connection, resume with exact replay, tokens, the
//! order of checks, takeover, the resume window, and the 1.1 keep-alive defaults.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use jam_client::{Client, Closed, Received};
use jam_protocol::{ErrorCode, ServerEvent, SessionInfo, Status};
use serde_json::json;

/// Every pair of transports a seat can leave on and come back on.
const MOVES: [(&str, &str); 4] = [("ws", "ws"), ("wt", "wt"), ("ws", "wt"), ("wt", "ws")];

/// Waits for `who` to be announced away.
async fn wait_away(c: &mut Client, who: &str, ctx: &str) -> Received {
    c.wait_for(
        T,
        |r| matches!(r.event(), ServerEvent::UserAway { user_id, .. } if user_id == who),
    )
    .await
    .unwrap_or_else(|e| panic!("{ctx}: no user-away: {e}"))
}

/// The next message must be `session:user-back` for `who`.
async fn expect_back(c: &mut Client, who: &str, ctx: &str) {
    let r = c.next().await.unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert_eq!(
        r.message.event,
        ServerEvent::UserBack {
            user_id: who.to_owned()
        },
        "{ctx}"
    );
    assert!(r.message.seq.is_some(), "{ctx}: user-back carries a seq");
}

fn resumed(info: &SessionInfo, ctx: &str) -> bool {
    info.replayed
        .unwrap_or_else(|| panic!("{ctx}: no `replayed`"))
}

#[tokio::test]
async fn a_lost_seat_is_held_and_resumed_with_exact_replay_on_any_transport() {
    let s = TestServer::start().await;
    for (from, to) in MOVES {
        let ctx = format!("{from} -> {to}");
        let mut ana = s.wt().await;
        let room = create(&mut ana, "Ana").await;
        let mut bo = s.client(from).await;
        let b = bo.join(&room.room_code, "Bo", "bass").await.unwrap();
        assert!(matches!(
            next_event(&mut ana).await,
            ServerEvent::UserJoined(_)
        ));
        assert_eq!(b.seq, 1, "{ctx}: the join is the room's message 1");
        assert!(!b.resume_token.is_empty(), "{ctx}: a token");
        assert!(b.participants.iter().all(|p| p.status == Status::Active));

        // Bo's connection dies without a word of protocol.
        bo.abort();
        let away = wait_away(&mut ana, &b.user_id, &ctx).await;
        assert_eq!(away.message.seq, Some(2), "{ctx}");

        // Meanwhile: two reliable notes, a datagram note, and Cy joins.
        ana.broadcast(&room.room_code, "note", &json!({"n": 1}))
            .await
            .unwrap();
        ana.broadcast_datagram(&room.room_code, "note", &json!({"n": "dgram"}))
            .unwrap();
        ana.broadcast(&room.room_code, "note", &json!({"n": 2}))
            .await
            .unwrap();
        let mut cy = s.ws().await;
        let c = cy.join(&room.room_code, "Cy", "").await.unwrap();
        let away_bo = c.participants.iter().find(|p| p.id == b.user_id).unwrap();
        assert_eq!(
            away_bo.status,
            Status::Away,
            "{ctx}: the snapshot shows Bo away"
        );
        assert_eq!(c.seq, 5, "{ctx}");
        // Ana's next message is Cy's join (she never gets her own notes back).
        let join_seen_by_ana = ana.next().await.unwrap();
        assert!(
            matches!(join_seen_by_ana.event(), ServerEvent::UserJoined(_)),
            "{ctx}"
        );

        // Bo comes back on the other transport, from the last seq it saw.
        let mut bo2 = s.client(to).await;
        let r = bo2
            .resume(&room.room_code.to_lowercase(), &b.resume_token, Some(b.seq))
            .await
            .unwrap();
        assert_eq!(r.user_id, b.user_id, "{ctx}: the same seat");
        assert_eq!(r.host_id, room.user_id, "{ctx}");
        assert!(
            resumed(&r, &ctx),
            "{ctx}: all of it is still in the history"
        );
        assert_eq!(r.seq, 5, "{ctx}");
        assert_ne!(r.resume_token, b.resume_token, "{ctx}: a fresh token");
        let names: Vec<_> = r.participants.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Ana", "Bo", "Cy"], "{ctx}: join order kept");
        // Replayed: the two reliable notes and Cy's join, in order, with their seqs, as
        // first sent; not Bo's own away notice, not the datagram.
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(bo2.next().await.unwrap());
        }
        let seqs: Vec<_> = got.iter().map(|r| r.message.seq).collect();
        assert_eq!(seqs, [Some(3), Some(4), Some(5)], "{ctx}");
        for (r, n) in got.iter().zip([1, 2]) {
            assert!(
                matches!(r.event(), ServerEvent::Broadcast { payload, sender_id, .. }
                    if payload == &json!({"n": n}) && *sender_id == room.user_id),
                "{ctx}: {:?}",
                r.event()
            );
            assert_eq!(r.message.id, None, "{ctx}: replays carry no id");
        }
        assert_eq!(
            got[2].raw, join_seen_by_ana.raw,
            "{ctx}: replayed exactly as first sent"
        );
        barrier(&mut bo2, &ctx).await;
        // The others hear that Bo is back, and nothing else.
        expect_back(&mut ana, &b.user_id, &ctx).await;
        expect_back(&mut cy, &b.user_id, &ctx).await;
        barrier(&mut ana, &ctx).await;
        // Bo plays on, from its new connection.
        bo2.broadcast(&room.room_code, "note", &json!({"n": 3}))
            .await
            .unwrap();
        let r = next_broadcast(&mut cy).await;
        assert!(
            matches!(r.event(), ServerEvent::Broadcast { sender_id, .. } if *sender_id == b.user_id)
        );
    }
}

/// A room of Ana (host, WebSocket) and Bo on `kind`, Ana's `user-joined` drained.
async fn duo(s: &TestServer, kind: &str) -> (Client, SessionInfo, Client, SessionInfo) {
    let mut ana = s.ws().await;
    let a = create(&mut ana, "Ana").await;
    let mut bo = s.client(kind).await;
    let b = bo.join(&a.room_code, "Bo", "").await.unwrap();
    assert!(matches!(
        next_event(&mut ana).await,
        ServerEvent::UserJoined(_)
    ));
    (ana, a, bo, b)
}

#[tokio::test]
async fn nothing_is_replayed_past_the_history_without_last_seq_or_ahead_of_the_room() {
    let s = TestServer::start_with(|c| c.history_messages = 2).await;
    for kind in KINDS {
        let (mut ana, a, bo, b) = duo(&s, kind).await;
        bo.abort();
        wait_away(&mut ana, &b.user_id, kind).await;
        for n in 0..3 {
            ana.broadcast(&a.room_code, "note", &json!({ "n": n }))
                .await
                .unwrap();
        }
        let mut token = b.resume_token.clone();
        for last in [Some(b.seq), None, Some(1_000)] {
            let ctx = format!("{kind} lastSeq {last:?}");
            let mut bo2 = s.client(kind).await;
            let r = bo2.resume(&a.room_code, &token, last).await.unwrap();
            assert!(!resumed(&r, &ctx), "{ctx}");
            assert_eq!(r.seq, ana_seq(&mut ana, &b.user_id).await, "{ctx}");
            barrier(&mut bo2, &ctx).await;
            token = r.resume_token;
            bo2.abort();
            wait_away(&mut ana, &b.user_id, &ctx).await;
        }
    }
}

/// Drains `ana` up to the user-back of `who` and returns the seq before it (the seq a
/// resumed seat's answer carries).
async fn ana_seq(ana: &mut Client, who: &str) -> u64 {
    let back = ana
        .wait_for(
            T,
            |r| matches!(r.event(), ServerEvent::UserBack { user_id } if user_id == who),
        )
        .await
        .unwrap();
    back.message.seq.unwrap() - 1
}

#[tokio::test]
async fn tokens_are_single_use_room_bound_and_refusals_do_not_use_them_up() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let (mut ana, a, bo, b) = duo(&s, kind).await;
        let (_other, o, _, _) = duo(&s, kind).await;
        bo.abort();
        wait_away(&mut ana, &b.user_id, kind).await;
        let mut bo2 = s.client(kind).await;
        for (room, token, why) in [
            (o.room_code.as_str(), b.resume_token.clone(), "another room"),
            (
                a.room_code.as_str(),
                format!("{}A", b.resume_token),
                "forged",
            ),
            (a.room_code.as_str(), "not-a-token".to_owned(), "garbage"),
            ("ZZZZZZ", b.resume_token.clone(), "no such room"),
        ] {
            let err = bo2.resume(room, &token, None).await.unwrap_err();
            assert_eq!(err.code(), Some(ErrorCode::ResumeFailed), "{kind}: {why}");
        }
        let r = bo2
            .resume(&a.room_code, &b.resume_token, None)
            .await
            .unwrap();
        assert_eq!(r.user_id, b.user_id);
        // Used once: the old token now fails; the new one is what counts.
        let mut bo3 = s.client(kind).await;
        let err = bo3
            .resume(&a.room_code, &b.resume_token, None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::ResumeFailed), "{kind}: used");
        assert_usable(&mut bo3, kind).await;
        expect_back(&mut ana, &b.user_id, kind).await;
    }
}

#[tokio::test]
async fn resume_checks_envelope_then_fields_then_state_then_token() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let (_ana, a, mut bo, b) = duo(&s, kind).await;
        let send = |last: serde_json::Value, token: &str| {
            json!({"event": "session:resume", "id": 9,
                   "data": {"roomCode": a.room_code, "resumeToken": token, "lastSeq": last}})
        };
        // In a room: bad fields first, then already_in_session, even with a bad token.
        for bad in [json!(-1), json!(1.5), json!("3")] {
            bo.send(&send(bad, "x")).await.unwrap();
            let id = expect_error(&mut bo, ErrorCode::InvalidMessage, kind).await;
            assert_eq!(id, Some(json!(9)));
        }
        bo.send(&json!({"event": "session:resume", "data": {"roomCode": a.room_code}}))
            .await
            .unwrap();
        expect_error(&mut bo, ErrorCode::InvalidMessage, kind).await;
        bo.send(&send(json!(null), "x")).await.unwrap();
        expect_error(&mut bo, ErrorCode::AlreadyInSession, kind).await;
        bo.send(&send(json!(0), &b.resume_token)).await.unwrap();
        expect_error(&mut bo, ErrorCode::AlreadyInSession, kind).await;
        // Outside a room: the token decides.
        let mut c = s.client(kind).await;
        c.send(&send(json!(0), "x")).await.unwrap();
        expect_error(&mut c, ErrorCode::ResumeFailed, kind).await;
    }
}

#[tokio::test]
async fn a_resume_takes_over_a_connection_that_still_looks_alive() {
    let s = TestServer::start().await;
    for (from, to) in MOVES {
        let ctx = format!("{from} -> {to}");
        let (mut ana, a, mut bo, b) = duo(&s, from).await;
        let mut bo2 = s.client(to).await;
        let r = bo2
            .resume(&a.room_code, &b.resume_token, Some(b.seq))
            .await
            .unwrap();
        assert!(resumed(&r, &ctx));
        let closed = bo.wait_closed(T).await.expect("the old connection closes");
        let want = match from {
            "ws" => Closed::WebSocket {
                code: 4000,
                reason: "resumed elsewhere".into(),
            },
            _ => Closed::WebTransport {
                code: 5,
                reason: "resumed elsewhere".into(),
            },
        };
        assert_eq!(closed, want, "{ctx}");
        // For the others it is a resume like any other: user-back and nothing else.
        expect_back(&mut ana, &b.user_id, &ctx).await;
        barrier(&mut ana, &ctx).await;
        assert_eq!(r.seq, a.seq + 1, "{ctx}: nothing happened but Bo's join");
    }
}

#[tokio::test]
async fn a_held_seat_keeps_its_name_and_place_and_expires_into_a_leave() {
    let s = TestServer::start_with(|c| {
        c.resume_window = Duration::from_millis(600);
        c.max_room_size = 3;
    })
    .await;
    for kind in KINDS {
        // Bo hosts; Ana and Cy join.
        let mut bo = s.client(kind).await;
        let b = create(&mut bo, "Bo").await;
        let mut ana = s.ws().await;
        let a = ana.join(&b.room_code, "Ana", "").await.unwrap();
        let mut cy = s.ws().await;
        cy.join(&b.room_code, "Cy", "").await.unwrap();
        bo.abort();
        wait_away(&mut ana, &b.user_id, kind).await;
        // Held: the name is taken, the seat fills the room.
        let mut dee = s.ws().await;
        let err = dee.join(&b.room_code, "BO", "").await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(ErrorCode::RoomFull),
            "{kind}: 3 seats, one away"
        );
        cy.leave(&b.room_code).await.unwrap();
        let err = dee.join(&b.room_code, "BO", "").await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NameTaken), "{kind}");
        // The window ends: left, then the earliest-joined seat left hosts.
        let left = ana
            .wait_for(
                T,
                |r| matches!(r.event(), ServerEvent::UserLeft { user_id } if *user_id == b.user_id),
            )
            .await
            .unwrap();
        let next = ana.next().await.unwrap();
        assert_eq!(
            next.message.event,
            ServerEvent::HostChanged {
                host_id: a.user_id.clone()
            },
            "{kind}"
        );
        assert_eq!(next.message.seq, left.message.seq.map(|s| s + 1));
        let mut bo2 = s.client(kind).await;
        let err = bo2
            .resume(&b.room_code, &b.resume_token, None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::ResumeFailed), "{kind}: expired");
        dee.join(&b.room_code, "Bo", "")
            .await
            .expect("the name is free again");
    }
}

#[tokio::test]
async fn a_room_whose_seats_are_all_away_lives_until_the_last_window_ends() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let (ana, a, mut bo, b) = duo(&s, kind).await;
        ana.abort();
        wait_away(&mut bo, &a.user_id, kind).await;
        bo.abort();
        let mut ana2 = s.client(kind).await;
        let r = ana2
            .resume(&a.room_code, &a.resume_token, Some(a.seq))
            .await
            .unwrap();
        assert!(resumed(&r, kind));
        let bo_seat = r.participants.iter().find(|p| p.id == b.user_id).unwrap();
        assert_eq!(bo_seat.status, Status::Away, "{kind}");
        // Replayed to Ana: Bo's join, then Bo going away (Ana's own away is not).
        let first = ana2.next().await.unwrap();
        assert!(matches!(first.event(), ServerEvent::UserJoined(p) if p.id == b.user_id));
        let second = ana2.next().await.unwrap();
        assert_eq!(
            second.message.event,
            ServerEvent::UserAway {
                user_id: b.user_id.clone(),
                reason: Some(jam_protocol::AwayReason::Disconnected),
            }
        );
        barrier(&mut ana2, kind).await;
    }
}

#[tokio::test]
async fn a_silent_peer_turns_away_after_the_timeout_and_comes_back() {
    let s = TestServer::start_with_peer_timeout(Duration::from_secs(1)).await;
    for kind in KINDS {
        let mut ana = s.ws().await;
        let a = create(&mut ana, "Ana").await;
        let (mut ghost, dark) = s.silenceable(kind).await;
        let g = ghost.join(&a.room_code, "Ghost", "").await.unwrap();
        assert!(matches!(
            next_event(&mut ana).await,
            ServerEvent::UserJoined(_)
        ));
        dark.store(true, Ordering::Relaxed);
        wait_away(&mut ana, &g.user_id, kind).await;
        let mut back = s.client(kind).await;
        let r = back
            .resume(&a.room_code, &g.resume_token, ghost.last_seq())
            .await
            .unwrap();
        assert!(resumed(&r, kind), "{kind}");
        expect_back(&mut ana, &g.user_id, kind).await;
    }
}

#[tokio::test]
async fn finishing_the_control_stream_is_a_leave_and_a_websocket_close_is_not() {
    let s = TestServer::start().await;
    // WebTransport: finishing the control stream frees the seat at once.
    let (mut ana, _a, bo, b) = duo(&s, "wt").await;
    bo.close().await.unwrap();
    let r = ana.next().await.unwrap();
    assert_eq!(
        r.message.event,
        ServerEvent::UserLeft {
            user_id: b.user_id.clone()
        }
    );
    // WebSocket: a clean close is still no `session:leave`; the seat is held.
    let (mut ana, _a, bo, b) = duo(&s, "ws").await;
    bo.close().await.unwrap();
    let r = ana.next().await.unwrap();
    assert_eq!(
        r.message.event,
        ServerEvent::UserAway {
            user_id: b.user_id.clone(),
            reason: Some(jam_protocol::AwayReason::Disconnected),
        }
    );
}

#[tokio::test]
async fn a_zero_window_is_version_one() {
    let s = TestServer::start_with(|c| c.resume_window = Duration::ZERO).await;
    for kind in KINDS {
        let (mut ana, a, bo, b) = duo(&s, kind).await;
        bo.abort();
        let r = ana.next().await.unwrap();
        assert_eq!(
            r.message.event,
            ServerEvent::UserLeft {
                user_id: b.user_id.clone()
            },
            "{kind}: no user-away"
        );
        let mut bo2 = s.client(kind).await;
        let err = bo2
            .resume(&a.room_code, &b.resume_token, None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::ResumeFailed), "{kind}");
    }
}

#[tokio::test]
async fn connect_lists_the_features_and_the_defaults_are_the_1_1_ones() {
    let s = TestServer::start().await;
    let info = jam_client::fetch_connect(&s.http_base()).await.unwrap();
    assert_eq!(
        info["features"],
        json!(["resume", "clock", "latency", "tempo", "origins"])
    );
    let c = jam_server::Config::loopback();
    assert_eq!(c.ping_interval, Duration::from_secs(5));
    assert_eq!(c.peer_timeout, Duration::from_secs(15));
    assert_eq!(c.resume_window, Duration::from_secs(30));
}
