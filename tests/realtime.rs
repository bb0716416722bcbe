//! The `/ws` protocol against a real server: auth, delivery, acks, idempotency, catch-up,
//! presence and its privacy, typing, read receipts, errors, origins and shutdown.
mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const QUIET: Duration = Duration::from_millis(300);

fn send(to: &str, body: &str, client_id: &str) -> serde_json::Value {
    json!({"type": "send_message", "to": to, "body": body, "client_id": client_id})
}

#[tokio::test]
async fn the_first_frame_must_be_a_valid_auth_frame() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;

    let mut ws = WsClient::open(&server).await;
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.closed_with().await, Some(4401));

    let mut ws = WsClient::open(&server).await;
    ws.send(json!({"type": "auth", "token": format!("{}x", alice.token)})).await;
    assert_eq!(ws.closed_with().await, Some(4401));

    let mut ws = WsClient::open(&server).await;
    ws.send_raw(Message::text("{not json")).await;
    assert_eq!(ws.closed_with().await, Some(4401));

    let (_, ready, online) = server.connect(&alice).await;
    assert_eq!(ready, json!({"type": "ready", "username": "alice", "last_id": 0}));
    assert_eq!(online, json!({"type": "online_users", "users": []}));
}

#[tokio::test]
async fn a_socket_without_auth_is_closed_after_the_deadline() {
    let server = TestServer::start_with(|c| c.websocket.auth_timeout_secs = 1).await;
    let mut ws = WsClient::open(&server).await;
    let started = std::time::Instant::now();
    assert_eq!(ws.closed_with().await, Some(4401));
    assert!(started.elapsed() >= Duration::from_millis(900), "closed too early: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_message_is_acked_to_its_socket_and_delivered_to_every_other_socket_of_both_users() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (mut alice_phone, ..) = server.connect(&alice).await;
    let (mut alice_laptop, ..) = server.connect(&alice).await;
    let (mut bob_phone, ..) = server.connect(&bob).await;
    let (mut bob_laptop, ..) = server.connect(&bob).await;

    alice_phone.send(send("Bob", "  hello bob  ", "c-1")).await;
    let ack = alice_phone.recv_type("ack").await;
    assert_eq!(ack["client_id"], "c-1");
    let message = ack["message"].clone();
    assert_eq!(message["from"], "alice");
    assert_eq!(message["to"], "bob");
    assert_eq!(message["body"], "hello bob");
    assert_eq!(message["client_id"], "c-1");
    assert!(message["id"].as_i64().unwrap() > 0);
    let created_at = message["created_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(created_at).is_ok() && created_at.ends_with('Z'), "{created_at}");

    for socket in [&mut bob_phone, &mut bob_laptop, &mut alice_laptop] {
        let received = socket.recv_type("receive_message").await;
        assert_eq!(received, json!({"type": "receive_message", "message": message}));
    }
    // The sending socket gets the ack and never its own message back; nor bob's presence, since
    // bob has not written to alice.
    alice_phone.expect_silence(QUIET).await;

    // It is stored: the history has exactly this message.
    let (status, page) = server.get("/api/messages/bob", Some(&alice.token)).await;
    assert_eq!(status, 200);
    assert_eq!(page["messages"], json!([message]));
}

#[tokio::test]
async fn a_resend_with_the_same_client_id_returns_the_stored_message_and_delivers_nothing() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (mut alice_ws, ..) = server.connect(&alice).await;
    let (mut bob_ws, ..) = server.connect(&bob).await;

    alice_ws.send(send("bob", "once", "same")).await;
    let first = alice_ws.recv_type("ack").await["message"].clone();
    assert_eq!(bob_ws.recv_type("receive_message").await["message"], first);

    alice_ws.send(send("bob", "once", "same")).await;
    let second = alice_ws.recv_type("ack").await["message"].clone();
    assert_eq!(first, second);
    bob_ws.expect_silence(QUIET).await;

    // The same key over REST is the same message too.
    let (status, body) = server.send_rest(&alice, "bob", "once", "same").await;
    assert_eq!((status, body), (200, first.clone()));
    bob_ws.expect_silence(QUIET).await;

    let (_, page) = server.get("/api/messages/alice", Some(&bob.token)).await;
    assert_eq!(page["messages"], json!([first]));
}

#[tokio::test]
async fn a_message_to_an_offline_user_arrives_when_they_connect_and_sync() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (mut alice_ws, ..) = server.connect(&alice).await;
    alice_ws.send(send("bob", "are you there?", "c-1")).await;
    let message = alice_ws.recv_type("ack").await["message"].clone();

    let (mut bob_ws, ready, _) = server.connect(&bob).await;
    assert_eq!(ready["last_id"], message["id"]);
    bob_ws.send(json!({"type": "sync", "after": 0})).await;
    assert_eq!(bob_ws.recv().await, json!({"type": "receive_message", "message": message}));
    assert_eq!(bob_ws.recv().await, json!({"type": "sync_done", "last_id": message["id"]}));
    bob_ws.expect_silence(QUIET).await;
}

#[tokio::test]
async fn catch_up_after_reconnect_returns_each_missed_message_once_in_order() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (mut alice_ws, ..) = server.connect(&alice).await;
    let (bob_ws, ..) = server.connect(&bob).await;
    alice_ws.send(send("bob", "before", "c-0")).await;
    let seen = alice_ws.recv_type("ack").await["message"]["id"].as_i64().unwrap();
    bob_ws.close().await;

    let mut missed = Vec::new();
    for n in 1..=3 {
        alice_ws.send(send("bob", &format!("missed {n}"), &format!("c-{n}"))).await;
        missed.push(alice_ws.recv_type("ack").await["message"].clone());
    }

    let (mut bob_ws, ready, _) = server.connect(&bob).await;
    assert_eq!(ready["last_id"], missed[2]["id"]);
    // A message sent after bob registered but before he syncs comes live, not again from sync.
    alice_ws.send(send("bob", "live", "c-live")).await;
    let live = alice_ws.recv_type("ack").await["message"].clone();

    bob_ws.send(json!({"type": "sync", "after": seen})).await;
    let mut received = Vec::new();
    loop {
        let frame = bob_ws.recv().await;
        match frame["type"].as_str().unwrap() {
            "receive_message" => received.push(frame["message"].clone()),
            "sync_done" => {
                assert_eq!(frame["last_id"], missed[2]["id"]);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // The live message may come before or among the synced ones; each arrives exactly once.
    if !received.contains(&live) {
        received.push(bob_ws.recv_type("receive_message").await["message"].clone());
    }
    let mut expected = missed.clone();
    expected.push(live.clone());
    let mut sorted = received.clone();
    sorted.sort_by_key(|m| m["id"].as_i64());
    assert_eq!(sorted, expected);
    let synced: Vec<_> = received.iter().filter(|m| **m != live).cloned().collect();
    assert_eq!(synced, missed, "sync returns the missed messages in id order");
    bob_ws.expect_silence(QUIET).await;

    // Syncing again from the newest id returns nothing.
    bob_ws.send(json!({"type": "sync", "after": live["id"]})).await;
    assert_eq!(bob_ws.recv().await["type"], "sync_done");
}

#[tokio::test]
async fn sync_pages_through_long_backlogs() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (mut alice_ws, ..) = server.connect(&alice).await;
    let total = 1203;
    for n in 0..total {
        alice_ws.send(send("bob", &format!("m{n}"), &format!("c{n}"))).await;
    }
    let mut last = 0;
    for _ in 0..total {
        last = alice_ws.recv_type("ack").await["message"]["id"].as_i64().unwrap();
    }
    let (mut bob_ws, ..) = server.connect(&bob).await;
    bob_ws.send(json!({"type": "sync", "after": 0})).await;
    let mut ids = Vec::new();
    loop {
        let frame = bob_ws.recv().await;
        if frame["type"] == "sync_done" {
            assert_eq!(frame["last_id"], last);
            break;
        }
        ids.push(frame["message"]["id"].as_i64().unwrap());
    }
    assert_eq!(ids.len(), total);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending, no duplicates");
}

#[tokio::test]
async fn presence_follows_the_first_and_last_socket_and_reaches_contacts_only() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    server.send_rest(&alice, "bob", "hi", "c-1").await;
    server.send_rest(&bob, "alice", "hi", "c-2").await;

    let (mut alice_ws, _, online) = server.connect(&alice).await;
    assert_eq!(online["users"], json!([]));
    let (mut carol_ws, ..) = server.connect(&carol).await;
    alice_ws.expect_silence(QUIET).await; // carol is not alice's contact

    let (bob_phone, _, bob_online) = server.connect(&bob).await;
    assert_eq!(bob_online["users"], json!(["alice"]));
    assert_eq!(alice_ws.recv().await, json!({"type": "presence", "username": "bob", "online": true}));

    let (bob_laptop, ..) = server.connect(&bob).await;
    bob_phone.close().await;
    alice_ws.expect_silence(QUIET).await; // still online on the laptop
    bob_laptop.close().await;
    assert_eq!(alice_ws.recv().await, json!({"type": "presence", "username": "bob", "online": false}));

    // Carol shares no conversation with bob and heard nothing about him.
    carol_ws.expect_silence(QUIET).await;
    let (_, online) = server.get("/api/chats_history", Some(&alice.token)).await;
    assert_eq!(online[0]["online"], false);
}

#[tokio::test]
async fn a_first_message_shows_the_sender_to_its_recipient_and_a_reply_the_other_way() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (mut alice_ws, ..) = server.connect(&alice).await;
    let (mut bob_ws, ..) = server.connect(&bob).await;
    alice_ws.expect_silence(QUIET).await;

    alice_ws.send(send("bob", "nice to meet you", "c-1")).await;
    assert_eq!(alice_ws.recv().await["type"], "ack");
    assert_eq!(bob_ws.recv().await, json!({"type": "presence", "username": "alice", "online": true}));
    assert_eq!(bob_ws.recv().await["type"], "receive_message");
    alice_ws.expect_silence(QUIET).await; // bob has not written to alice: she does not see him yet

    bob_ws.send(send("alice", "likewise", "c-2")).await;
    assert_eq!(bob_ws.recv().await["type"], "ack");
    assert_eq!(alice_ws.recv().await, json!({"type": "presence", "username": "bob", "online": true}));
    assert_eq!(alice_ws.recv().await["type"], "receive_message");

    bob_ws.close().await;
    assert_eq!(alice_ws.recv().await, json!({"type": "presence", "username": "bob", "online": false}));
}

#[tokio::test]
async fn typing_and_read_receipts_reach_the_peer() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (_, first) = server.send_rest(&alice, "bob", "one", "c-1").await;
    let (_, second) = server.send_rest(&alice, "bob", "two", "c-2").await;
    let (mut alice_ws, ..) = server.connect(&alice).await;
    let (mut bob_ws, ..) = server.connect(&bob).await;

    alice_ws.send(json!({"type": "typing", "to": "bob"})).await;
    let conversation = first["conversation_id"].clone();
    assert_eq!(bob_ws.recv().await, json!({"type": "typing", "conversation_id": conversation, "from": "alice"}));
    alice_ws.expect_silence(QUIET).await;

    bob_ws.send(json!({"type": "read", "peer": "alice", "up_to": first["id"]})).await;
    assert_eq!(alice_ws.recv().await, json!({"type": "read", "conversation_id": conversation, "peer": "bob", "up_to": first["id"]}));
    let (_, chats) = server.get("/api/chats_history", Some(&bob.token)).await;
    assert_eq!(chats[0]["unread"], 1);

    // Over REST too; a marker beyond the newest message is clamped to it.
    let (status, state) = server.post("/api/messages/alice/read", Some(&bob.token), json!({"up_to": 1_000_000})).await;
    assert_eq!(status, 200);
    assert_eq!(state["up_to"], second["id"]);
    assert_eq!(alice_ws.recv().await, json!({"type": "read", "conversation_id": conversation, "peer": "bob", "up_to": second["id"]}));
    let (_, chats) = server.get("/api/chats_history", Some(&bob.token)).await;
    assert_eq!(chats[0]["unread"], 0);
}

#[tokio::test]
async fn a_rest_send_is_delivered_live_to_both_users_sockets() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (mut alice_ws, ..) = server.connect(&alice).await;
    let (mut bob_ws, ..) = server.connect(&bob).await;
    let (status, message) = server.send_rest(&alice, "bob", "over rest", "r-1").await;
    assert_eq!(status, 201);
    assert_eq!(bob_ws.recv_type("receive_message").await["message"], message);
    assert_eq!(alice_ws.recv_type("receive_message").await["message"], message);
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_socket_stays_open() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let (mut ws, ..) = server.connect(&alice).await;

    let cases = [
        (Message::text("{not json"), "invalid_json", None),
        (Message::text(r#"{"type":"shout"}"#), "unknown_type", None),
        (Message::text(r#"{"no":"type"}"#), "invalid_frame", None),
        (Message::text(r#"{"type":"sync","after":"x"}"#), "invalid_frame", None),
        (Message::text(r#"{"type":"typing","to":"bob","extra":true}"#), "invalid_frame", None),
        (Message::text(r#"{"type":"auth","token":"again"}"#), "already_authenticated", None),
        (Message::binary(vec![1, 2, 3]), "invalid_frame", None),
        (Message::text(send("bob", "   ", "e-1").to_string()), "empty_message", Some("e-1")),
        (Message::text(send("bob", &"x".repeat(4001), "e-2").to_string()), "message_too_long", Some("e-2")),
        (Message::text(send("nobody", "hi", "e-3").to_string()), "user_not_found", Some("e-3")),
        (Message::text(send("alice", "me", "e-4").to_string()), "cannot_message_self", Some("e-4")),
        (Message::text(send("bob", "hi", &"k".repeat(65)).to_string()), "invalid_client_id", Some("k")),
        (Message::text(r#"{"type":"sync","after":-1}"#), "invalid_parameter", None),
        (Message::text(r#"{"type":"typing","to":"ghost"}"#), "user_not_found", None),
    ];
    for (frame, code, client_id) in cases {
        ws.send_raw(frame).await;
        let error = ws.recv().await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["code"], code, "{error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        match client_id {
            Some("k") => assert_eq!(error["client_id"], "k".repeat(65)),
            Some(id) => assert_eq!(error["client_id"], id),
            None => assert_eq!(error["client_id"], Value::Null, "{error}"),
        }
    }
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.recv().await, json!({"type": "pong"}));
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_the_socket_with_1009() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let (mut ws, ..) = server.connect(&alice).await;
    ws.send_raw(Message::text(send("bob", &"x".repeat(70 * 1024), "big").to_string())).await;
    assert_eq!(ws.closed_with().await, Some(1009));
    // Others carry on.
    let (mut again, ..) = server.connect(&alice).await;
    again.send(json!({"type": "ping"})).await;
    assert_eq!(again.recv().await["type"], "pong");
}

#[tokio::test]
async fn browser_origins_other_than_our_own_or_the_allow_list_are_refused() {
    let server = TestServer::start_with(|c| c.websocket.allowed_origins = vec!["https://chat.example.com".into()]).await;
    let own = format!("http://{}", server.addr);
    assert!(WsClient::open_with_origin(&server, &own).await.is_ok());
    assert!(WsClient::open_with_origin(&server, "https://chat.example.com").await.is_ok());
    match WsClient::open_with_origin(&server, "https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        Err(other) => panic!("expected an HTTP 403, got {other}"),
        Ok(_) => panic!("a foreign origin was let in"),
    }
}

#[tokio::test]
async fn signing_out_closes_that_sessions_sockets_only() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let other_device = TestUser { name: "alice".into(), token: server.signin("alice").await };
    let (mut signed_out, ..) = server.connect(&alice).await;
    let (mut still_in, ..) = server.connect(&other_device).await;

    let (status, _) = server.post("/api/signout", Some(&alice.token), json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(signed_out.closed_with().await, Some(4401));
    still_in.send(json!({"type": "ping"})).await;
    assert_eq!(still_in.recv().await["type"], "pong");

    let mut ws = WsClient::open(&server).await;
    ws.send(json!({"type": "auth", "token": alice.token})).await;
    assert_eq!(ws.closed_with().await, Some(4401));
}

#[tokio::test]
async fn concurrent_senders_reach_the_recipient_once_each_in_id_order() {
    let server = TestServer::start().await;
    let bob = server.user("bob").await;
    let (mut bob_ws, ..) = server.connect(&bob).await;
    let per_sender = 200;
    let mut senders = Vec::new();
    for name in ["alice", "carol", "dave"] {
        let user = server.user(name).await;
        let (ws, ..) = server.connect(&user).await;
        senders.push(ws);
    }
    for (s, ws) in senders.iter_mut().enumerate() {
        for n in 0..per_sender {
            ws.send(send("bob", &format!("{s}:{n}"), &format!("{s}-{n}"))).await;
        }
    }
    let mut ids = Vec::new();
    let mut bodies = std::collections::HashSet::new();
    while ids.len() < per_sender * 3 {
        let frame = bob_ws.recv().await;
        if frame["type"] == "receive_message" {
            ids.push(frame["message"]["id"].as_i64().unwrap());
            assert!(bodies.insert(frame["message"]["body"].as_str().unwrap().to_owned()), "duplicate {frame}");
        }
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "delivered in commit order");
    bob_ws.expect_silence(QUIET).await;
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_and_keeps_every_acked_message() {
    let mut server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let (mut ws, ..) = server.connect(&alice).await;
    for n in 0..50 {
        ws.send(send("bob", &format!("m{n}"), &format!("c{n}"))).await;
    }
    let mut acked = Vec::new();
    for _ in 0..50 {
        acked.push(ws.recv_type("ack").await["message"].clone());
    }
    server.stop_in_place().await;
    assert_eq!(ws.closed_with().await, Some(1001));

    let server = server.restart().await;
    let token = server.signin("alice").await;
    let (_, page) = server.get("/api/messages/bob?limit=100", Some(&token)).await;
    assert_eq!(page["messages"], json!(acked));
}

#[tokio::test]
async fn a_silent_connection_is_closed_and_its_user_goes_offline() {
    let server = TestServer::start_with(|c| c.websocket.ping_interval_secs = 1).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.send_rest(&alice, "bob", "hi", "c-1").await;
    server.send_rest(&bob, "alice", "hi", "c-2").await;
    let (mut alice_ws, ..) = server.connect(&alice).await;
    let (mut bob_ws, ..) = server.connect(&bob).await;
    alice_ws.recv_type("presence").await;

    // Bob's client stops reading (and so stops answering pings) while alice's keeps reading.
    let offline = alice_ws.recv_type("presence").await;
    assert_eq!(offline, json!({"type": "presence", "username": "bob", "online": false}));
    assert_eq!(bob_ws.closed_with().await, Some(1001));
    alice_ws.send(json!({"type": "ping"})).await;
    assert_eq!(alice_ws.recv_type("pong").await["type"], "pong");
}

#[tokio::test]
async fn reading_on_one_device_updates_my_other_devices_and_survives_a_reload() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (_, message) = server.send_rest(&alice, "bob", "hello", "c-1").await;
    let (mut phone, ..) = server.connect(&bob).await;
    let (mut laptop, ..) = server.connect(&bob).await;

    phone.send(json!({"type": "read", "peer": "alice", "up_to": message["id"]})).await;
    assert_eq!(
        laptop.recv_type("read_marker").await,
        json!({"type": "read_marker", "conversation_id": message["conversation_id"], "peer": "alice", "up_to": message["id"]})
    );
    phone.expect_silence(QUIET).await;
    // Reading the same again moves nothing and tells no one.
    phone.send(json!({"type": "read", "peer": "alice", "up_to": message["id"]})).await;
    laptop.expect_silence(QUIET).await;

    // Both markers can be read back, so "seen" and unread survive a reload.
    let (_, chats) = server.get("/api/chats_history", Some(&bob.token)).await;
    assert_eq!(chats[0]["unread"], 0);
    let (status, markers) = server.get("/api/read_markers", Some(&bob.token)).await;
    assert_eq!(status, 200);
    assert_eq!(markers, json!([{"username": "alice", "read_up_to": message["id"], "peer_read_up_to": 0}]));
    let (_, markers) = server.get("/api/read_markers", Some(&alice.token)).await;
    assert_eq!(markers, json!([{"username": "bob", "read_up_to": 0, "peer_read_up_to": message["id"]}]));
}

#[tokio::test]
async fn forged_and_stale_tokens_are_refused_on_the_socket() {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use jsonwebtoken::{EncodingKey, Header, encode};
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let secret = std::fs::read_to_string(server.data_dir.path().join("jwt-secret")).unwrap();
    let parts: Vec<&str> = alice.token.split('.').collect();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: &Value, key: &[u8], algorithm| encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(key)).unwrap();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        change(&mut c);
        c
    };
    let unsigned = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(with(&|c| c["sub"] = json!("bob")).to_string()), parts[2]);
    let forged = [
        ("alg none", unsigned),
        ("tampered claims", tampered),
        ("another key", sign(&claims, b"not-the-server-secret-0123456789abcdef", jsonwebtoken::Algorithm::HS256)),
        ("another algorithm", sign(&claims, secret.trim().as_bytes(), jsonwebtoken::Algorithm::HS512)),
        ("expired", sign(&with(&|c| c["exp"] = json!(now - 3600)), secret.trim().as_bytes(), jsonwebtoken::Algorithm::HS256)),
        ("string exp", sign(&with(&|c| c["exp"] = json!((now + 3600).to_string())), secret.trim().as_bytes(), jsonwebtoken::Algorithm::HS256)),
        ("unknown session", sign(&with(&|c| c["sid"] = json!("0".repeat(32))), secret.trim().as_bytes(), jsonwebtoken::Algorithm::HS256)),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in forged {
        let mut ws = WsClient::open(&server).await;
        ws.send(json!({"type": "auth", "token": token})).await;
        assert_eq!(ws.closed_with().await, Some(4401), "{what}");
        assert_eq!(server.get("/api/me", Some(&token)).await.0, 401, "{what}");
    }
    // The genuine token, re-signed exactly, still works: the refusals above were about the forgery.
    let genuine = sign(&claims, secret.trim().as_bytes(), jsonwebtoken::Algorithm::HS256);
    let (_, ready, _) = server.connect(&TestUser { name: "alice".into(), token: genuine }).await;
    assert_eq!(ready["username"], "alice");
}

// ---------------------------------------------------------------------------------------------
// The AsyncAPI document

#[tokio::test]
async fn the_asyncapi_document_is_served_and_printed_alike_and_describes_ws_in_asyncapi_3() {
    let server = TestServer::start().await;
    let response = server.http.get(server.url("/api/asyncapi.json")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let served = response.text().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let printed = run_chatd(dir.path(), &["asyncapi"]);
    assert!(printed == format!("{served}\n"), "`chatd asyncapi` prints what the server serves");
    assert!(!dir.path().join("chat.db").exists(), "printing the document touches no database");

    let document: Value = serde_json::from_str(&served).expect("the document is JSON");
    assert_eq!(document["asyncapi"], "3.0.0");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(document["info"]["license"]["name"], "MIT");
    assert!(document["info"]["description"].as_str().is_some_and(|d| d.contains("**receives**")), "says which side it describes");
    assert_eq!(document["channels"]["ws"]["address"], "/ws");
    assert_eq!(document["servers"]["chatd"]["protocol"], "ws");
    assert_eq!(document, asyncapi::document(), "the one the tests check frames against");
}

#[test]
fn the_frame_check_refuses_frames_the_asyncapi_document_does_not_describe() {
    let message = json!({"id": 42, "conversation_id": 7, "from": "alice", "to": "bob", "body": "hi",
        "created_at": "2026-11-24T10:15:00.123Z", "client_id": "c-1", "kind": "text", "event": null});
    let valid = [
        json!({"type": "ack", "client_id": "c-1", "message": message}),
        json!({"type": "ready", "username": "alice", "last_id": 0}),
        json!({"type": "read_marker", "conversation_id": 7, "peer": null, "up_to": 42}),
        json!({"type": "error", "code": "invalid_frame", "message": "no", "client_id": null}),
        json!({"type": "member_removed", "id": 9, "conversation_id": 3, "created_at": "1970-01-01T00:00:00.000Z", "by": null, "username": "bob"}),
    ];
    for frame in &valid {
        assert_eq!(asyncapi::server_frame_errors(frame), Vec::<String>::new(), "{frame}");
    }
    let with = |frame: &Value, change: &dyn Fn(&mut Value)| {
        let mut frame = frame.clone();
        change(&mut frame);
        frame
    };
    let invalid = [
        ("a number as a string", with(&valid[0], &|f| f["message"]["id"] = json!("42"))),
        ("a required field missing", with(&valid[1], &|f| drop(f.as_object_mut().unwrap().remove("last_id")))),
        ("a field the frame does not have", with(&valid[1], &|f| f["extra"] = json!(1))),
        ("a field left out instead of null", with(&valid[2], &|f| drop(f.as_object_mut().unwrap().remove("peer")))),
        ("a code that does not exist", with(&valid[3], &|f| f["code"] = json!("oops"))),
        ("a time that is not RFC 3339", with(&valid[4], &|f| f["created_at"] = json!("yesterday"))),
        ("a username of the wrong form", with(&valid[4], &|f| f["username"] = json!("Bob"))),
        ("a client frame", json!({"type": "sync", "after": 1})),
        ("an unknown type", json!({"type": "shout"})),
        ("no type", json!({"users": []})),
    ];
    for (what, frame) in invalid {
        assert!(!asyncapi::server_frame_errors(&frame).is_empty(), "{what}: {frame} passed");
        let checked = std::panic::catch_unwind(|| asyncapi::check_frame(&frame));
        assert!(checked.is_err(), "{what}: check_frame let {frame} through");
    }
}

#[test]
fn every_example_in_the_asyncapi_document_matches_its_message() {
    let document = asyncapi::document();
    let mut directions = std::collections::BTreeSet::new();
    for frame in asyncapi::messages() {
        let examples = document["components"]["messages"][&frame.message]["examples"].as_array().cloned().unwrap_or_default();
        assert!(!examples.is_empty(), "{} has examples", frame.message);
        for example in examples {
            let errors = asyncapi::message_errors(&frame.message, &example["payload"]);
            assert!(errors.is_empty(), "{} example {}: {}", frame.message, example["payload"], errors.join("; "));
        }
        directions.insert(frame.action.clone());
    }
    assert_eq!(directions.into_iter().collect::<Vec<_>>(), ["receive", "send"]);
}

#[test]
fn the_asyncapi_document_lists_the_close_codes_and_error_codes_the_server_uses() {
    use chatd::realtime::protocol::{
        CLOSE_GOING_AWAY, CLOSE_INVALID_DATA, CLOSE_PROTOCOL_ERROR, CLOSE_SERVER_ERROR, CLOSE_TOO_BIG, CLOSE_TOO_MANY_SOCKETS, CLOSE_UNAUTHORIZED,
    };
    use poem_openapi::{registry::Registry, types::Type};
    let document = asyncapi::document();
    let listed: Vec<u64> = document["channels"]["ws"]["x-close-codes"].as_array().unwrap().iter().map(|c| c["code"].as_u64().unwrap()).collect();
    let used = [CLOSE_GOING_AWAY, CLOSE_PROTOCOL_ERROR, CLOSE_INVALID_DATA, CLOSE_TOO_BIG, CLOSE_SERVER_ERROR, CLOSE_UNAUTHORIZED, CLOSE_TOO_MANY_SOCKETS];
    assert_eq!(listed, used.map(u64::from));
    let description = document["info"]["description"].as_str().unwrap();
    for code in used {
        assert!(description.contains(&format!("| {code} |")), "the close code table has {code}");
    }

    let mut registry = Registry::new();
    chatd::error::ErrorCode::register(&mut registry);
    let codes = &registry.schemas[&*chatd::error::ErrorCode::name()].enum_items;
    assert_eq!(&document["components"]["schemas"]["ErrorCode"]["enum"], &Value::from(codes.clone()), "every ErrorCode, in its order");
}
