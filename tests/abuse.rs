//! Abuse limits, client addresses behind proxies, sign-in timing, and what the logs never contain.
mod common;

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use assert_cmd::cargo::CommandCargoExt;
use chatd::config::RateLimitsConfig;
use common::*;
use serde_json::{Value, json};

fn limits(change: impl FnOnce(&mut RateLimitsConfig)) -> RateLimitsConfig {
    let mut limits = RateLimitsConfig::unlimited();
    change(&mut limits);
    limits
}

async fn signin_with(server: &TestServer, name: &str, password: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = server.http.post(server.url("/api/signin")).json(&json!({"username": name, "password": password}));
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

async fn assert_limited(response: reqwest::Response) {
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "Retry-After {retry_after}");
    let path = response.url().path().to_owned();
    let (_, body) = into_json("POST", &path, response).await;
    assert_eq!(body["code"], "rate_limited");
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_account() {
    let server = TestServer::start_with(|c| c.rate_limits = limits(|l| l.signin_failures_per_account_per_minute = 3)).await;
    server.user("alice").await;
    server.user("bob").await;
    for _ in 0..3 {
        assert_eq!(signin_with(&server, "alice", "wrong password", None).await.status(), 401);
    }
    // The fourth failure uses up the quota; now even the right password waits.
    assert_eq!(signin_with(&server, "alice", "wrong password", None).await.status(), 401);
    assert_limited(signin_with(&server, "alice", PASSWORD, None).await).await;
    assert_limited(signin_with(&server, "ALICE", PASSWORD, None).await).await;
    assert_eq!(signin_with(&server, "bob", PASSWORD, None).await.status(), 200, "other accounts are unaffected");
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_address_and_forwarded_headers_count_only_from_trusted_proxies() {
    let untrusted = TestServer::start_with(|c| c.rate_limits = limits(|l| l.signin_failures_per_address_per_minute = 2)).await;
    untrusted.user("alice").await;
    for n in 0..3 {
        // A made-up X-Forwarded-For does not buy a fresh quota.
        let spoofed = format!("198.51.100.{n}");
        assert_eq!(signin_with(&untrusted, &format!("ghost{n}"), "wrong password", Some(&spoofed)).await.status(), 401);
    }
    assert_limited(signin_with(&untrusted, "alice", PASSWORD, Some("198.51.100.200")).await).await;

    let proxied = TestServer::start_with(|c| {
        c.rate_limits = limits(|l| l.signin_failures_per_address_per_minute = 2);
        c.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    proxied.user("alice").await;
    for n in 0..3 {
        assert_eq!(signin_with(&proxied, &format!("ghost{n}"), "wrong password", Some("198.51.100.7")).await.status(), 401);
    }
    assert_limited(signin_with(&proxied, "alice", PASSWORD, Some("198.51.100.7")).await).await;
    assert_eq!(signin_with(&proxied, "alice", PASSWORD, Some("198.51.100.8")).await.status(), 200, "another client behind the proxy");
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let server = TestServer::start_with(|c| c.rate_limits = limits(|l| l.signups_per_address_per_hour = 2)).await;
    assert_eq!(server.signup("one").await.0, 201);
    assert_eq!(server.signup("two").await.0, 201);
    let response = server.http.post(server.url("/api/signup")).json(&json!({"username": "three", "password": PASSWORD})).send().await.unwrap();
    assert_limited(response).await;
}

#[tokio::test]
async fn messages_are_limited_per_user_over_both_transports() {
    let server = TestServer::start_with(|c| {
        c.rate_limits = limits(|l| {
            l.messages_per_second = 1;
            l.message_burst = 3;
        })
    })
    .await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let carol = server.user("carol").await;
    let (mut ws, ..) = server.connect(&alice).await;
    for n in 0..5 {
        ws.send(json!({"type": "send_message", "to": "bob", "body": format!("m{n}"), "client_id": format!("c{n}")})).await;
    }
    let mut acked = 0;
    let mut refused = Vec::new();
    while acked + refused.len() < 5 {
        let frame = ws.recv().await;
        match frame["type"].as_str().unwrap() {
            "ack" => acked += 1,
            "error" => {
                assert_eq!(frame["code"], "rate_limited");
                refused.push(frame["client_id"].as_str().unwrap().to_owned());
            }
            _ => {}
        }
    }
    assert_eq!((acked, refused.len()), (3, 2));
    let (status, body) = server.send_rest(&alice, "bob", "over rest", "r1").await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    // Refused sends were not stored; other users are not affected.
    let (_, page) = server.get("/api/messages/bob", Some(&alice.token)).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 3);
    assert_eq!(server.send_rest(&carol, "bob", "hello", "k1").await.0, 201);
}

#[tokio::test]
async fn sockets_per_user_are_limited() {
    let server = TestServer::start_with(|c| c.rate_limits = limits(|l| l.sockets_per_user = 2)).await;
    let alice = server.user("alice").await;
    let (_first, ..) = server.connect(&alice).await;
    let (_second, ..) = server.connect(&alice).await;
    let mut third = WsClient::open(&server).await;
    third.send(json!({"type": "auth", "token": alice.token})).await;
    assert_eq!(third.closed_with().await, Some(4429));
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_look_the_same() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    let mut bodies = Vec::new();
    for round in 0..15 {
        for (name, samples) in [("nobody", &mut unknown), ("alice", &mut wrong)] {
            let started = Instant::now();
            let response = signin_with(&server, name, &format!("not the password {round}"), None).await;
            samples.push(started.elapsed());
            assert_eq!(response.status(), 401);
            bodies.push(response.text().await.unwrap());
        }
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "identical bodies: {bodies:?}");
    let (unknown, wrong) = (median(unknown), median(wrong));
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    // Both are dominated by one argon2id verification (~25 ms); a name lookup alone would be ~100x faster.
    assert!((0.5..2.0).contains(&ratio), "median unknown {unknown:?} vs wrong password {wrong:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_tokens_passwords_or_message_bodies() {
    let data_dir = tempfile::tempdir().unwrap();
    let _database = database::TestDatabase::for_dir(data_dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = Command::cargo_bin("chatd").unwrap();
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CHATD_")) {
        command.env_remove(key);
    }
    let mut child = command
        .arg("serve")
        .current_dir(data_dir.path())
        .env("CHATD_DATA_DIR", data_dir.path())
        .env("CHATD_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "trace")
        .envs(database::env_for(data_dir.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/api/ready")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let password = "pw-Zq7-unmistakable-XJ";
    let body = "body-Kv3-unmistakable-QP";
    for name in ["alice", "bob"] {
        http.post(format!("{base}/api/signup")).json(&json!({"username": name, "password": password})).send().await.unwrap();
    }
    let signin: Value = http
        .post(format!("{base}/api/signin"))
        .json(&json!({"username": "alice", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signin["access_token"].as_str().unwrap().to_owned();
    let sent = http.post(format!("{base}/api/messages/bob")).bearer_auth(&token).json(&json!({"body": body, "client_id": "c1"})).send().await.unwrap();
    assert_eq!(sent.status(), 201);
    http.post(format!("{base}/api/signin")).json(&json!({"username": "alice", "password": "wrong-Pw-unmistakable"})).send().await.unwrap();
    http.post(format!("{base}/api/signout")).bearer_auth(&token).send().await.unwrap();
    child.kill().unwrap();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    child.wait().unwrap();
    assert!(log.contains("/api/messages/bob"), "the requests were logged:\n{log}");
    let signature = token.rsplit('.').next().unwrap();
    for secret in [password, body, "wrong-Pw-unmistakable", &token, signature] {
        assert!(!log.contains(secret), "the log contains {secret}");
    }
}

#[tokio::test]
async fn hostile_bodies_and_frames_get_clear_errors_and_others_carry_on() {
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("invalid UTF-8", b"{\"username\":\"al\xff\xfeice\",\"password\":\"correct horse battery\"}".to_vec()),
        ("deeply nested", deep.clone().into_bytes()),
        ("nested object as a field", format!("{{\"username\":{deep},\"password\":\"x\"}}").into_bytes()),
        ("truncated", b"{\"username\":\"alice\",\"pass".to_vec()),
        ("unknown field", b"{\"username\":\"alice\",\"password\":\"correct horse battery\",\"admin\":true}".to_vec()),
    ];
    for (what, body) in bodies {
        let response = server
            .http
            .post(server.url("/api/signin"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{what}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], "invalid_body", "{what}");
    }

    let (mut ws, ..) = server.connect(&alice).await;
    let (mut bystander, ..) = server.connect(&alice).await;
    ws.send_raw(Message::text(deep)).await;
    assert_eq!(ws.recv().await["code"], "invalid_json");
    ws.send_raw(Message::binary(b"\xff\xfe\xfd".to_vec())).await;
    assert_eq!(ws.recv().await["code"], "invalid_frame");
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.recv().await["type"], "pong", "the socket stays open");
    bystander.send(json!({"type": "ping"})).await;
    assert_eq!(bystander.recv().await["type"], "pong");
    assert_eq!(server.get("/api/health", None).await.0, 200);
}
