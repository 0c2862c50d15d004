//! Every error code and limit of docs/protocol.md §2 on both transports: envelope and field
//! validation, name and room rules, message size, send rate, the order of checks, the
//! error throttle, `id` echo and room-code normalisation. Each failure must answer with
//! the documented `error` and leave the connection usable.
//!
//! The error throttle (10 a second per connection) shapes these tests: a case that needs
//! many errors uses a fresh connection per error, and counts are taken against a later
//! answer on the same connection (answers are ordered), never against a sleep. "Nothing
//! else arrives" is shown the same way, with a barrier (`common::barrier`, which costs one
//! error of the ten).

mod common;

use std::time::Duration;

use common::*;
use jam_client::{broadcast_envelope, Client, Closed};
use jam_protocol::{ErrorCode, ServerEvent, SessionInfo};
use serde_json::{json, Value};

/// Sends `text` on a fresh connection of `kind`, expects exactly one `error` with code
/// `want` and no `id`, then proves the connection is still usable.
async fn rejected_on_fresh(s: &TestServer, kind: &str, text: &str, want: ErrorCode) {
    let ctx = format!("{kind}: {text:.120}");
    let mut c = s.client(kind).await;
    c.send_text(text).await.unwrap();
    let id = expect_error(&mut c, want, &ctx).await;
    assert_eq!(id, None, "{ctx}: nothing to echo");
    assert_usable(&mut c, &ctx).await;
}

/// `envelope` with a top-level `pad` field (unknown, so ignored) sized to make the
/// compact JSON exactly `size` bytes.
fn padded(mut envelope: Value, size: usize) -> String {
    envelope["pad"] = json!("");
    let base = envelope.to_string().len();
    assert!(base <= size, "{base} > {size}");
    envelope["pad"] = json!("x".repeat(size - base));
    let text = envelope.to_string();
    assert_eq!(text.len(), size);
    text
}

#[tokio::test]
async fn malformed_envelopes_answer_invalid_message() {
    let s = TestServer::start().await;
    let cases = [
        "not json",
        r#"{"event":"session:create","data":{"name":"A"}"#,
        r#"{"event":"session:create","data":{"name":"A"}} trailing"#,
        r#"[{"event":"session:create","data":{"name":"A"}}]"#,
        "[]",
        "42",
        r#""session:create""#,
        "null",
        "true",
        "{}",
        r#"{"data":{"name":"A"}}"#,
        r#"{"event":7,"data":{"name":"A"}}"#,
        r#"{"event":null,"data":{"name":"A"}}"#,
        r#"{"event":{"name":"session:create"},"data":{"name":"A"}}"#,
        r#"{"event":["session:create"],"data":{"name":"A"}}"#,
        r#"{"event":"session:create"}"#,
        r#"{"event":"session:create","data":null}"#,
        r#"{"event":"session:create","data":[]}"#,
        r#"{"event":"session:create","data":"name=A"}"#,
        r#"{"event":"session:create","data":5}"#,
        r#"{"event":"session:explode","data":{}}"#,
        r#"{"event":"","data":{}}"#,
        r#"{"event":"SESSION:CREATE","data":{"name":"A"}}"#,
        // Server-to-client events are unknown to the server.
        r#"{"event":"session:created","data":{}}"#,
        r#"{"event":"error","data":{"code":"room_full","message":"x"}}"#,
    ];
    for kind in KINDS {
        for text in cases {
            rejected_on_fresh(&s, kind, text, ErrorCode::InvalidMessage).await;
        }
    }
}

#[tokio::test]
async fn missing_and_wrong_typed_fields_answer_invalid_message() {
    let s = TestServer::start().await;
    let cases = [
        // session:create
        r#"{"event":"session:create","data":{}}"#,
        r#"{"event":"session:create","data":{"instrument":"piano"}}"#,
        r#"{"event":"session:create","data":{"name":5}}"#,
        r#"{"event":"session:create","data":{"name":null}}"#,
        r#"{"event":"session:create","data":{"name":["A"]}}"#,
        r#"{"event":"session:create","data":{"name":{"first":"A"}}}"#,
        r#"{"event":"session:create","data":{"name":"A","instrument":3}}"#,
        r#"{"event":"session:create","data":{"name":"A","instrument":true}}"#,
        r#"{"event":"session:create","data":{"name":"A","instrument":{}}}"#,
        // session:join
        r#"{"event":"session:join","data":{"name":"A"}}"#,
        r#"{"event":"session:join","data":{"roomCode":"ZZZZZZ"}}"#,
        r#"{"event":"session:join","data":{"roomCode":123456,"name":"A"}}"#,
        r#"{"event":"session:join","data":{"roomCode":null,"name":"A"}}"#,
        r#"{"event":"session:join","data":{"roomCode":"ZZZZZZ","name":5}}"#,
        r#"{"event":"session:join","data":{"roomCode":"ZZZZZZ","name":"A","instrument":5}}"#,
        // session:leave
        r#"{"event":"session:leave","data":{}}"#,
        r#"{"event":"session:leave","data":{"roomCode":5}}"#,
        r#"{"event":"session:leave","data":{"roomCode":null}}"#,
        // event:broadcast
        r#"{"event":"event:broadcast","data":{"eventName":"n","payload":1}}"#,
        r#"{"event":"event:broadcast","data":{"roomCode":"ZZZZZZ","payload":1}}"#,
        r#"{"event":"event:broadcast","data":{"roomCode":"ZZZZZZ","eventName":"n"}}"#,
        r#"{"event":"event:broadcast","data":{"roomCode":5,"eventName":"n","payload":1}}"#,
        r#"{"event":"event:broadcast","data":{"roomCode":"ZZZZZZ","eventName":7,"payload":1}}"#,
        r#"{"event":"event:broadcast","data":{"roomCode":"ZZZZZZ","eventName":null,"payload":1}}"#,
    ];
    for kind in KINDS {
        for text in cases {
            rejected_on_fresh(&s, kind, text, ErrorCode::InvalidMessage).await;
        }
    }
}

#[tokio::test]
async fn name_rules_count_characters_trim_and_refuse_control_characters() {
    let s = TestServer::start().await;
    let bad = [
        String::new(),
        "   ".to_owned(),
        // Unicode white space only: ideographic space, no-break space, tab.
        "\u{3000}\u{a0}\t".to_owned(),
        "a".repeat(33),
        "é".repeat(33),
        "A\u{7}B".to_owned(),
        "An\u{0}a".to_owned(),
        "Ana\u{7f}x".to_owned(),
        "A\nB".to_owned(),
    ];
    let good = [
        ("é".repeat(32), "é".repeat(32)),
        (format!("  {}  ", "a".repeat(32)), "a".repeat(32)),
        ("  Ana  ".to_owned(), "Ana".to_owned()),
        // Tab, newline and NEL are white space, so trimming removes them first.
        ("\tZoë\u{85}\n".to_owned(), "Zoë".to_owned()),
        ("\u{3000}Kenji\u{a0}".to_owned(), "Kenji".to_owned()),
    ];
    for kind in KINDS {
        for name in &bad {
            let create = json!({"event": "session:create", "data": {"name": name}});
            rejected_on_fresh(&s, kind, &create.to_string(), ErrorCode::InvalidMessage).await;
            let join =
                json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": name}});
            rejected_on_fresh(&s, kind, &join.to_string(), ErrorCode::InvalidMessage).await;
        }
        for (raw, shown) in &good {
            let mut c = s.client(kind).await;
            let info = create_with(&mut c, json!({"name": raw}), &format!("{kind}: {raw:?}")).await;
            assert_eq!(&info.participants[0].name, shown, "{kind}: {raw:?}");
        }
    }
}

#[tokio::test]
async fn instrument_rules() {
    let s = TestServer::start().await;
    let bad = [
        json!("i".repeat(33)),
        json!("é".repeat(33)),
        json!("dr\u{1}ums"),
        json!(12),
        json!(["drums"]),
    ];
    let good = [
        (json!("é".repeat(32)), "é".repeat(32)),
        (json!(format!(" {} ", "i".repeat(32))), "i".repeat(32)),
        (json!("  drums\t"), "drums".to_owned()),
        (json!("   "), String::new()),
        (Value::Null, String::new()),
    ];
    for kind in KINDS {
        for instrument in &bad {
            let create =
                json!({"event": "session:create", "data": {"name": "A", "instrument": instrument}});
            rejected_on_fresh(&s, kind, &create.to_string(), ErrorCode::InvalidMessage).await;
        }
        for (raw, shown) in &good {
            let mut c = s.client(kind).await;
            let ctx = format!("{kind}: {raw}");
            let info = create_with(&mut c, json!({"name": "A", "instrument": raw}), &ctx).await;
            assert_eq!(&info.participants[0].instrument, shown, "{ctx}");
        }
        // Missing means "" too.
        let mut c = s.client(kind).await;
        let info = create_with(&mut c, json!({"name": "A"}), kind).await;
        assert_eq!(info.participants[0].instrument, "", "{kind}");
    }
}

#[tokio::test]
async fn event_name_and_payload_rules() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let (mut a, mut b, room) = room_of_two(&s, kind, kind).await;
        let code = room.room_code.as_str();
        let bad = [
            json!({"roomCode": code, "eventName": "", "payload": 1}),
            json!({"roomCode": code, "eventName": "e".repeat(65), "payload": 1}),
            json!({"roomCode": code, "eventName": "é".repeat(65), "payload": 1}),
            json!({"roomCode": code, "eventName": 5, "payload": 1}),
            json!({"roomCode": code, "eventName": "n"}),
        ];
        for data in &bad {
            a.send(&json!({"event": "event:broadcast", "data": data}))
                .await
                .unwrap();
            let ctx = format!("{kind}: {data}");
            expect_error(&mut a, ErrorCode::InvalidMessage, &ctx).await;
        }
        // 64 characters (128 bytes) is fine, and `payload: null` is a value.
        let long = "é".repeat(64);
        a.broadcast(code, &long, &json!({"ok": true}))
            .await
            .unwrap();
        a.broadcast(code, "nothing", &Value::Null).await.unwrap();
        // The invalid ones were never relayed: b's first events are the valid ones.
        for (name, payload) in [
            (long.as_str(), json!({"ok": true})),
            ("nothing", Value::Null),
        ] {
            match next_event(&mut b).await {
                ServerEvent::Broadcast {
                    event_name,
                    payload: got,
                    ..
                } => {
                    assert_eq!(event_name, name, "{kind}");
                    assert_eq!(got, payload, "{kind}");
                }
                other => panic!("{kind}: expected a broadcast, got {other:?}"),
            }
        }
        // Valid broadcasts get no answer: the next thing a hears is its barrier's answer.
        barrier(&mut a, &format!("{kind}: a")).await;
        // Nothing else is relayed: the next event b sees is one a sends after all of them.
        a.broadcast(code, "last", &json!(1)).await.unwrap();
        assert!(
            matches!(next_event(&mut b).await, ServerEvent::Broadcast { event_name, .. } if event_name == "last"),
            "{kind}: nothing else is relayed"
        );
    }
}

#[tokio::test]
async fn websocket_binary_and_empty_frames_answer_invalid_message() {
    let s = TestServer::start().await;
    let mut c = s.ws().await;
    // Even a valid envelope is refused in a binary frame.
    c.send_raw(br#"{"event":"session:create","data":{"name":"A"},"id":1}"#)
        .await
        .unwrap();
    let id = expect_error(&mut c, ErrorCode::InvalidMessage, "binary frame").await;
    assert_eq!(
        id, None,
        "a binary frame is not parsed, so nothing is echoed"
    );
    c.send_text("").await.unwrap();
    expect_error(&mut c, ErrorCode::InvalidMessage, "empty text frame").await;
    assert_usable(&mut c, "after binary and empty frames").await;
}

#[tokio::test]
async fn name_taken_is_case_insensitive_and_trimmed() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let mut a = s.client(kind).await;
        let room = create(&mut a, "ÉMILE").await;
        let code = room.room_code.as_str();
        let mut b = s.client(kind).await;
        for name in ["émile", "  émile\t", "Émile", "ÉMILE"] {
            b.send(&json!({"event": "session:join", "data": {"roomCode": code, "name": name}, "id": name}))
                .await
                .unwrap();
            let id = expect_error(&mut b, ErrorCode::NameTaken, &format!("{kind}: {name:?}")).await;
            assert_eq!(id, Some(json!(name)));
        }
        let mut c = s.client(kind).await;
        let cj = c.join(code, "  Ana ", "").await.expect("c joins");
        assert_eq!(cj.participants[1].name, "Ana", "{kind}: shown trimmed");
        for name in ["ana", "ANA\u{3000}"] {
            let err = b.join(code, name, "").await.unwrap_err();
            assert_eq!(err.code(), Some(ErrorCode::NameTaken), "{kind}: {name:?}");
        }
        // Unicode lower case, not just ASCII: Greek final sigma, capital sharp s.
        for (taken, attempt) in [("ΣΑΣ", "σας"), ("STRAẞE", "straße")] {
            let mut d = s.client(kind).await;
            d.join(code, taken, "").await.expect("a new name joins");
            let mut e = s.client(kind).await;
            e.send(&json!({"event": "session:join", "data": {"roomCode": code, "name": attempt}}))
                .await
                .unwrap();
            expect_error(
                &mut e,
                ErrorCode::NameTaken,
                &format!("{kind}: {taken} vs {attempt}"),
            )
            .await;
            assert!(is_left(&d.leave(code).await.unwrap().event));
        }
        // A different name is fine, and a name is free again once its owner leaves.
        let bj = b.join(code, "Anna", "").await.expect("b joins as Anna");
        assert_eq!(bj.participants.len(), 3);
        c.leave(code).await.unwrap();
        let mut d = s.client(kind).await;
        let dj = d
            .join(code, "ana", "")
            .await
            .expect("name free after leave");
        assert_eq!(dj.participants.last().unwrap().name, "ana");
    }
}

#[tokio::test]
async fn room_full_at_the_configured_size() {
    let s = TestServer::start_with(|c| c.max_room_size = 2).await;
    for kind in KINDS {
        let (_a, mut b, room) = room_of_two(&s, kind, kind).await;
        let code = room.room_code.as_str();
        let mut c = s.client(kind).await;
        c.send(&json!({"event": "session:join", "data": {"roomCode": code, "name": "C"}, "id": 3}))
            .await
            .unwrap();
        let id = expect_error(&mut c, ErrorCode::RoomFull, kind).await;
        assert_eq!(id, Some(json!(3)));
        // A taken name in a full room: room_full is checked first.
        c.send(&json!({"event": "session:join", "data": {"roomCode": code, "name": "a"}}))
            .await
            .unwrap();
        expect_error(&mut c, ErrorCode::RoomFull, kind).await;
        // Once someone leaves there is a seat again.
        b.leave(code).await.unwrap();
        let cj = c.join(code, "C", "").await.expect("a seat is free");
        assert_eq!(cj.participants.len(), 2, "{kind}");
    }
}

#[tokio::test]
async fn create_or_join_while_in_a_room_answers_already_in_session() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let (mut a, mut b, room) = room_of_two(&s, kind, kind).await;
        let code = room.room_code.as_str();
        let mut other = s.client(kind).await;
        let other_room = create(&mut other, "O").await;

        a.send(&json!({"event": "session:create", "data": {"name": "A2"}, "id": 1}))
            .await
            .unwrap();
        let id = expect_error(&mut a, ErrorCode::AlreadyInSession, kind).await;
        assert_eq!(id, Some(json!(1)));
        for target in [code, other_room.room_code.as_str()] {
            a.send(&json!({"event": "session:join", "data": {"roomCode": target, "name": "New"}}))
                .await
                .unwrap();
            expect_error(&mut a, ErrorCode::AlreadyInSession, kind).await;
        }
        // A joined member is in a session too.
        b.send(&json!({"event": "session:create", "data": {"name": "B2"}}))
            .await
            .unwrap();
        expect_error(&mut b, ErrorCode::AlreadyInSession, kind).await;
        // None of that changed the room: a and b still hear each other, nobody else does.
        a.broadcast(code, "still", &json!(1)).await.unwrap();
        assert!(
            matches!(next_event(&mut b).await, ServerEvent::Broadcast { event_name, .. } if event_name == "still")
        );
        // The other room is untouched: no join, no event, before other's barrier.
        barrier(&mut other, &format!("{kind}: other room")).await;
        // After leaving, creating works again.
        a.leave(code).await.unwrap();
        assert_usable(&mut a, kind).await;
    }
}

#[tokio::test]
async fn leave_or_broadcast_outside_the_named_room_answers_not_in_session() {
    let s = TestServer::start().await;
    for kind in KINDS {
        // Not in any room.
        let mut lone = s.client(kind).await;
        lone.send(&json!({"event": "session:leave", "data": {"roomCode": "ABCDEF"}, "id": "l"}))
            .await
            .unwrap();
        let id = expect_error(&mut lone, ErrorCode::NotInSession, kind).await;
        assert_eq!(id, Some(json!("l")));
        lone.broadcast("ABCDEF", "n", &json!(1)).await.unwrap();
        expect_error(&mut lone, ErrorCode::NotInSession, kind).await;

        // In one room, naming another live room, a malformed code, or no room.
        let (mut a, mut b, room) = room_of_two(&s, kind, kind).await;
        let code = room.room_code.as_str();
        let mut y = s.client(kind).await;
        let mut y2 = s.client(kind).await;
        let yroom = create(&mut y, "Y").await;
        y2.join(&yroom.room_code, "Y2", "").await.unwrap();
        for target in [yroom.room_code.as_str(), "!!", ""] {
            a.send(&json!({"event": "session:leave", "data": {"roomCode": target}}))
                .await
                .unwrap();
            expect_error(
                &mut a,
                ErrorCode::NotInSession,
                &format!("{kind}: leave {target:?}"),
            )
            .await;
            a.broadcast(target, "wrong", &json!(1)).await.unwrap();
            expect_error(
                &mut a,
                ErrorCode::NotInSession,
                &format!("{kind}: broadcast {target:?}"),
            )
            .await;
        }
        // The other room hears nothing: no event, no leave, before each member's barrier.
        assert!(
            matches!(next_event(&mut y).await, ServerEvent::UserJoined(p) if p.name == "Y2"),
            "{kind}"
        );
        barrier(&mut y, &format!("{kind}: y")).await;
        barrier(&mut y2, &format!("{kind}: y2")).await;
        // a is still in its room.
        a.broadcast(code, "right", &json!(1)).await.unwrap();
        assert!(
            matches!(next_event(&mut b).await, ServerEvent::Broadcast { event_name, .. } if event_name == "right"),
            "{kind}"
        );
        // After leaving, the old code no longer names a's room.
        a.leave(code).await.unwrap();
        a.broadcast(code, "gone", &json!(1)).await.unwrap();
        expect_error(&mut a, ErrorCode::NotInSession, kind).await;
        a.send(&json!({"event": "session:leave", "data": {"roomCode": code}}))
            .await
            .unwrap();
        expect_error(&mut a, ErrorCode::NotInSession, kind).await;
    }
}

#[tokio::test]
async fn payload_too_large_at_the_default_limit() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let (mut a, mut b, room) = room_of_two(&s, kind, kind).await;
        let code = room.room_code.as_str();
        // Exactly 16 KiB is accepted (on WebTransport, not counting the newline).
        let exact = padded(broadcast_envelope(code, "exact", &json!(1)), 16384);
        a.send_text(&exact).await.unwrap();
        assert!(
            matches!(next_event(&mut b).await, ServerEvent::Broadcast { event_name, .. } if event_name == "exact"),
            "{kind}: a 16384-byte message is relayed"
        );
        for size in [16385, 20000, 100_000] {
            let over = padded(broadcast_envelope(code, "over", &json!(1)), size);
            a.send_text(&over).await.unwrap();
            expect_error(
                &mut a,
                ErrorCode::PayloadTooLarge,
                &format!("{kind}: {size}"),
            )
            .await;
        }
        let create = padded(
            json!({"event": "session:create", "data": {"name": "Z"}}),
            16385,
        );
        a.send_text(&create).await.unwrap();
        expect_error(&mut a, ErrorCode::PayloadTooLarge, kind).await;
        // a is still in the room and b is unaffected: the next event b sees is this one.
        a.broadcast(code, "small", &json!(2)).await.unwrap();
        assert!(
            matches!(next_event(&mut b).await, ServerEvent::Broadcast { event_name, .. } if event_name == "small"),
            "{kind}: oversized messages are not relayed"
        );
        b.broadcast(code, "back", &json!(3)).await.unwrap();
        assert!(
            matches!(next_event(&mut a).await, ServerEvent::Broadcast { event_name, .. } if event_name == "back"),
            "{kind}"
        );
        let left = a.leave(code).await.unwrap();
        assert!(is_left(&left.event), "{kind}");
    }
}

#[tokio::test]
async fn payload_too_large_at_a_configured_limit() {
    let s = TestServer::start_with(|c| c.max_message_bytes = 256).await;
    for kind in KINDS {
        let mut a = s.client(kind).await;
        let over = padded(
            json!({"event": "session:create", "data": {"name": "A"}, "id": 1}),
            257,
        );
        a.send_text(&over).await.unwrap();
        expect_error(&mut a, ErrorCode::PayloadTooLarge, kind).await;
        let exact = padded(
            json!({"event": "session:create", "data": {"name": "A"}, "id": 1}),
            256,
        );
        a.send_text(&exact).await.unwrap();
        let r = a.next().await.unwrap();
        assert!(
            matches!(r.event(), ServerEvent::Created(_)),
            "{kind}: {:?}",
            r.message
        );
        let ServerEvent::Created(room) = r.message.event else {
            unreachable!()
        };
        let code = room.room_code.as_str();
        let mut b = s.client(kind).await;
        b.join(code, "B", "").await.unwrap();
        assert!(matches!(
            next_event(&mut a).await,
            ServerEvent::UserJoined(_)
        ));

        let big = padded(broadcast_envelope(code, "big", &json!(1)), 300);
        a.send_text(&big).await.unwrap();
        expect_error(&mut a, ErrorCode::PayloadTooLarge, kind).await;
        a.broadcast(code, "fits", &json!(1)).await.unwrap();
        assert!(
            matches!(next_event(&mut b).await, ServerEvent::Broadcast { event_name, .. } if event_name == "fits"),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn messages_over_a_mebibyte() {
    let s = TestServer::start().await;
    let huge = padded(
        json!({"event": "session:create", "data": {"name": "H"}}),
        2 << 20,
    );

    // WebTransport: the line is skipped up to its newline and the session carries on.
    let mut wt = s.wt().await;
    wt.send_text(&huge).await.unwrap();
    expect_error(&mut wt, ErrorCode::PayloadTooLarge, "wt 2 MiB").await;
    assert_usable(&mut wt, "wt after 2 MiB").await;

    // WebSocket: the server may refuse the frame with 1009, or answer payload_too_large.
    let mut ws = s.ws().await;
    let _ = ws.send_text(&huge).await; // the server may close before it has read it all
    match ws.next().await {
        Ok(r) => match r.message.event {
            ServerEvent::Error { code, .. } => {
                assert_eq!(code, ErrorCode::PayloadTooLarge);
                assert_usable(&mut ws, "ws after 2 MiB").await;
            }
            other => panic!("ws 2 MiB: expected payload_too_large, got {other:?}"),
        },
        Err(_) => match ws.closed() {
            Some(Closed::WebSocket { code, .. }) => assert_eq!(code, 1009),
            // A reset can overtake the close frame while the client is still writing.
            Some(Closed::Other(_)) => {}
            other => panic!("ws 2 MiB: neither answered nor closed: {other:?}"),
        },
    }
}

#[tokio::test]
async fn rate_limit_answers_once_and_drops_the_excess() {
    let s = TestServer::start_with(|c| {
        c.rate_limit = 10;
        c.rate_burst = 20;
    })
    .await;
    for kind in KINDS {
        let (mut a, mut b, room) = room_of_two(&s, kind, kind).await;
        let code = room.room_code.as_str();
        for i in 0..40 {
            let mut env = broadcast_envelope(code, "n", &json!(i));
            env["id"] = json!(i);
            a.send(&env).await.unwrap();
        }
        a.send(&json!({"event": "session:leave", "data": {"roomCode": code}, "id": "bye"}))
            .await
            .unwrap();

        // The sender: exactly one rate_limited, echoing the id of an over-budget event.
        let (before, left) = collect_until(&mut a, kind, is_left).await;
        assert_eq!(wire_id(&left), Some(json!("bye")));
        assert_eq!(before.len(), 1, "{kind}: {before:?}");
        let r = &before[0];
        assert!(
            matches!(
                r.event(),
                ServerEvent::Error {
                    code: ErrorCode::RateLimited,
                    ..
                }
            ),
            "{kind}: {:?}",
            r.message
        );
        let id = wire_id(r)
            .and_then(|v| v.as_u64())
            .expect("numeric id echoed");
        assert!(
            (20..40).contains(&id),
            "{kind}: rate_limited echoes id {id}"
        );

        // The receiver: the burst, plus what the rate refilled while sending; not all 40.
        let (events, _) =
            collect_until(&mut b, kind, |e| matches!(e, ServerEvent::UserLeft { .. })).await;
        let got: Vec<u64> = events
            .iter()
            .map(|r| match r.event() {
                ServerEvent::Broadcast { payload, .. } => payload.as_u64().unwrap(),
                other => panic!("{kind}: unexpected {other:?}"),
            })
            .collect();
        assert!(
            (20..30).contains(&got.len()),
            "{kind}: b got {} events",
            got.len()
        );
        assert_eq!(
            got[..20],
            (0..20).collect::<Vec<_>>(),
            "{kind}: the burst passes in order"
        );
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{kind}: {got:?}");
    }
}

#[tokio::test]
async fn send_rate_is_checked_before_fields_and_state() {
    let s = TestServer::start_with(|c| {
        c.rate_limit = 1;
        c.rate_burst = 3;
    })
    .await;
    for kind in KINDS {
        let mut a = s.client(kind).await;
        let room = create(&mut a, "A").await;
        let code = room.room_code.as_str();
        for _ in 0..3 {
            a.broadcast(code, "n", &json!(1)).await.unwrap();
        }
        // Over budget and malformed (empty eventName, no payload): rate_limited wins.
        a.send(&json!({"event": "event:broadcast", "data": {"roomCode": code, "eventName": ""}, "id": "m"}))
            .await
            .unwrap();
        let id = expect_error(&mut a, ErrorCode::RateLimited, kind).await;
        assert_eq!(id, Some(json!("m")));
        // More of the same within the second are dropped without any answer.
        a.send(&json!({"event": "event:broadcast", "data": {}}))
            .await
            .unwrap();
        a.broadcast("ZZZZZZ", "n", &json!(1)).await.unwrap();
        a.send(&json!({"event": "session:leave", "data": {"roomCode": code}, "id": "l"}))
            .await
            .unwrap();
        let r = a.next().await.unwrap();
        assert!(
            is_left(r.event()),
            "{kind}: nothing before session:left: {:?}",
            r.message
        );
        assert_eq!(wire_id(&r), Some(json!("l")));

        // Not in a room: the budget is spent on not_in_session answers, then rate_limited.
        let mut c = s.client(kind).await;
        for _ in 0..3 {
            c.broadcast("ZZZZZZ", "n", &json!(1)).await.unwrap();
            expect_error(&mut c, ErrorCode::NotInSession, kind).await;
        }
        c.broadcast("ZZZZZZ", "n", &json!(1)).await.unwrap();
        expect_error(&mut c, ErrorCode::RateLimited, kind).await;
        // Other messages are not rate-limited.
        assert_usable(&mut c, kind).await;
    }
}

#[tokio::test]
async fn webtransport_datagrams_share_the_send_rate_budget() {
    let s = TestServer::start_with(|c| {
        c.rate_limit = 1;
        c.rate_burst = 3;
    })
    .await;
    let (mut a, mut b, room) = room_of_two(&s, "wt", "ws").await;
    let code = room.room_code.as_str();
    for _ in 0..3 {
        a.broadcast(code, "stream", &json!(1)).await.unwrap();
    }
    for _ in 0..3 {
        next_broadcast(&mut b).await;
    }
    // One datagram, whose answer names it by its id: so the answer proves the server has
    // handled it. Datagrams are unordered, so after several, nothing could show when the
    // silently dropped ones had been handled.
    let mut env = broadcast_envelope(code, "datagram", &json!(1));
    env["id"] = json!("d");
    a.send_datagram(env.to_string().as_bytes()).unwrap();
    let r = a.next().await.expect("rate_limited on the control stream");
    assert!(
        matches!(
            r.event(),
            ServerEvent::Error {
                code: ErrorCode::RateLimited,
                ..
            }
        ),
        "{:?}",
        r.message
    );
    assert_eq!(r.via, jam_client::Via::Stream);
    assert_eq!(wire_id(&r), Some(json!("d")));
    // The datagram over budget was dropped: it was handled before a got the answer, so
    // had it been relayed, b would get it before its barrier's answer.
    barrier(&mut b, "b").await;
}

/// Sends 30 invalid messages and then a create: exactly 10 errors come before the answer,
/// later errors in the window are dropped (not delayed), and a second later errors flow
/// again.
async fn error_throttle_case(s: &TestServer, kind: &str) {
    let mut c = s.client(kind).await;
    for i in 0..30 {
        c.send_text(&format!(r#"{{"event":"nope","data":{{}},"id":{i}}}"#))
            .await
            .unwrap();
    }
    c.send(&json!({"event": "session:create", "data": {"name": "A"}, "id": "c"}))
        .await
        .unwrap();
    let (errors, created) =
        collect_until(&mut c, kind, |e| matches!(e, ServerEvent::Created(_))).await;
    assert_eq!(wire_id(&created), Some(json!("c")), "{kind}");
    assert_eq!(errors.len(), 10, "{kind}: at most 10 errors a second");
    for (i, r) in errors.iter().enumerate() {
        assert!(
            matches!(
                r.event(),
                ServerEvent::Error {
                    code: ErrorCode::InvalidMessage,
                    ..
                }
            ),
            "{kind}"
        );
        assert_eq!(
            wire_id(r),
            Some(json!(i)),
            "{kind}: the first ten are answered"
        );
    }
    // This part is about time itself: the window must pass before errors may flow again,
    // so the test waits for it (a bounded wait; no answer could mark the moment). The
    // suppressed errors never come, not even then: the next message is the answer to a
    // request sent after the wait, so anything delayed rather than dropped would come first.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let room = created.message.event;
    let ServerEvent::Created(room) = room else {
        unreachable!()
    };
    c.send(&json!({"event": "session:create", "data": {"name": "A"}, "id": "again"}))
        .await
        .unwrap();
    let id = expect_error(&mut c, ErrorCode::AlreadyInSession, kind).await;
    assert_eq!(
        id,
        Some(json!("again")),
        "{kind}: errors flow again after a second, and none of the suppressed ones came first"
    );
    assert!(is_left(&c.leave(&room.room_code).await.unwrap().event));
}

#[tokio::test]
async fn at_most_ten_errors_a_second() {
    let s = TestServer::start().await;
    // The two transports run side by side so the one-second wait is paid once.
    tokio::join!(
        error_throttle_case(&s, KINDS[0]),
        error_throttle_case(&s, KINDS[1])
    );
}

#[tokio::test]
async fn rate_limited_counts_against_the_error_throttle() {
    let s = TestServer::start_with(|c| {
        c.rate_limit = 1;
        c.rate_burst = 1;
    })
    .await;
    for kind in KINDS {
        let mut c = s.client(kind).await;
        for _ in 0..10 {
            c.send_text("not json").await.unwrap();
        }
        // One passes the rate (and would answer not_in_session), two are over budget.
        for _ in 0..3 {
            c.broadcast("ZZZZZZ", "n", &json!(1)).await.unwrap();
        }
        c.send(&json!({"event": "session:create", "data": {"name": "A"}, "id": "c"}))
            .await
            .unwrap();
        let (errors, _) =
            collect_until(&mut c, kind, |e| matches!(e, ServerEvent::Created(_))).await;
        assert_eq!(errors.len(), 10, "{kind}");
        assert!(
            errors.iter().all(|r| matches!(
                r.event(),
                ServerEvent::Error {
                    code: ErrorCode::InvalidMessage,
                    ..
                }
            )),
            "{kind}: the window was full, so no not_in_session or rate_limited"
        );
    }
}

#[tokio::test]
async fn checks_run_in_order_envelope_fields_state_room() {
    let s = TestServer::start_with(|c| c.max_room_size = 2).await;
    for kind in KINDS {
        let (mut a, mut b, room) = room_of_two(&s, kind, kind).await;
        let code = room.room_code.as_str();
        let mut other = s.client(kind).await;
        let other_room = create(&mut other, "O").await;
        let cases = [
            // Fields before state.
            (
                json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": ""}}),
                ErrorCode::InvalidMessage,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": code, "name": "x".repeat(33)}}),
                ErrorCode::InvalidMessage,
            ),
            (
                json!({"event": "session:create", "data": {"name": "A\u{1}"}}),
                ErrorCode::InvalidMessage,
            ),
            (
                json!({"event": "session:create", "data": {"name": "A", "instrument": 1}}),
                ErrorCode::InvalidMessage,
            ),
            // State before room: unknown, full, or name-taken rooms all answer already_in_session.
            (
                json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": "New"}}),
                ErrorCode::AlreadyInSession,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": "!", "name": "New"}}),
                ErrorCode::AlreadyInSession,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": code, "name": "B"}}),
                ErrorCode::AlreadyInSession,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": other_room.room_code, "name": "O"}}),
                ErrorCode::AlreadyInSession,
            ),
        ];
        for (msg, want) in &cases {
            a.send(msg).await.unwrap();
            expect_error(&mut a, *want, &format!("{kind}: {msg}")).await;
        }

        let mut c = s.client(kind).await;
        let cases = [
            // Fields before state for messages that need a room.
            (
                json!({"event": "event:broadcast", "data": {"roomCode": code, "eventName": "", "payload": 1}}),
                ErrorCode::InvalidMessage,
            ),
            (
                json!({"event": "event:broadcast", "data": {"roomCode": code, "eventName": "n"}}),
                ErrorCode::InvalidMessage,
            ),
            (
                json!({"event": "session:leave", "data": {"roomCode": 5}}),
                ErrorCode::InvalidMessage,
            ),
            // Fields before room.
            (
                json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": " "}}),
                ErrorCode::InvalidMessage,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": code, "name": "C", "instrument": "i".repeat(33)}}),
                ErrorCode::InvalidMessage,
            ),
            // Room: not found, then full before name_taken.
            (
                json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": "A"}}),
                ErrorCode::RoomNotFound,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": code, "name": "a"}}),
                ErrorCode::RoomFull,
            ),
            (
                json!({"event": "session:join", "data": {"roomCode": other_room.room_code, "name": "o"}}),
                ErrorCode::NameTaken,
            ),
        ];
        for (msg, want) in &cases {
            c.send(msg).await.unwrap();
            expect_error(&mut c, *want, &format!("{kind}: {msg}")).await;
        }
        // None of the refused joins reached a room: nothing for its members before their
        // barriers (a's is its ninth error in the window, within the ten).
        barrier(&mut a, &format!("{kind}: a")).await;
        barrier(&mut b, &format!("{kind}: b")).await;
        barrier(&mut other, &format!("{kind}: other")).await;
    }
}

#[tokio::test]
async fn ids_are_echoed_on_direct_answers_only() {
    let s = TestServer::start().await;
    for kind in KINDS {
        let mut a = s.client(kind).await;
        let mut b = s.client(kind).await;
        // Extra spaces around values: the echo is the value, not the surrounding text.
        a.send_text(r#"{ "event" : "session:create" , "data" :  { "name" : "A" } , "id" :   7 }"#)
            .await
            .unwrap();
        let r = a.next().await.unwrap();
        assert!(
            matches!(r.event(), ServerEvent::Created(_)),
            "{kind}: {:?}",
            r.message
        );
        assert_eq!(wire_id(&r), Some(json!(7)), "{kind}");
        let ServerEvent::Created(room) = r.message.event else {
            unreachable!()
        };
        let code = room.room_code.as_str();

        b.send(
            &json!({"event": "session:join", "data": {"roomCode": code, "name": "B"}, "id": "j-1"}),
        )
        .await
        .unwrap();
        let r = b.next().await.unwrap();
        assert!(matches!(r.event(), ServerEvent::Joined(_)), "{kind}");
        assert_eq!(wire_id(&r), Some(json!("j-1")), "{kind}");
        let r = a.next().await.unwrap();
        assert!(matches!(r.event(), ServerEvent::UserJoined(_)), "{kind}");
        assert_eq!(wire_id(&r), None, "{kind}: user-joined carries no id");

        let mut env = broadcast_envelope(code, "n", &json!(1));
        env["id"] = json!(5);
        a.send(&env).await.unwrap();
        let r = next_broadcast(&mut b).await;
        assert_eq!(wire_id(&r), None, "{kind}: a relayed event carries no id");

        // Errors echo number and string ids, whatever the failure.
        for (text, id) in [
            (json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": "X"}, "id": 99}).to_string(), json!(99)),
            (r#"{"event":"nope","data":{},"id":"u"}"#.to_owned(), json!("u")),
            (r#"{"data":{},"id":4}"#.to_owned(), json!(4)),
            (r#"{"event":"session:create","id":-3}"#.to_owned(), json!(-3)),
            (r#"{"event":"session:create","data":{"name":""},"id":""}"#.to_owned(), json!("")),
        ] {
            b.send_text(&text).await.unwrap();
            let e = next_error(&mut b, &format!("{kind}: {text}")).await;
            assert_eq!(e.id, Some(id), "{kind}: {text}");
        }
        // No object, no echo.
        for text in [
            r#"{"event":"nope","data":{},"id":1"#,
            r#"[{"event":"nope","data":{},"id":1}]"#,
        ] {
            b.send_text(text).await.unwrap();
            let e = next_error(&mut b, &format!("{kind}: {text}")).await;
            assert_eq!(e.id, None, "{kind}: {text}");
        }

        b.send(&json!({"event": "session:leave", "data": {"roomCode": code}, "id": 2.5}))
            .await
            .unwrap();
        let r = b.next().await.unwrap();
        assert!(is_left(r.event()), "{kind}");
        assert_eq!(wire_id(&r), Some(json!(2.5)), "{kind}");
        let r = a.next().await.unwrap();
        assert!(matches!(r.event(), ServerEvent::UserLeft { .. }), "{kind}");
        assert_eq!(wire_id(&r), None, "{kind}: user-left carries no id");
    }
}

#[tokio::test]
async fn ids_that_are_not_numbers_or_strings_are_not_echoed() {
    let s = TestServer::start().await;
    let ids = [
        json!({"n": 1}),
        json!([1]),
        json!(true),
        json!(false),
        Value::Null,
    ];
    for kind in KINDS {
        let mut c = s.client(kind).await;
        for id in &ids {
            let ctx = format!("{kind}: id {id}");
            // The message is still processed.
            c.send(&json!({"event": "session:create", "data": {"name": "A"}, "id": id}))
                .await
                .unwrap();
            let r = c.next().await.unwrap();
            assert_eq!(wire_id(&r), None, "{ctx}");
            let ServerEvent::Created(room) = r.message.event else {
                panic!("{ctx}: expected created, got {:?}", r.message)
            };
            c.send(
                &json!({"event": "session:leave", "data": {"roomCode": room.room_code}, "id": id}),
            )
            .await
            .unwrap();
            let r = c.next().await.unwrap();
            assert!(is_left(r.event()), "{ctx}");
            assert_eq!(wire_id(&r), None, "{ctx}");
            c.send(&json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": "A"}, "id": id}))
                .await
                .unwrap();
            let e = next_error(&mut c, &ctx).await;
            assert_eq!((e.code, e.id), (ErrorCode::RoomNotFound, None), "{ctx}");
        }
        // No id, no id.
        let mut d = s.client(kind).await;
        d.send(&json!({"event": "session:join", "data": {"roomCode": "ZZZZZZ", "name": "A"}}))
            .await
            .unwrap();
        assert_eq!(next_error(&mut d, kind).await.id, None, "{kind}");
        d.send(&json!({"event": "session:create", "data": {"name": "A"}}))
            .await
            .unwrap();
        let r = d.next().await.unwrap();
        assert!(matches!(r.event(), ServerEvent::Created(_)), "{kind}");
        assert_eq!(wire_id(&r), None, "{kind}");
    }
}

/// Writes a canonical code the way a person might: lower case, `o` for `0`, `i`/`L`/`l`
/// for `1` (taking turns by `variant`), with a dash and white space in between.
fn letter_form(code: &str, variant: usize) -> String {
    let ones = ['i', 'L', 'l', 'I'];
    let mut out = String::new();
    for (i, ch) in code.chars().enumerate() {
        if i == 3 {
            out.push_str(["-", " - ", "\u{a0}", "\t-"][variant % 4]);
        }
        out.push(match ch {
            '0' if (i + variant).is_multiple_of(2) => 'o',
            '0' => 'O',
            '1' => ones[(i + variant) % 4],
            c => c.to_ascii_lowercase(),
        });
    }
    format!(" {out}\u{3000}")
}

/// Creates rooms (leaving each one) until a code has a `0` or `1` in it.
async fn room_with_digit(c: &mut Client, ctx: &str) -> SessionInfo {
    for _ in 0..200 {
        let room = create(c, "Host").await;
        if room.room_code.contains(['0', '1']) {
            return room;
        }
        assert!(
            is_left(&c.leave(&room.room_code).await.unwrap().event),
            "{ctx}"
        );
    }
    panic!("{ctx}: no code with 0 or 1 in 200 rooms");
}

#[tokio::test]
async fn room_codes_are_normalised_everywhere() {
    // Finding a code with a 0 or a 1 takes a few create/leave rounds: more room requests
    // than the default budget allows one connection.
    let s = TestServer::start_with(|c| {
        c.control_rate = 1000;
        c.control_burst = 1000;
    })
    .await;
    for kind in KINDS {
        let mut a = s.client(kind).await;
        let room = room_with_digit(&mut a, kind).await;
        let code = room.room_code.as_str();
        let typed = letter_form(code, 0);
        for variant in 0..4 {
            let form = letter_form(code, variant);
            assert!(!form.contains(['0', '1']), "{form:?} uses only letters");
        }

        let mut b = s.client(kind).await;
        let bj = b
            .join(&typed, "B", "")
            .await
            .unwrap_or_else(|e| panic!("{kind}: join {typed:?}: {e}"));
        assert_eq!(
            bj.room_code, code,
            "{kind}: answers carry the canonical code"
        );
        assert!(matches!(
            next_event(&mut a).await,
            ServerEvent::UserJoined(_)
        ));

        // event:broadcast and session:leave compare the normalised form.
        let typed = letter_form(code, 1);
        a.broadcast(&typed, "n", &json!(1)).await.unwrap();
        match next_event(&mut b).await {
            ServerEvent::Broadcast { sender_id, .. } => assert_eq!(sender_id, room.user_id),
            other => panic!("{kind}: broadcast to {typed:?}: got {other:?}"),
        }
        let typed = letter_form(code, 2);
        b.broadcast(&typed, "back", &json!(2)).await.unwrap();
        assert!(
            matches!(next_event(&mut a).await, ServerEvent::Broadcast { .. }),
            "{kind}"
        );
        let typed = letter_form(code, 3);
        let left = b.leave(&typed).await.unwrap();
        assert_eq!(
            left.event,
            ServerEvent::Left {
                room_code: code.to_owned()
            },
            "{kind}: leave {typed:?}"
        );

        // Malformed codes are simply not live rooms.
        let mut c = s.client(kind).await;
        for bad in [
            String::new(),
            "  ".to_owned(),
            code[..5].to_owned(),
            format!("{code}0"),
            format!("{}U", &code[..5]),
            format!("{}Ä", &code[..5]),
            format!("{}_", &code[..5]),
        ] {
            c.send(&json!({"event": "session:join", "data": {"roomCode": bad, "name": "C"}}))
                .await
                .unwrap();
            expect_error(&mut c, ErrorCode::RoomNotFound, &format!("{kind}: {bad:?}")).await;
        }
        let cj = c
            .join(&code.to_lowercase(), "C", "")
            .await
            .expect("lower case joins");
        assert_eq!(cj.room_code, code);
    }
}

/// Room codes have about 30 bits; guessing is held off by a per-address budget of failed
/// joins, which a new connection does not reset.
#[tokio::test]
async fn failed_joins_are_limited_per_address() {
    let s = TestServer::start_with(|c| {
        c.join_failure_burst = 2;
        c.join_failures_per_minute = 1;
    })
    .await;
    let mut host = s.ws().await;
    let room = create(&mut host, "Host").await;
    for kind in KINDS {
        let mut guesser = s.client(kind).await;
        let code = guesser.join("ZZZZZZ", "G", "").await.unwrap_err();
        let code = code.code().expect("an error answer");
        if kind == "ws" {
            assert_eq!(code, ErrorCode::RoomNotFound);
            let again = guesser.join("YYYYYY", "G", "").await.unwrap_err();
            let again = again.code().expect("an error answer");
            assert_eq!(again, ErrorCode::RoomNotFound);
        } else {
            // Same address, new connection and transport: the budget is already spent.
            assert_eq!(code, ErrorCode::RateLimited);
        }
        // Over budget, even a live code is refused, so a guesser learns nothing.
        let live = guesser.join(&room.room_code, "G", "").await.unwrap_err();
        let live = live.code().expect("an error answer");
        assert_eq!(live, ErrorCode::RateLimited, "{kind}");
    }
    // Creating rooms is not affected.
    let mut other = s.wt().await;
    create(&mut other, "Other").await;
}
