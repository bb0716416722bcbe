//! The attacks of the second security review, each reproduced against a real server: a reader
//! that stops reading, presence and typing across strangers, limits stepped around by spelling,
//! address or concurrency, slow and kept-alive connections, protocol errors and file modes.
mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use assert_cmd::cargo::CommandCargoExt;
use chatd::config::RateLimitsConfig;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

fn limits(change: impl FnOnce(&mut RateLimitsConfig)) -> RateLimitsConfig {
    let mut limits = RateLimitsConfig::unlimited();
    change(&mut limits);
    limits
}

async fn user_id(server: &TestServer, name: &str) -> chatd::domain::UserId {
    chatd::domain::UserId(server.app.accounts.find_user(name).await.unwrap().id)
}

/// Polls `check` every 20 ms until it holds; fails after `limit`. Returns how long it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// An authenticated WebSocket over a TCP socket with a 4 KiB receive buffer, which from here on
/// is never read: the client that stops reading.
async fn stuck_socket(server: &TestServer, user: &TestUser) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(server.ws_url(), MaybeTlsStream::Plain(stream)).await.unwrap();
    ws.send(Message::text(json!({"type": "auth", "token": user.token}).to_string())).await.unwrap();
    for expected in ["ready", "online_users"] {
        let frame: Value = serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
        asyncapi::check_frame(&frame);
        assert_eq!(frame["type"], expected, "{frame}");
    }
    ws
}

/// Bob sends `count` messages of 4,000 characters to alice over his socket, 64 unacked at a time,
/// until all are acked; returns the other frames he got meanwhile.
async fn flood(bob_ws: &mut WsClient, count: usize) -> Vec<Value> {
    let body = "x".repeat(4000);
    let (mut sent, mut acked, mut others) = (0, 0, Vec::new());
    while acked < count {
        while sent < count && sent - acked < 64 {
            bob_ws.send(json!({"type": "send_message", "to": "alice", "body": body, "client_id": format!("f{sent}")})).await;
            sent += 1;
        }
        let frame = bob_ws.recv().await;
        if frame["type"] == "ack" {
            acked += 1;
        } else {
            others.push(frame);
        }
    }
    others
}

/// Alice has written to bob (so bob may see her presence); bob is connected and has seen her
/// stuck socket come online.
async fn alice_stuck_and_bob_watching(server: &TestServer) -> (TestUser, WsClient, WebSocketStream<MaybeTlsStream<TcpStream>>) {
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    assert_eq!(server.send_rest(&alice, "bob", "hi bob", "a1").await.0, 201);
    let (mut bob_ws, ..) = server.connect(&bob).await;
    let stuck = stuck_socket(server, &alice).await;
    assert_eq!(bob_ws.recv_type("presence").await, json!({"type": "presence", "username": "alice", "online": true}));
    (alice, bob_ws, stuck)
}

/// 12 MB: more than the buffers between the server and a reader that holds 4 KiB can take, so the
/// server's writes stall. Tests of the stall raise `websocket.max_queued_bytes` so that the outbox
/// does not overflow first.
const STALLING_MESSAGES: usize = 3000;
const ROOMY_OUTBOX: usize = 64 * 1024 * 1024;

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_when_its_outbox_passes_its_bound_in_bytes() {
    let server = TestServer::start_with(|c| c.websocket.write_timeout_secs = 600).await;
    let (_alice, mut bob_ws, _stuck) = alice_stuck_and_bob_watching(&server).await;
    // More than a stuck socket's buffers and its 4 MiB outbox together.
    let mut frames = flood(&mut bob_ws, STALLING_MESSAGES).await;
    let alice_id = user_id(&server, "alice").await;
    within(Duration::from_secs(3), "alice's socket is dropped", || async { server.app.hub.sockets_of(alice_id) == 0 }).await;
    if frames.is_empty() {
        frames.push(bob_ws.recv_type("presence").await);
    }
    assert_eq!(frames, [json!({"type": "presence", "username": "alice", "online": false})]);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_within_a_second_of_signing_out() {
    // A write deadline longer than the test, so that only the sign-out can end the socket.
    let server = TestServer::start_with(|c| {
        c.websocket.write_timeout_secs = 600;
        c.websocket.max_queued_bytes = ROOMY_OUTBOX;
    })
    .await;
    let (alice, mut bob_ws, _stuck) = alice_stuck_and_bob_watching(&server).await;
    assert!(flood(&mut bob_ws, STALLING_MESSAGES).await.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alice_id = user_id(&server, "alice").await;
    assert_eq!(server.app.hub.sockets_of(alice_id), 1, "still connected while only stalled");

    let (status, _) = server.post("/api/signout", Some(&alice.token), json!({})).await;
    assert_eq!(status, 204);
    let took = within(Duration::from_secs(3), "alice's stalled socket is gone", || async {
        server.app.hub.sockets_of(alice_id) == 0
    })
    .await;
    assert_eq!(bob_ws.recv_type("presence").await, json!({"type": "presence", "username": "alice", "online": false}));
    eprintln!("stalled socket closed {took:?} after sign-out");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_at_the_write_deadline() {
    let server = TestServer::start_with(|c| {
        c.websocket.write_timeout_secs = 1;
        c.websocket.max_queued_bytes = ROOMY_OUTBOX;
    })
    .await;
    let (_alice, mut bob_ws, _stuck) = alice_stuck_and_bob_watching(&server).await;
    assert!(flood(&mut bob_ws, STALLING_MESSAGES).await.is_empty());
    let alice_id = user_id(&server, "alice").await;
    let took = within(Duration::from_secs(4), "alice's stalled socket is dropped", || async {
        server.app.hub.sockets_of(alice_id) == 0
    })
    .await;
    assert_eq!(bob_ws.recv_type("presence").await, json!({"type": "presence", "username": "alice", "online": false}));
    eprintln!("stalled socket dropped {took:?} after the flood was acked");
}

#[tokio::test]
async fn presence_is_shown_only_to_people_one_has_written_to() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let mallory = server.user("mallory").await;
    let (_alice_ws, ..) = server.connect(&alice).await;
    let online = |found: Value| found.as_array().unwrap().iter().find(|u| u["username"] == "alice").unwrap()["online"].clone();

    let (_, found) = server.get("/api/users?q=alice", Some(&mallory.token)).await;
    assert_eq!(online(found), false, "a stranger does not learn that alice is online");
    // One unsolicited message does not make alice visible to its sender either.
    assert_eq!(server.send_rest(&mallory, "alice", "hello?", "m1").await.0, 201);
    let (_, found) = server.get("/api/users?q=alice", Some(&mallory.token)).await;
    assert_eq!(online(found), false);
    let (_, chats) = server.get("/api/chats_history", Some(&mallory.token)).await;
    assert_eq!(chats[0]["online"], false);
    let (mut mallory_ws, _, online_users) = server.connect(&mallory).await;
    assert_eq!(online_users["users"], json!([]));

    // Once alice answers, mallory may see her, and learns it at once.
    assert_eq!(server.send_rest(&alice, "mallory", "hi", "a1").await.0, 201);
    assert_eq!(mallory_ws.recv_type("presence").await, json!({"type": "presence", "username": "alice", "online": true}));
    let (_, found) = server.get("/api/users?q=alice", Some(&mallory.token)).await;
    assert_eq!(online(found), true);
}

#[tokio::test]
async fn typing_from_a_stranger_reaches_no_one_and_a_flood_is_cut_to_a_trickle() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mallory = server.user("mallory").await;
    assert_eq!(server.send_rest(&bob, "alice", "hi", "b1").await.0, 201);
    let (mut alice_ws, ..) = server.connect(&alice).await;
    let (mut mallory_ws, ..) = server.connect(&mallory).await;
    let (mut bob_ws, ..) = server.connect(&bob).await;

    let frames = 20_000;
    let started = Instant::now();
    for _ in 0..frames {
        mallory_ws.send(json!({"type": "typing", "to": "alice"})).await;
        bob_ws.send(json!({"type": "typing", "to": "alice"})).await;
    }
    for ws in [&mut mallory_ws, &mut bob_ws] {
        ws.send(json!({"type": "ping"})).await;
        assert_eq!(ws.recv_type("pong").await["type"], "pong");
    }
    let elapsed = started.elapsed();
    alice_ws.send(json!({"type": "ping"})).await;
    let mut typing = Vec::new();
    loop {
        let frame = alice_ws.recv().await;
        match frame["type"].as_str() {
            Some("typing") => typing.push(frame["from"].as_str().unwrap().to_owned()),
            Some("pong") => break,
            _ => {}
        }
    }
    assert!(typing.iter().all(|from| from == "bob"), "mallory shares no conversation with alice: {typing:?}");
    // At most the burst plus the rate over the flood; the rest were dropped without a word.
    let allowed = 6 + 2 * elapsed.as_secs() as usize + 2;
    assert!(!typing.is_empty() && typing.len() <= allowed, "{} typing frames of {frames} arrived in {elapsed:?}", typing.len());
    eprintln!("{} of {frames} typing frames from bob reached alice in {elapsed:?}", typing.len());
}

async fn signin_from(server: &TestServer, name: &str, password: &str, address: &str) -> (u16, Value) {
    let response = server
        .http
        .post(server.url("/api/signin"))
        .header("x-forwarded-for", address)
        .json(&json!({"username": name, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn behind_proxy(change: impl FnOnce(&mut RateLimitsConfig)) -> impl FnOnce(&mut chatd::Config) {
    let limits = limits(change);
    move |c| {
        c.rate_limits = limits;
        c.trusted_proxies = vec!["127.0.0.0/8".into()];
    }
}

#[tokio::test]
async fn every_spelling_of_a_username_shares_its_failure_limit() {
    let server = TestServer::start_with(behind_proxy(|l| l.signin_failures_per_account_per_minute = 3)).await;
    server.user("alice").await;
    for spelling in ["alice ", " alice", "\talice", "alice\u{a0}"] {
        signin_from(&server, spelling, "wrong password", "198.51.100.7").await;
    }
    for spelling in ["alice\u{3000}", "ALICE", "alice"] {
        let (status, body) = signin_from(&server, spelling, PASSWORD, "198.51.100.7").await;
        assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")), "{spelling:?}");
    }
}

#[tokio::test]
async fn a_stranger_guessing_cannot_lock_the_owner_out() {
    let server = TestServer::start_with(behind_proxy(|l| {
        l.signin_failures_per_account_per_minute = 5;
        l.signin_failures_per_account_per_hour = 20;
    }))
    .await;
    server.user("alice").await;
    let owner = "203.0.113.5";
    assert_eq!(signin_from(&server, "alice", PASSWORD, owner).await.0, 200, "the owner's usual place");
    for _ in 0..8 {
        signin_from(&server, "alice", "wrong password", "198.51.100.7").await;
    }
    assert_eq!(signin_from(&server, "alice", PASSWORD, "198.51.100.7").await.0, 429, "the guesser waits");
    assert_eq!(signin_from(&server, "alice", PASSWORD, owner).await.0, 200, "the owner does not");
    assert_eq!(signin_from(&server, "alice", PASSWORD, "203.0.113.77").await.0, 200, "nor from a new place");

    // Guesses spread over many addresses: new places wait, places alice has signed in from do not.
    for n in 0..20 {
        signin_from(&server, "alice", "wrong password", &format!("198.51.101.{n}")).await;
    }
    let (status, body) = signin_from(&server, "alice", PASSWORD, "203.0.113.200").await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    assert_eq!(signin_from(&server, "alice", PASSWORD, owner).await.0, 200);
    assert_eq!(signin_from(&server, "alice", PASSWORD, "203.0.113.77").await.0, 200);
}

#[tokio::test]
async fn correct_sign_ins_are_limited_per_address_and_per_account() {
    let server = TestServer::start_with(behind_proxy(|l| {
        l.signins_per_address_per_minute = 5;
        l.signins_per_account_per_minute = 8;
    }))
    .await;
    server.user("alice").await;
    server.user("bob").await;
    for _ in 0..5 {
        assert_eq!(signin_from(&server, "alice", PASSWORD, "198.51.100.7").await.0, 200);
    }
    assert_eq!(signin_from(&server, "bob", PASSWORD, "198.51.100.7").await.0, 429, "per address, whatever the account");
    let statuses: Vec<u16> =
        futures_util::future::join_all((0..6).map(|n| {
            let server = &server;
            async move { signin_from(server, "alice", PASSWORD, &format!("198.51.102.{n}")).await }
        }))
            .await
            .into_iter()
            .map(|(status, _)| status)
            .collect();
    // Eight a minute for the account: six were taken (one by `user()`), two are left for new places.
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2, "{statuses:?}");
    assert_eq!(signin_from(&server, "alice", PASSWORD, "198.51.100.7").await.0, 429);
}

#[tokio::test]
async fn live_sessions_are_capped_and_the_oldest_are_revoked() {
    let server = TestServer::start_with(|c| c.auth.max_sessions_per_user = 3).await;
    server.user("alice").await;
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(server.signin("alice").await);
    }
    let mut statuses = Vec::new();
    for token in &tokens {
        statuses.push(server.get("/api/me", Some(token)).await.0);
    }
    // `user()` signed in once before: six sessions in all, the newest three live.
    assert_eq!(statuses, [401, 401, 200, 200, 200]);
}

#[tokio::test]
async fn a_sign_in_storm_is_turned_away_fast_while_the_hashers_are_busy() {
    let server = TestServer::start().await;
    server.user("alice").await;
    server.user("bob").await;
    let started = Instant::now();
    let storm = futures_util::future::join_all((0..600).map(|_| async {
        let response =
            server.http.post(server.url("/api/signin")).json(&json!({"username": "alice", "password": PASSWORD})).send().await.unwrap();
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), retry_after, started.elapsed())
    }));
    let bob = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let asked = Instant::now();
        let (status, body) = server.post("/api/signin", None, json!({"username": "bob", "password": PASSWORD})).await;
        (status, body, asked.elapsed())
    };
    let (answers, (bob_status, bob_body, bob_took)) = tokio::join!(storm, bob);
    let busy: Vec<_> = answers.iter().filter(|(status, ..)| *status == 503).collect();
    assert!(!busy.is_empty(), "a deep hashing queue turns sign-ins away");
    assert!(busy.iter().all(|(_, retry_after, _)| retry_after.as_deref() == Some("1")), "503 carries Retry-After");
    assert!(answers.iter().all(|(status, ..)| matches!(status, 200 | 503)));
    assert!(matches!(bob_status, 200 | 503), "{bob_status} {bob_body}");
    let slowest_refusal = busy.iter().map(|(.., took)| *took).max().unwrap();
    eprintln!(
        "{} of 600 sign-ins accepted, {} turned away (the last refusal {slowest_refusal:?} after the storm began); bob's sign-in: {bob_status} in {bob_took:?}",
        answers.len() - busy.len(),
        busy.len()
    );
}

#[tokio::test]
async fn the_hashing_queue_bound_is_configurable_and_zero_removes_it() {
    async fn statuses(server: &TestServer, count: usize) -> Vec<u16> {
        futures_util::future::join_all((0..count).map(|_| async {
            let body = json!({"username": "alice", "password": PASSWORD});
            server.http.post(server.url("/api/signin")).json(&body).send().await.unwrap().status().as_u16()
        }))
        .await
    }
    let tight = TestServer::start_with(|c| c.auth.hash_queue_per_core = 1).await;
    tight.user("alice").await;
    let answers = statuses(&tight, 16).await;
    assert!(answers.contains(&503), "one waiting check per core turns a burst of 16 away: {answers:?}");
    let unbounded = TestServer::start_with(|c| c.auth.hash_queue_per_core = 0).await;
    unbounded.user("alice").await;
    let answers = statuses(&unbounded, 16).await;
    assert!(answers.iter().all(|status| *status == 200), "with no bound every sign-in waits its turn: {answers:?}");
}

/// Reads from `stream` until the server closes it; `None` if it is still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_kept_alive_connection_that_trickles_its_next_request_is_closed() {
    let server = TestServer::start_with(|c| c.limits.request_timeout_secs = 2).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 4096];
    let read = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..read]).starts_with("HTTP/1.1 200"));
    // The next request arrives a header line at a time, forever.
    stream.write_all(b"GET /api/health HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let trickle = async {
        for n in 0.. {
            tokio::time::sleep(Duration::from_millis(400)).await;
            if stream.write_all(format!("X-Slow-{n}: y\r\n").as_bytes()).await.is_err() {
                return started.elapsed();
            }
            let mut probe = [0u8; 1];
            if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await {
                return started.elapsed();
            }
        }
        unreachable!()
    };
    let took = tokio::time::timeout(Duration::from_secs(8), trickle).await.expect("the server closes the trickling connection");
    assert!(took >= Duration::from_millis(1500), "not before the deadline: {took:?}");
    eprintln!("trickling keep-alive connection closed after {took:?}");
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let server = TestServer::start_with(|c| c.rate_limits = limits(|l| l.connections_per_address = 5)).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let mut sixth = TcpStream::connect(server.addr).await.unwrap();
    assert!(closed_within(&mut sixth, Duration::from_secs(2)).await.is_some(), "the sixth is closed at once");
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let response = reqwest::Client::new().get(server.url("/api/health")).send().await.unwrap();
    assert_eq!(response.status(), 200, "a place freed is a place to take");
}

#[tokio::test]
async fn a_stalled_request_body_gets_408() {
    let server = TestServer::start_with(|c| c.limits.request_timeout_secs = 2).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /api/signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

#[tokio::test]
async fn concurrent_auth_frames_cannot_open_more_sockets_than_allowed() {
    let server = TestServer::start_with(|c| c.rate_limits = limits(|l| l.sockets_per_user = 5)).await;
    let alice = server.user("alice").await;
    let mut sockets = Vec::new();
    for _ in 0..60 {
        sockets.push(WsClient::open(&server).await);
    }
    let outcomes = futures_util::future::join_all(sockets.iter_mut().map(|ws| async {
        ws.send(json!({"type": "auth", "token": alice.token})).await;
        ws.try_recv().await
    }))
    .await;
    let ready = outcomes.iter().filter(|o| matches!(o, Ok(frame) if frame["type"] == "ready")).count();
    let refused = outcomes.iter().filter(|o| matches!(o, Err(Some(4429)))).count();
    assert_eq!((ready, refused), (5, 55), "{outcomes:?}");
}

#[tokio::test]
async fn syncs_are_metered_per_user() {
    let server = TestServer::start_with(|c| c.rate_limits = limits(|l| l.syncs_per_user_per_minute = 3)).await;
    let alice = server.user("alice").await;
    let (mut ws, ..) = server.connect(&alice).await;
    for _ in 0..10 {
        ws.send(json!({"type": "sync", "after": 0})).await;
    }
    let (mut done, mut limited) = (0, 0);
    while done + limited < 10 {
        let frame = ws.recv().await;
        match frame["type"].as_str() {
            Some("sync_done") => done += 1,
            Some("error") if frame["code"] == "rate_limited" => limited += 1,
            _ => {}
        }
    }
    assert_eq!((done, limited), (3, 7));
}

#[tokio::test]
async fn ipv6_clients_are_counted_per_64_network() {
    let server = TestServer::start_with(behind_proxy(|l| l.signups_per_address_per_hour = 2)).await;
    let signup = |name: &'static str, address: &'static str| {
        let request = server.http.post(server.url("/api/signup")).header("x-forwarded-for", address);
        async move { request.json(&json!({"username": name, "password": PASSWORD})).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(signup("one", "2001:db8:7:7::1").await, 201);
    assert_eq!(signup("two", "2001:db8:7:7:ffff::2").await, 201);
    assert_eq!(signup("three", "2001:db8:7:7:1234:5678:9abc:def0").await, 429, "the same /64");
    assert_eq!(signup("four", "2001:db8:7:8::1").await, 201, "another /64");
}

#[tokio::test]
async fn a_disabled_account_answers_the_same_whatever_the_password() {
    let server = TestServer::start().await;
    server.user("alice").await;
    server.app.accounts.set_disabled("alice", true).await.unwrap();
    let right = server.post("/api/signin", None, json!({"username": "alice", "password": PASSWORD})).await;
    let wrong = server.post("/api/signin", None, json!({"username": "alice", "password": "wrong password"})).await;
    assert_eq!(right.0, 403);
    assert_eq!(right, wrong, "the password cannot be confirmed on a disabled account");
}

/// A raw WebSocket client, for frames no library would send.
struct RawSocket(TcpStream);

impl RawSocket {
    async fn open(addr: SocketAddr) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        Self(stream)
    }

    /// Writes one frame: `first` is the FIN/RSV/opcode byte; the payload is masked if `masked`.
    async fn write(&mut self, first: u8, payload: &[u8], masked: bool) {
        let mut frame = vec![first];
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        let length = payload.len();
        let mask_bit = if masked { 0x80 } else { 0 };
        if length < 126 {
            frame.push(mask_bit | length as u8);
        } else {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(length as u16).to_be_bytes());
        }
        if masked {
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        self.0.write_all(&frame).await.unwrap();
    }

    /// Reads frames until a close frame, and returns its code.
    async fn close_code(&mut self) -> Option<u16> {
        let read = async {
            loop {
                let mut head = [0u8; 2];
                self.0.read_exact(&mut head).await.ok()?;
                let mut length = u64::from(head[1] & 0x7f);
                if length == 126 {
                    let mut ext = [0u8; 2];
                    self.0.read_exact(&mut ext).await.ok()?;
                    length = u64::from(u16::from_be_bytes(ext));
                } else if length == 127 {
                    let mut ext = [0u8; 8];
                    self.0.read_exact(&mut ext).await.ok()?;
                    length = u64::from_be_bytes(ext);
                }
                let mut payload = vec![0u8; length as usize];
                self.0.read_exact(&mut payload).await.ok()?;
                if head[0] & 0x0f == 0x8 {
                    return payload.get(..2).map(|code| u16::from_be_bytes([code[0], code[1]]));
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read).await.ok().flatten()
    }
}

#[tokio::test]
async fn websocket_protocol_errors_get_a_close_code_before_and_after_auth() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let auth = json!({"type": "auth", "token": alice.token}).to_string();
    let cases: [(&str, u8, &[u8], bool, u16); 3] = [
        ("invalid UTF-8 in a text frame", 0x81, b"{\"type\":\"ping\",\"x\":\"\xff\xfe\"}", true, 1007),
        ("an unmasked frame", 0x81, b"{\"type\":\"ping\"}", false, 1002),
        ("reserved bits set", 0xC1, b"{\"type\":\"ping\"}", true, 1002),
    ];
    for (what, first, payload, masked, code) in cases {
        for authenticated in [false, true] {
            let mut raw = RawSocket::open(server.addr).await;
            if authenticated {
                raw.write(0x81, auth.as_bytes(), true).await;
            }
            raw.write(first, payload, masked).await;
            assert_eq!(raw.close_code().await, Some(code), "{what} (authenticated: {authenticated})");
        }
    }
}

#[tokio::test]
async fn the_content_security_policy_lets_the_app_talk_only_to_its_own_origin() {
    let server = TestServer::start().await;
    let response = reqwest::get(server.url("/")).await.unwrap();
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let connect = csp.split(';').map(str::trim).find(|d| d.starts_with("connect-src")).unwrap();
    assert_eq!(connect, "connect-src 'self'");
}

#[tokio::test]
async fn with_a_public_url_only_that_origin_may_open_a_websocket() {
    let server = TestServer::start_with(|c| c.public_url = "https://chat.example.com".into()).await;
    assert!(WsClient::open_with_origin(&server, "https://chat.example.com").await.is_ok());
    let own_host = format!("http://{}", server.addr);
    assert!(WsClient::open_with_origin(&server, &own_host).await.is_err(), "the public URL replaces the Host check");
    assert!(WsClient::open_with_origin(&server, "http://chat.example.com").await.is_err(), "the scheme counts");
}

#[test]
fn the_data_directory_and_everything_in_it_are_private() {
    use std::os::unix::fs::PermissionsExt;
    if sqlite_only("the modes of SQLite's database file and its backup") {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    let chatd = |args: &[&str]| {
        let output = std::process::Command::cargo_bin("chatd")
            .unwrap()
            .args(args)
            .env("CHATD_DATA_DIR", &data_dir)
            .env("CHATD_PASSWORD", PASSWORD)
            .env_remove("CHATD_CONFIG")
            .current_dir(parent.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    chatd(&["user", "add", "alice"]);
    let backup = parent.path().join("backup.db");
    chatd(&["backup", "-o", backup.to_str().unwrap()]);
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700);
    for file in ["chat.db", "jwt-secret"] {
        assert_eq!(mode(&data_dir.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&backup), 0o600);

    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(data_dir.join("chat.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let warnings = chatd(&["config", "check"]);
    assert!(warnings.contains("has mode 0755"), "{warnings}");
    assert!(warnings.contains("chat.db has mode 0644"), "{warnings}");
}

#[test]
fn config_check_says_loudly_that_metrics_without_a_token_are_public() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::cargo_bin("chatd")
        .unwrap()
        .args(["config", "check"])
        .env("CHATD_DATA_DIR", dir.path())
        .env("CHATD_METRICS__ENABLED", "true")
        .env_remove("CHATD_CONFIG")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("METRICS ARE PUBLIC"));
}

#[test]
fn config_check_warns_about_limits_switched_off_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let check = |listen: &str| {
        let output = std::process::Command::cargo_bin("chatd")
            .unwrap()
            .args(["config", "check"])
            .env("CHATD_DATA_DIR", dir.path())
            .env("CHATD_LISTEN", listen)
            .env("CHATD_RATE_LIMITS__SIGNUPS_PER_ADDRESS_PER_HOUR", "0")
            .env_remove("CHATD_CONFIG")
            .current_dir(dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let public = check("0.0.0.0:3000");
    assert!(public.contains("rate_limits.signups_per_address_per_hour = 0 means no limit at all"), "{public}");
    assert!(!check("127.0.0.1:3000").contains("means no limit"), "a loopback-only server is someone's test bed");
}
