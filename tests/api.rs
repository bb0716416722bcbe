//! REST API tests: every row of the API table against a real server over real HTTP, with the
//! edges of each (validation, paging boundaries, idempotency, auth, errors, headers, restart).
mod common;

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Asserts an error response: the status, the `code`, and a body of exactly two strings.
#[track_caller]
fn assert_error(actual: (u16, Value), status: u16, code: &str) {
    let (actual_status, body) = actual;
    assert_eq!(actual_status, status, "status of {body}");
    assert_error_body(&body);
    assert_eq!(body["code"], code, "{body}");
}

/// Every error body is `{"code": string, "message": string}` and nothing else.
#[track_caller]
fn assert_error_body(body: &Value) {
    let object = body.as_object().unwrap_or_else(|| panic!("error body is not a JSON object: {body}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["code", "message"], "{body}");
    let code = body["code"].as_str().unwrap_or_else(|| panic!("code is not a string: {body}"));
    assert!(!code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "code is not snake_case: {body}");
    assert!(!body["message"].as_str().unwrap_or_else(|| panic!("message is not a string: {body}")).is_empty());
}

#[track_caller]
fn assert_keys(value: &Value, expected: &[&str]) {
    let mut keys: Vec<&str> = value.as_object().unwrap_or_else(|| panic!("not an object: {value}")).keys().map(String::as_str).collect();
    keys.sort();
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(keys, expected, "{value}");
}

/// A Message has exactly the documented fields, with an RFC 3339 UTC `created_at`.
#[track_caller]
fn assert_message_shape(message: &Value) {
    assert_keys(message, &["body", "client_id", "conversation_id", "created_at", "event", "from", "id", "kind", "to"]);
    assert_eq!(message["kind"], "text");
    assert!(message["id"].as_i64().is_some_and(|id| id > 0), "{message}");
    assert_rfc3339_utc(&message["created_at"]);
}

#[track_caller]
fn assert_rfc3339_utc(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("not a string: {value}"));
    let parsed = chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"));
    assert_eq!(parsed.offset().local_minus_utc(), 0, "{text} is not UTC");
    assert!(text.ends_with('Z'), "{text} is not written in UTC");
    let age = chrono::Utc::now().signed_duration_since(parsed);
    assert!(age.num_seconds().abs() < 300, "{text} is not close to now");
}

async fn signup_with(server: &TestServer, username: &str, password: &str) -> (u16, Value) {
    server.post("/api/signup", None, json!({"username": username, "password": password})).await
}

async fn signin_with(server: &TestServer, username: &str, password: &str) -> (u16, Value) {
    server.post("/api/signin", None, json!({"username": username, "password": password})).await
}

/// Sends a message and returns it, asserting it was created.
async fn send(server: &TestServer, from: &TestUser, to: &str, body: &str) -> Value {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let client_id = format!("c-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let (status, message) = server.send_rest(from, to, body, &client_id).await;
    assert_eq!(status, 201, "{message}");
    message
}

/// Ids of one page of history, and `has_more`.
async fn history(server: &TestServer, user: &TestUser, peer: &str, query: &str) -> (Vec<i64>, bool) {
    let (status, page) = server.get(&format!("/api/messages/{peer}{query}"), Some(&user.token)).await;
    assert_eq!(status, 200, "{page}");
    assert_keys(&page, &["has_more", "messages"]);
    let ids = page["messages"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    (ids, page["has_more"].as_bool().unwrap())
}

async fn chats(server: &TestServer, user: &TestUser) -> Vec<Value> {
    let (status, list) = server.get("/api/chats_history", Some(&user.token)).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap_or_else(|| panic!("not a list: {list}")).clone()
}

async fn search(server: &TestServer, user: &TestUser, query: &str) -> Vec<Value> {
    let (status, found) = server.get(&format!("/api/users{query}"), Some(&user.token)).await;
    assert_eq!(status, 200, "{found}");
    found.as_array().unwrap_or_else(|| panic!("not a list: {found}")).clone()
}

fn names(users: &[Value]) -> Vec<&str> {
    users.iter().map(|u| u["username"].as_str().unwrap()).collect()
}

/// Polls `check` until it holds, for at most 5 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn raw_post(server: &TestServer, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = server
        .http
        .post(server.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    into_json("POST", path, response).await
}

// ---------------------------------------------------------------------------------------------
// POST /api/signup

#[tokio::test]
async fn signup_creates_an_account() {
    let server = TestServer::start().await;
    let (status, body) = signup_with(&server, "carol", PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body, json!({"username": "carol"}));
    let (status, token) = signin_with(&server, "carol", PASSWORD).await;
    assert_eq!(status, 200, "{token}");
}

#[tokio::test]
async fn signup_rejects_a_taken_username_even_in_another_case() {
    let server = TestServer::start().await;
    server.user("alice").await;
    for taken in ["alice", "Alice", "ALICE", "aLiCe"] {
        assert_error(signup_with(&server, taken, "another password").await, 409, "username_taken");
    }
    // The first account is untouched: its password still works, the attempted ones do not.
    assert_eq!(signin_with(&server, "alice", PASSWORD).await.0, 200);
    assert_error(signin_with(&server, "alice", "another password").await, 401, "invalid_credentials");
}

#[tokio::test]
async fn signup_validates_usernames() {
    let server = TestServer::start().await;
    let too_long = "x".repeat(33);
    for bad in ["", "ab", too_long.as_str(), "has space", "émile", "semi;colon", "bob!", "a/b", "tab\there", "zoë"] {
        assert_error(signup_with(&server, bad, PASSWORD).await, 400, "invalid_username");
    }
    let longest = "y".repeat(32);
    for good in ["abc", longest.as_str(), "a.b-c_9", "007"] {
        let (status, body) = signup_with(&server, good, PASSWORD).await;
        assert_eq!(status, 201, "{good}: {body}");
        assert_eq!(body["username"], good);
    }
}

#[tokio::test]
async fn signup_validates_passwords() {
    let server = TestServer::start().await;
    for (name, bad) in [("short7", "x".repeat(7)), ("long129", "x".repeat(129)), ("empty", String::new()), ("accents", "é".repeat(129))] {
        assert_error(signup_with(&server, name, &bad).await, 400, "invalid_password");
    }
    // Lengths count characters, not bytes: 128 two-byte characters are fine.
    for (name, good) in [("eight", "x".repeat(8)), ("max128", "x".repeat(128)), ("accents", "é".repeat(128))] {
        assert_eq!(signup_with(&server, name, &good).await.0, 201, "{name}");
        assert_eq!(signin_with(&server, name, &good).await.0, 200, "{name}");
    }
}

#[tokio::test]
async fn signup_rejects_malformed_and_incomplete_bodies() {
    let server = TestServer::start().await;
    let json_type = "application/json";
    for body in [
        "{",
        "not json",
        "",
        "[]",
        "null",
        r#"{"username": "dave"}"#,
        r#"{"password": "correct horse battery"}"#,
        r#"{"username": ["dave"], "password": "correct horse battery"}"#,
        r#"{"username": "dave", "password": null}"#,
        r#"{"username": "dave", "password": "correct horse battery", "is_admin": true}"#,
        // Strings are JSON strings: a number or boolean is not turned into one.
        r#"{"username": 12345, "password": "correct horse battery"}"#,
        r#"{"username": "dave", "password": 1234567890}"#,
        r#"{"username": "dave", "password": true}"#,
    ] {
        let (status, error) = raw_post(&server, "/api/signup", json_type, body).await;
        assert_eq!(status, 400, "{body:?}: {error}");
        assert_error_body(&error);
    }
    // A body that is not declared as JSON is refused with a JSON error too.
    let (status, error) =
        raw_post(&server, "/api/signup", "text/plain", r#"{"username":"dave","password":"correct horse battery"}"#).await;
    assert!(status == 400 || status == 415, "{status}: {error}");
    assert_error_body(&error);
    // None of that created the account or upset the server.
    assert_error(signin_with(&server, "dave", PASSWORD).await, 401, "invalid_credentials");
    assert_eq!(signup_with(&server, "dave", PASSWORD).await.0, 201);
}

// ---------------------------------------------------------------------------------------------
// POST /api/signin

#[tokio::test]
async fn signin_returns_a_bearer_token() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let (status, body) = signin_with(&server, "alice", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_keys(&body, &["access_token", "expires_in", "token_type", "username"]);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["username"], "alice");
    assert_eq!(body["expires_in"], 7 * 24 * 3600, "the default token lifetime is 7 days");
    let token = body["access_token"].as_str().unwrap();
    assert!(!token.is_empty());
    let (status, me) = server.get("/api/me", Some(token)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "alice");
    // Usernames are case-insensitive at sign-in too.
    let (status, body) = signin_with(&server, "ALICE", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "alice");
}

#[tokio::test]
async fn signin_failures_look_the_same_for_unknown_users_and_wrong_passwords() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let wrong_password = signin_with(&server, "alice", "not the password").await;
    let unknown_user = signin_with(&server, "mallory", PASSWORD).await;
    let invalid_name = signin_with(&server, "x!", PASSWORD).await;
    assert_error(wrong_password.clone(), 401, "invalid_credentials");
    assert_eq!(unknown_user, wrong_password, "an unknown user must not be distinguishable from a wrong password");
    assert_eq!(invalid_name, wrong_password);
    assert_error(signin_with(&server, "alice", "").await, 401, "invalid_credentials");
    let (status, error) = raw_post(&server, "/api/signin", "application/json", r#"{"username":"alice"}"#).await;
    assert_eq!(status, 400, "{error}");
    assert_error_body(&error);
}

// ---------------------------------------------------------------------------------------------
// POST /api/signout, GET /api/me, authentication

#[tokio::test]
async fn signout_revokes_only_that_token() {
    let server = TestServer::start().await;
    let phone = server.user("alice").await;
    let laptop = server.signin("alice").await;
    let response = server.http.post(server.url("/api/signout")).bearer_auth(&phone.token).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert!(response.bytes().await.unwrap().is_empty(), "204 has no body");

    assert_error(server.get("/api/me", Some(&phone.token)).await, 401, "unauthorized");
    assert_error(server.get("/api/chats_history", Some(&phone.token)).await, 401, "unauthorized");
    assert_error(server.send_rest(&phone, "alice", "hi", "c-1").await, 401, "unauthorized");
    assert_error(server.post("/api/signout", Some(&phone.token), json!({})).await, 401, "unauthorized");
    let (status, me) = server.get("/api/me", Some(&laptop)).await;
    assert_eq!((status, me["username"].as_str()), (200, Some("alice")), "the other device stays signed in");
    // Signing in again gives a fresh working token.
    let again = server.signin("alice").await;
    assert_eq!(server.get("/api/me", Some(&again)).await.0, 200);
}

#[tokio::test]
async fn signout_closes_the_sockets_opened_with_that_token_only() {
    let server = TestServer::start().await;
    let phone = server.user("alice").await;
    let laptop = TestUser { name: "alice".into(), token: server.signin("alice").await };
    let (mut phone_socket, _, _) = server.connect(&phone).await;
    let (mut laptop_socket, _, _) = server.connect(&laptop).await;
    assert_eq!(server.post("/api/signout", Some(&phone.token), json!({})).await.0, 204);
    assert_eq!(phone_socket.closed_with().await, Some(4401));
    laptop_socket.send(json!({"type": "ping"})).await;
    assert_eq!(laptop_socket.recv().await["type"], "pong", "the other device's socket stays open");
}

#[tokio::test]
async fn tokens_are_checked_for_algorithm_signature_and_expiry() {
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

    let server = TestServer::start_with(|config| config.auth.token_ttl_secs = 3600).await;
    let alice = server.user("alice").await;
    let (_, signin) = signin_with(&server, "alice", PASSWORD).await;
    assert_eq!(signin["expires_in"], 3600, "the configured lifetime");
    let payload = alice.token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 3600);
    let secret = std::fs::read_to_string(server.data_dir.path().join("jwt-secret")).expect("the generated secret");
    let key = EncodingKey::from_secret(secret.trim().as_bytes());
    let sign = |algorithm: Algorithm, claims: &Value| encode(&Header::new(algorithm), claims, &key).unwrap();

    // The same claims re-signed with the real key still work, so the checks below test one thing each.
    assert_eq!(server.get("/api/me", Some(&sign(Algorithm::HS256, &claims))).await.0, 200);
    let mut expired = claims.clone();
    expired["iat"] = json!(claims["iat"].as_u64().unwrap() - 7200);
    expired["exp"] = json!(claims["iat"].as_u64().unwrap() - 3600);
    assert_error(server.get("/api/me", Some(&sign(Algorithm::HS256, &expired))).await, 401, "unauthorized");
    assert_error(server.get("/api/me", Some(&sign(Algorithm::HS512, &claims))).await, 401, "unauthorized");
    let unsigned = format!(
        "{}.{payload}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    assert_error(server.get("/api/me", Some(&unsigned)).await, 401, "unauthorized");
    let mut other_session = claims.clone();
    other_session["sid"] = json!("not-a-session");
    assert_error(server.get("/api/me", Some(&sign(Algorithm::HS256, &other_session))).await, 401, "unauthorized");
}

#[tokio::test]
async fn me_returns_the_signed_in_user() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let (status, me) = server.get("/api/me", Some(&alice.token)).await;
    assert_eq!(status, 200, "{me}");
    assert_keys(&me, &["created_at", "is_admin", "username"]);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["is_admin"], false);
    assert_rfc3339_utc(&me["created_at"]);
}

#[tokio::test]
async fn every_protected_operation_needs_a_valid_token() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let other = TestServer::start().await;
    let foreign = other.user("alice").await.token; // signed with another server's secret
    let mut forged = alice.token.clone();
    forged.pop();
    forged.push(if alice.token.ends_with('A') { 'B' } else { 'A' });

    for token in [None, Some("garbage"), Some(""), Some(foreign.as_str()), Some(forged.as_str())] {
        for path in ["/api/me", "/api/chats_history", "/api/users", "/api/messages/bob"] {
            assert_error(server.get(path, token).await, 401, "unauthorized");
        }
        assert_error(server.post("/api/signout", token, json!({})).await, 401, "unauthorized");
        assert_error(server.post("/api/messages/bob", token, json!({"body": "hi", "client_id": "x"})).await, 401, "unauthorized");
        assert_error(server.post("/api/messages/bob/read", token, json!({"up_to": 1})).await, 401, "unauthorized");
    }
    // A non-Bearer scheme is not accepted either.
    let response = server.http.get(server.url("/api/me")).basic_auth("alice", Some(PASSWORD)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_error_body(&response.json().await.unwrap());
    // None of the attempts stored anything.
    assert!(history(&server, &alice, "bob", "").await.0.is_empty());
}

// ---------------------------------------------------------------------------------------------
// GET /api/users

#[tokio::test]
async fn user_search_matches_substrings_ignoring_case_and_skips_the_caller() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    for name in ["alfred", "malina", "bob", "sal"] {
        server.user(name).await;
    }
    let found = search(&server, &alice, "?q=AL").await;
    let mut found_names = names(&found);
    found_names.sort();
    assert_eq!(found_names, ["alfred", "malina", "sal"], "alice herself is not listed");
    for user in &found {
        assert_keys(user, &["online", "username"]);
        assert_eq!(user["online"], false, "users who never connected are listed as offline");
    }
    assert_eq!(names(&search(&server, &alice, "?q=Bo").await), ["bob"]);
    assert!(search(&server, &alice, "?q=zzz").await.is_empty());
    assert!(search(&server, &alice, "?q=alice").await.is_empty(), "the caller never finds herself");
    let mut everyone = names(&search(&server, &alice, "").await).into_iter().map(str::to_owned).collect::<Vec<_>>();
    everyone.sort();
    assert_eq!(everyone, ["alfred", "bob", "malina", "sal"]);
    assert_eq!(search(&server, &alice, "?q=").await.len(), 4);
}

#[tokio::test]
async fn user_search_takes_the_query_literally() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    for name in ["a_b", "axb", "a.c", "a-c", "abc"] {
        server.user(name).await;
    }
    // `_` and `%` are not wildcards, `.` is not a pattern.
    assert_eq!(names(&search(&server, &alice, "?q=_").await), ["a_b"]);
    assert_eq!(names(&search(&server, &alice, "?q=a_").await), ["a_b"]);
    assert!(search(&server, &alice, "?q=%25").await.is_empty());
    assert_eq!(names(&search(&server, &alice, "?q=.").await), ["a.c"]);
    assert_error(server.get(&format!("/api/users?q={}", "a".repeat(33)), Some(&alice.token)).await, 400, "invalid_parameter");
}

#[tokio::test]
async fn user_search_limit_is_bounded() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    for name in ["bob", "bobby", "bobo"] {
        server.user(name).await;
    }
    for bad in ["0", "101", "1000"] {
        assert_error(server.get(&format!("/api/users?limit={bad}"), Some(&alice.token)).await, 400, "invalid_parameter");
    }
    for bad in ["-1", "abc"] {
        let (status, error) = server.get(&format!("/api/users?limit={bad}"), Some(&alice.token)).await;
        assert_eq!(status, 400, "{error}");
        assert_error_body(&error);
    }
    assert_eq!(search(&server, &alice, "?q=bob&limit=1").await.len(), 1);
    assert_eq!(search(&server, &alice, "?q=bob&limit=2").await.len(), 2);
    assert_eq!(search(&server, &alice, "?q=bob&limit=100").await.len(), 3);
}

#[tokio::test]
async fn user_search_shows_who_is_online_to_those_they_have_written_to() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let online_flag = |found: Vec<Value>| found.iter().find(|u| u["username"] == "bob").map(|u| u["online"].clone());
    assert_eq!(online_flag(search(&server, &alice, "?q=bob").await), Some(json!(false)));
    let (phone, _, _) = server.connect(&bob).await;
    let (laptop, _, _) = server.connect(&bob).await;
    assert_eq!(online_flag(search(&server, &alice, "?q=bob").await), Some(json!(false)), "bob has not written to alice");
    send(&server, &bob, "alice", "hi").await;
    assert_eq!(online_flag(search(&server, &alice, "?q=bob").await), Some(json!(true)));
    phone.close().await;
    // One socket is still open.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(online_flag(search(&server, &alice, "?q=bob").await), Some(json!(true)));
    laptop.close().await;
    eventually("bob is offline", || async { online_flag(search(&server, &alice, "?q=bob").await) == Some(json!(false)) }).await;
}

// ---------------------------------------------------------------------------------------------
// GET /api/chats_history

#[tokio::test]
async fn chats_history_lists_conversations_most_recent_first() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    server.user("dave").await;
    assert!(chats(&server, &alice).await.is_empty(), "no conversations yet");

    send(&server, &bob, "alice", "hi from bob").await;
    let from_carol = send(&server, &carol, "alice", "hi from carol").await;
    let list = chats(&server, &alice).await;
    assert_eq!(list.iter().map(|c| c["username"].as_str().unwrap()).collect::<Vec<_>>(), ["carol", "bob"]);
    for entry in &list {
        assert_keys(entry, &["last_message", "online", "unread", "username"]);
        assert_message_shape(&entry["last_message"]);
    }
    assert_eq!(list[0]["last_message"], from_carol, "last_message is the stored message");

    let reply = send(&server, &alice, "bob", "hi bob").await;
    let list = chats(&server, &alice).await;
    assert_eq!(list.iter().map(|c| c["username"].as_str().unwrap()).collect::<Vec<_>>(), ["bob", "carol"]);
    assert_eq!(list[0]["last_message"], reply);
    assert_eq!(list[0]["last_message"]["from"], "alice");
    assert_eq!(list[0]["last_message"]["to"], "bob");

    // Bob's view of the same conversation; dave, who talked to no one, has none.
    let bobs = chats(&server, &bob).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0]["username"], "alice");
    assert_eq!(bobs[0]["last_message"], reply);

    // `online` follows the peer's sockets.
    assert_eq!(list[0]["online"], false);
    let (socket, _, _) = server.connect(&bob).await;
    let list = chats(&server, &alice).await;
    assert_eq!((list[0]["username"].as_str(), &list[0]["online"]), (Some("bob"), &json!(true)));
    assert_eq!(list[1]["online"], false);
    socket.close().await;
}

#[tokio::test]
async fn unread_counts_rise_with_incoming_messages_and_clear_when_read() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let unread = |list: Vec<Value>, peer: &str| list.iter().find(|c| c["username"] == peer).map(|c| c["unread"].as_u64().unwrap());

    let first = send(&server, &bob, "alice", "one").await;
    assert_eq!(unread(chats(&server, &alice).await, "bob"), Some(1));
    let second = send(&server, &bob, "alice", "two").await;
    let third = send(&server, &bob, "alice", "three").await;
    assert_eq!(unread(chats(&server, &alice).await, "bob"), Some(3));
    assert_eq!(unread(chats(&server, &bob).await, "alice"), Some(0), "my own messages are never unread");

    let (status, marker) = server.post("/api/messages/bob/read", Some(&alice.token), json!({"up_to": second["id"]})).await;
    assert_eq!(status, 200, "{marker}");
    assert_eq!(unread(chats(&server, &alice).await, "bob"), Some(1));
    server.post("/api/messages/bob/read", Some(&alice.token), json!({"up_to": third["id"]})).await;
    assert_eq!(unread(chats(&server, &alice).await, "bob"), Some(0));

    // Replying counts as having read; a new incoming message is unread again.
    send(&server, &alice, "bob", "thanks").await;
    assert_eq!(unread(chats(&server, &bob).await, "alice"), Some(1));
    send(&server, &bob, "alice", "four").await;
    assert_eq!(unread(chats(&server, &alice).await, "bob"), Some(1));
    assert!(first["id"].as_i64() < third["id"].as_i64());
}

// ---------------------------------------------------------------------------------------------
// POST /api/messages/{username}/read

#[tokio::test]
async fn read_marker_is_stored_and_never_moves_backwards() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.user("carol").await;
    let mut ids = Vec::new();
    for body in ["one", "two", "three"] {
        ids.push(send(&server, &bob, "alice", body).await["id"].as_i64().unwrap());
    }
    let read = |up_to: Value| server.post("/api/messages/bob/read", Some(&alice.token), json!({"up_to": up_to}));

    let (status, marker) = read(json!(ids[1])).await;
    assert_eq!(status, 200, "{marker}");
    assert_eq!(marker, json!({"peer": "bob", "up_to": ids[1]}));
    let (_, marker) = read(json!(ids[0])).await;
    assert_eq!(marker["up_to"], ids[1], "a lower marker does not move it back");
    let (_, marker) = read(json!(0)).await;
    assert_eq!(marker["up_to"], ids[1]);
    let (_, marker) = read(json!(ids[2] + 1000)).await;
    assert_eq!(marker["up_to"], ids[2], "the marker never passes the newest message");
    let (_, marker) = read(json!(ids[1])).await;
    assert_eq!(marker["up_to"], ids[2]);

    assert_error(read(json!(-1)).await, 400, "invalid_parameter");
    for bad in [json!("seven"), json!(null), json!(1.5)] {
        let (status, error) = read(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {error}");
        assert_error_body(&error);
    }
    let (status, error) = server.post("/api/messages/bob/read", Some(&alice.token), json!({})).await;
    assert_eq!(status, 400, "{error}");
    assert_error_body(&error);
    assert_error(server.post("/api/messages/nobody/read", Some(&alice.token), json!({"up_to": 1})).await, 404, "user_not_found");
    // A conversation that does not exist yet has nothing to mark.
    let (status, marker) = server.post("/api/messages/carol/read", Some(&alice.token), json!({"up_to": ids[2]})).await;
    assert_eq!((status, marker), (200, json!({"peer": "carol", "up_to": 0})));
}

// ---------------------------------------------------------------------------------------------
// GET /api/messages/{username}

#[tokio::test]
async fn history_of_a_conversation_that_has_not_started_is_empty() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let (status, page) = server.get("/api/messages/bob", Some(&alice.token)).await;
    assert_eq!((status, page), (200, json!({"messages": [], "has_more": false})));
    assert_error(server.get("/api/messages/nobody", Some(&alice.token)).await, 404, "user_not_found");
    assert_error(server.get("/api/messages/x!", Some(&alice.token)).await, 404, "user_not_found");
}

#[tokio::test]
async fn history_pages_hold_at_the_edges() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut ids = Vec::new();
    for i in 0..50 {
        let (from, to) = if i % 3 == 0 { (&bob, "alice") } else { (&alice, "bob") };
        ids.push(send(&server, from, to, &format!("message {i}")).await["id"].as_i64().unwrap());
    }
    // Exactly 50: the default page holds them all, ascending, with nothing more.
    assert_eq!(history(&server, &alice, "bob", "").await, (ids.clone(), false));
    assert_eq!(history(&server, &bob, "alice", "").await, (ids.clone(), false), "both members see the same history");
    assert_eq!(history(&server, &alice, "bob", "?limit=50").await, (ids.clone(), false));
    assert_eq!(history(&server, &alice, "bob", "?limit=49").await, (ids[1..].to_vec(), true));

    ids.push(send(&server, &bob, "alice", "message 50").await["id"].as_i64().unwrap());
    // 51: the default page is the newest 50.
    assert_eq!(history(&server, &alice, "bob", "").await, (ids[1..].to_vec(), true));
    assert_eq!(history(&server, &alice, "bob", "?limit=100").await, (ids.clone(), false));
    assert_eq!(history(&server, &alice, "bob", "?limit=51").await, (ids.clone(), false));
    assert_eq!(history(&server, &alice, "bob", "?limit=1").await, (vec![ids[50]], true));

    // `before`: strictly older, newest of those first in the page, still ascending.
    assert_eq!(history(&server, &alice, "bob", &format!("?before={}", ids[1])).await, (vec![ids[0]], false));
    assert_eq!(history(&server, &alice, "bob", &format!("?before={}", ids[0])).await, (vec![], false));
    assert_eq!(history(&server, &alice, "bob", &format!("?before={}&limit=1", ids[2])).await, (vec![ids[1]], true));
    assert_eq!(history(&server, &alice, "bob", &format!("?before={}&limit=2", ids[2])).await, (ids[0..2].to_vec(), false));
    assert_eq!(history(&server, &alice, "bob", &format!("?before={}", ids[50] + 1)).await, (ids[1..].to_vec(), true));

    // `after`: strictly newer, oldest first.
    assert_eq!(history(&server, &alice, "bob", "?after=0&limit=10").await, (ids[..10].to_vec(), true));
    assert_eq!(history(&server, &alice, "bob", "?after=0").await, (ids[..50].to_vec(), true));
    assert_eq!(history(&server, &alice, "bob", &format!("?after={}", ids[0])).await, (ids[1..].to_vec(), false));
    assert_eq!(history(&server, &alice, "bob", &format!("?after={}&limit=10", ids[40])).await, (ids[41..].to_vec(), false));
    assert_eq!(history(&server, &alice, "bob", &format!("?after={}&limit=9", ids[40])).await, (ids[41..50].to_vec(), true));
    assert_eq!(history(&server, &alice, "bob", &format!("?after={}", ids[50])).await, (vec![], false));

    // Both: the window between them.
    assert_eq!(
        history(&server, &alice, "bob", &format!("?after={}&before={}", ids[10], ids[20])).await,
        (ids[11..20].to_vec(), false)
    );
    assert_eq!(
        history(&server, &alice, "bob", &format!("?after={}&before={}&limit=5", ids[10], ids[20])).await,
        (ids[11..16].to_vec(), true)
    );

    // Bad paging parameters.
    for query in ["?limit=0", "?limit=101", "?before=-1", "?after=-5"] {
        assert_error(server.get(&format!("/api/messages/bob{query}"), Some(&alice.token)).await, 400, "invalid_parameter");
    }
    for query in ["?limit=-1", "?limit=ten", "?before=x", "?after=1.5"] {
        let (status, error) = server.get(&format!("/api/messages/bob{query}"), Some(&alice.token)).await;
        assert_eq!(status, 400, "{query}: {error}");
        assert_error_body(&error);
    }
}

#[tokio::test]
async fn history_pages_carry_full_messages() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let sent = send(&server, &alice, "bob", "hello").await;
    let reply = send(&server, &bob, "alice", "hi yourself").await;
    let (_, page) = server.get("/api/messages/bob", Some(&alice.token)).await;
    assert_eq!(page["messages"], json!([sent, reply]));
    let (_, page) = server.get("/api/messages/ALICE", Some(&bob.token)).await;
    assert_eq!(page["messages"], json!([sent, reply]), "the peer's name is case-insensitive");
}

// ---------------------------------------------------------------------------------------------
// POST /api/messages/{username}

#[tokio::test]
async fn sending_returns_201_with_the_stored_message() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let (status, message) = server.send_rest(&alice, "bob", "hello bob", "c-1").await;
    assert_eq!(status, 201, "{message}");
    assert_message_shape(&message);
    assert_eq!(message["from"], "alice");
    assert_eq!(message["to"], "bob");
    assert_eq!(message["body"], "hello bob");
    assert_eq!(message["client_id"], "c-1");
    let (_, page) = server.get("/api/messages/bob", Some(&alice.token)).await;
    assert_eq!(page["messages"], json!([message]));
}

#[tokio::test]
async fn resending_a_client_id_returns_the_stored_message_once() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let (status, first) = server.send_rest(&alice, "bob", "hello", "retry-1").await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = server.send_rest(&alice, "bob", "hello", "retry-1").await;
    assert_eq!((status, &again), (200, &first), "a resend answers 200 with the stored message");
    let (status, changed) = server.send_rest(&alice, "BOB", "hello, edited", "retry-1").await;
    assert_eq!((status, &changed), (200, &first), "the stored message wins over a resend's body");
    assert_eq!(history(&server, &bob, "alice", "").await.0, vec![first["id"].as_i64().unwrap()], "one row, not three");
    let list = chats(&server, &bob).await;
    assert_eq!(list[0]["unread"], 1);
    // The key belongs to its sender: bob may use the same one.
    let (status, bobs) = server.send_rest(&bob, "alice", "hello back", "retry-1").await;
    assert_eq!(status, 201, "{bobs}");
    assert_ne!(bobs["id"], first["id"]);
}

#[tokio::test]
async fn reusing_a_client_id_toward_someone_else_conflicts() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let carol = server.user("carol").await;
    assert_eq!(server.send_rest(&alice, "bob", "for bob", "shared").await.0, 201);
    assert_error(server.send_rest(&alice, "carol", "for carol", "shared").await, 409, "client_id_conflict");
    assert!(history(&server, &carol, "alice", "").await.0.is_empty(), "nothing reached carol");
    assert_eq!(server.send_rest(&alice, "carol", "for carol", "fresh").await.0, 201);
}

#[tokio::test]
async fn a_conflicting_send_leaves_no_conversation_behind() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let carol = server.user("carol").await;
    assert_eq!(server.send_rest(&alice, "bob", "for bob", "shared").await.0, 201);
    assert_error(server.send_rest(&alice, "carol", "for carol", "shared").await, 409, "client_id_conflict");
    assert_eq!(chats(&server, &carol).await, Vec::<Value>::new(), "carol got nothing, so she has no conversation");
    assert_eq!(chats(&server, &alice).await.len(), 1, "alice has only her conversation with bob");
}

#[tokio::test]
async fn message_bodies_are_trimmed_and_bounded_in_characters() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let message = send(&server, &alice, "bob", "  \n\thello there \n ").await;
    assert_eq!(message["body"], "hello there");
    let (_, page) = server.get("/api/messages/bob", Some(&alice.token)).await;
    assert_eq!(page["messages"][0]["body"], "hello there", "the trimmed body is what is stored");

    for (i, empty) in ["", " ", "\n\t \r\n"].into_iter().enumerate() {
        assert_error(server.send_rest(&alice, "bob", empty, &format!("empty-{i}")).await, 400, "empty_message");
    }
    let limit = "a".repeat(4000);
    assert_eq!(send(&server, &alice, "bob", &limit).await["body"], limit);
    assert_error(server.send_rest(&alice, "bob", &"a".repeat(4001), "long-1").await, 400, "message_too_long");
    // Characters, not bytes: 4000 emoji (16000 bytes) fit; one more does not.
    let emoji = "😀".repeat(4000);
    assert_eq!(send(&server, &alice, "bob", &emoji).await["body"], emoji);
    assert_error(server.send_rest(&alice, "bob", &"😀".repeat(4001), "long-2").await, 400, "message_too_long");
    // The limit applies after trimming.
    let padded = format!("   {limit}   \n");
    assert_eq!(send(&server, &alice, "bob", &padded).await["body"], limit);
    // Rejected messages were not stored.
    assert_eq!(history(&server, &alice, "bob", "").await.0.len(), 4);
}

#[tokio::test]
async fn client_ids_are_bounded() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let longest = "k".repeat(64);
    let (status, message) = server.send_rest(&alice, "bob", "ok", &longest).await;
    assert_eq!(status, 201, "{message}");
    assert_eq!(message["client_id"], longest);
    for bad in ["k".repeat(65), String::new(), "line\nbreak".to_owned()] {
        assert_error(server.send_rest(&alice, "bob", "not ok", &bad).await, 400, "invalid_client_id");
    }
    for body in [json!({"body": "x", "client_id": ["c"]}), json!({"body": "x", "client_id": 7}), json!({"body": 5, "client_id": "n"})] {
        let (status, error) = server.post("/api/messages/bob", Some(&alice.token), body.clone()).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["code"], "invalid_body", "{body}");
    }
    assert_eq!(history(&server, &alice, "bob", "").await.0.len(), 1);
}

#[tokio::test]
async fn messages_need_a_real_recipient_other_than_oneself() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    for me in ["alice", "ALICE"] {
        assert_error(server.send_rest(&alice, me, "note to self", "self").await, 403, "cannot_message_self");
    }
    assert_error(server.send_rest(&alice, "nobody", "hello?", "n-1").await, 404, "user_not_found");
    assert_error(server.send_rest(&alice, "x!", "hello?", "n-2").await, 404, "user_not_found");
    assert!(chats(&server, &alice).await.is_empty());
}

#[tokio::test]
async fn malformed_message_requests_get_json_errors() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    for body in [json!({"client_id": "c"}), json!({"body": {"text": "hi"}, "client_id": "c"}), json!({"body": null}), json!("hello"), json!(null), json!([])] {
        let (status, error) = server.post("/api/messages/bob", Some(&alice.token), body.clone()).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_error_body(&error);
    }
    let response = server
        .http
        .post(server.url("/api/messages/bob"))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body("{\"body\": \"unterminated")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_error_body(&response.json().await.unwrap());
    assert!(history(&server, &alice, "bob", "").await.0.is_empty());
}

#[tokio::test]
async fn message_ids_increase_in_commit_order() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.user("carol").await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let message = match i % 3 {
            0 => send(&server, &alice, "bob", "a→b").await,
            1 => send(&server, &bob, "alice", "b→a").await,
            _ => send(&server, &alice, "carol", "a→c").await,
        };
        ids.push(message["id"].as_i64().unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase across conversations: {ids:?}");
}

#[tokio::test]
async fn concurrent_sends_are_all_stored_once() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let keys: Vec<String> = (0..60).map(|i| format!("burst-{i}")).collect();
    let sends = keys.iter().enumerate().map(|(i, key)| {
        let (from, to) = if i % 2 == 0 { (&alice, "bob") } else { (&bob, "alice") };
        server.send_rest(from, to, "burst", key)
    });
    let results = futures_util::future::join_all(sends).await;
    let mut ids: Vec<i64> = results
        .iter()
        .map(|(status, message)| {
            assert_eq!(*status, 201, "{message}");
            message["id"].as_i64().unwrap()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60, "every send got its own id");
    assert_eq!(history(&server, &alice, "bob", "?limit=100").await, (ids, false));

    // The same client_id sent many times at once is stored once; every answer is that message.
    let resends = (0..10).map(|_| server.send_rest(&alice, "bob", "only once", "same-key"));
    let results = futures_util::future::join_all(resends).await;
    let created = results.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "{results:?}");
    assert!(results.iter().all(|(status, message)| (*status == 200 || *status == 201) && message == &results[0].1), "{results:?}");
    assert_eq!(history(&server, &alice, "bob", "?limit=100").await.0.len(), 61);
}

#[tokio::test]
async fn the_sender_is_always_the_token_user() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    // A `from` in the body is not part of the request: it is refused, not believed.
    let (status, error) =
        server.post("/api/messages/bob", Some(&alice.token), json!({"body": "hi", "client_id": "s-1", "from": "carol"})).await;
    assert_eq!(status, 400, "{error}");
    assert_error_body(&error);
    let message = send(&server, &alice, "bob", "really from alice").await;
    assert_eq!(message["from"], "alice");
    let (_, page) = server.get("/api/messages/alice", Some(&bob.token)).await;
    assert_eq!(page["messages"], json!([message]));
    // Carol cannot read alice and bob's conversation through any name in the URL.
    assert!(history(&server, &carol, "alice", "").await.0.is_empty());
    assert!(history(&server, &carol, "bob", "").await.0.is_empty());
    assert!(chats(&server, &carol).await.is_empty());
    let (status, marker) = server.post("/api/messages/alice/read", Some(&carol.token), json!({"up_to": message["id"]})).await;
    assert_eq!((status, marker["up_to"].as_i64()), (200, Some(0)), "carol has no marker in their conversation");
    assert_eq!(chats(&server, &bob).await[0]["unread"], 1, "bob's unread count is his own");
}

#[tokio::test]
async fn messages_to_offline_users_are_stored_for_later() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    // Bob signs up but has never connected or signed in.
    assert_eq!(server.signup("bob").await.0, 201);
    let message = send(&server, &alice, "bob", "are you there?").await;
    let bob = TestUser { name: "bob".into(), token: server.signin("bob").await };
    let list = chats(&server, &bob).await;
    assert_eq!(list.len(), 1);
    assert_eq!((list[0]["username"].as_str(), list[0]["unread"].as_u64()), (Some("alice"), Some(1)));
    assert_eq!(list[0]["last_message"], message);
    let (_, page) = server.get("/api/messages/alice", Some(&bob.token)).await;
    assert_eq!(page["messages"], json!([message]));
    let (_, ready, _) = server.connect(&bob).await;
    assert_eq!(ready["last_id"], message["id"], "a new socket knows about the stored message");
}

// ---------------------------------------------------------------------------------------------
// GET /api/health, GET /api/ready

#[tokio::test]
async fn health_needs_no_database_but_ready_does() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/api/health", None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) = server.get("/api/ready", None).await;
    assert_eq!((status, body), (200, json!({"status": "ok", "database": "ok", "bus": "none"})), "a node alone has no bus");
    server.app.store.read.close_by_ref().await.unwrap();
    let (status, body) = server.get("/api/health", None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})), "liveness does not touch the database");
    let (status, body) = server.get("/api/ready", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.is_object(), "a JSON body: {body}");
    // The server keeps answering other requests that need no database.
    assert_eq!(server.get("/api/health", None).await.0, 200);
}

#[tokio::test]
async fn ready_failure_is_an_error_body() {
    let server = TestServer::start().await;
    server.app.store.read.close_by_ref().await.unwrap();
    assert_error(server.get("/api/ready", None).await, 503, "unavailable");
    let spec: Value = server.http.get(server.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    let response = resolve(&spec, spec["paths"]["/api/ready"]["get"]["responses"]["503"]["$ref"].as_str().unwrap());
    assert_eq!(response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody");
}

// ---------------------------------------------------------------------------------------------
// Routing, the web app, headers, limits

#[tokio::test]
async fn unknown_api_paths_get_a_json_404() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    for path in ["/api/nope", "/api/", "/api/users/alice/extra", "/api/messages", "/api/docs.html", "/api/chat/bob"] {
        let response = server.http.get(server.url(path)).bearer_auth(&alice.token).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("application/json"), "{path}: {content_type}");
        let body: Value = response.json().await.unwrap();
        assert_error_body(&body);
        assert_eq!(body["code"], "not_found");
    }
    assert_error(server.post("/api/nope", Some(&alice.token), json!({})).await, 404, "not_found");
    // A known path with a method it does not take is a JSON error too.
    let response = server.http.delete(server.url("/api/me")).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_error_body(&response.json().await.unwrap());
}

#[tokio::test]
async fn the_web_app_is_served_at_the_root_and_for_client_routes() {
    let server = TestServer::start().await;
    // Each page carries a fresh style nonce, and the policy of its own response allows that one.
    let page_of = |response: reqwest::Response| async move {
        let headers = response.headers().clone();
        assert_eq!(response.status().as_u16(), 200);
        assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"), "{headers:?}");
        assert_eq!(headers["cache-control"], "no-store", "a cached page would carry a stale nonce");
        let csp = headers["content-security-policy"].to_str().unwrap().to_owned();
        let page = response.text().await.unwrap();
        let at = page.to_ascii_lowercase().find("ngcspnonce=\"").expect("the page names a nonce") + "ngcspnonce=\"".len();
        let nonce = page[at..].split('"').next().unwrap();
        assert_eq!(nonce.len(), 32, "{nonce}");
        assert!(csp.contains(&format!("style-src 'self' 'nonce-{nonce}';")), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        (page.replace(nonce, "N"), nonce.to_owned())
    };
    let (page, first_nonce) = page_of(server.http.get(server.url("/")).send().await.unwrap()).await;
    assert!(page.to_ascii_lowercase().contains("<html"), "{page}");

    for route in ["/chat/bob", "/signin", "/chat/bob/", "/index.html"] {
        let (same, nonce) = page_of(server.http.get(server.url(route)).send().await.unwrap()).await;
        assert_eq!(same, page, "{route} serves index.html");
        assert_ne!(nonce, first_nonce, "{route}: a nonce is never reused");
    }
    // A missing file is not answered with the page.
    assert_eq!(server.http.get(server.url("/missing-file.js")).send().await.unwrap().status().as_u16(), 404);
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let requests = [
        server.http.get(server.url("/api/health")),
        server.http.get(server.url("/api/me")).bearer_auth(&alice.token),
        server.http.get(server.url("/api/me")),
        server.http.get(server.url("/api/nope")),
        server.http.post(server.url("/api/signup")).header("content-type", "application/json").body("{"),
        server.http.get(server.url("/api/openapi.json")),
        server.http.get(server.url("/")),
        server.http.get(server.url("/chat/bob")),
        server.http.get(server.url("/missing-file.js")),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        let where_ = format!("{} {}", response.url().path(), response.status());
        let headers = response.headers();
        let csp = headers.get("content-security-policy").unwrap_or_else(|| panic!("{where_}: no CSP")).to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{where_}: {csp}");
        assert!(csp.contains("default-src"), "{where_}: {csp}");
        assert_eq!(headers.get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{where_}");
        assert!(headers.get("referrer-policy").is_some_and(|v| !v.is_empty()), "{where_}: no Referrer-Policy");
    }
}

/// Sends a chunked request body over a raw connection (no Content-Length) and returns the status.
async fn post_chunked(server: &TestServer, path: &str, total: usize) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        // The server may answer and stop reading early; write errors are expected then.
        let chunk = vec![b'a'; 8192];
        let mut sent = 0;
        while sent < total {
            let size = chunk.len().min(total - sent);
            let frame = [format!("{size:x}\r\n").as_bytes(), &chunk[..size], b"\r\n"].concat();
            if writer.write_all(&frame).await.is_err() {
                return;
            }
            sent += size;
        }
        let _ = writer.write_all(b"0\r\n\r\n").await;
    });
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !response.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = reader.read(&mut buffer).await.unwrap();
            assert!(read > 0, "connection closed before a response: {}", String::from_utf8_lossy(&response));
            response.extend_from_slice(&buffer[..read]);
        }
    })
    .await
    .expect("a response in time");
    sender.abort();
    let status_line = String::from_utf8_lossy(&response).lines().next().unwrap().to_owned();
    status_line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn oversized_request_bodies_get_413() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let huge = json!({"body": "x".repeat(70 * 1024), "client_id": "big"}).to_string();
    let response = server
        .http
        .post(server.url("/api/messages/bob"))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.unwrap();
    assert_error_body(&body);
    assert_eq!(body["code"], "payload_too_large");

    assert_eq!(post_chunked(&server, "/api/signup", 70 * 1024).await, 413, "chunked bodies are limited too");
    assert_eq!(post_chunked(&server, "/api/signup", 1024 * 1024).await, 413);
    // Just under the limit, a body reaches the handler (and fails there for its own reason).
    let below = json!({"body": "x".repeat(60 * 1024), "client_id": "big"});
    assert_error(server.post("/api/messages/bob", Some(&alice.token), below).await, 400, "message_too_long");
    assert_eq!(post_chunked(&server, "/api/signup", 1000).await, 400, "a small chunked body is read and parsed");
    // The server carries on.
    assert_eq!(server.send_rest(&alice, "bob", "still here", "after").await.0, 201);
}

// ---------------------------------------------------------------------------------------------
// GET /api/openapi.json

#[tokio::test]
async fn the_openapi_document_describes_every_operation_and_its_errors() {
    let server = TestServer::start().await;
    let response = server.http.get(server.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let spec: Value = serde_json::from_str(&response.text().await.unwrap()).expect("the spec is JSON");
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."), "{}", spec["openapi"]);
    let declared_tags: Vec<&str> = spec["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();

    let mut operation_ids = Vec::new();
    let mut operations = std::collections::BTreeMap::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            operation_ids.push(id.to_owned());
            let tags = operation["tags"].as_array().unwrap_or_else(|| panic!("{method} {path} has no tags"));
            assert!(!tags.is_empty(), "{method} {path} has no tags");
            for tag in tags {
                assert!(declared_tags.contains(&tag.as_str().unwrap()), "{method} {path}: undeclared tag {tag}");
            }
            assert!(operation["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} has no description");
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                assert!(parameter["description"].is_string(), "{method} {path}: parameter {} has no description", parameter["name"]);
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                let response = match response["$ref"].as_str() {
                    Some(reference) => resolve(&spec, reference),
                    None => response,
                };
                assert!(response["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} {status} has no description");
                let Some(media) = response["content"].get("application/json") else { continue };
                assert!(media["example"].is_object() || media["example"].is_array() || media["examples"].is_object(), "{method} {path} {status} has no example");
                if status.starts_with('4') || status.starts_with('5') {
                    let reference = media["schema"]["$ref"].as_str().unwrap_or_else(|| panic!("{method} {path} {status}: {response}"));
                    let schema = resolve(&spec, reference);
                    let mut required: Vec<&str> =
                        schema["required"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
                    required.sort();
                    assert_eq!(required, ["code", "message"], "{method} {path} {status}");
                    let codes = &resolve(&spec, schema["properties"]["code"]["allOf"][0]["$ref"].as_str().unwrap())["enum"];
                    for code in media["examples"].as_object().unwrap().keys() {
                        assert!(codes.as_array().unwrap().contains(&json!(code)), "{method} {path} {status}: {code}");
                    }
                }
            }
            if let Some(media) = operation["requestBody"]["content"].get("application/json") {
                assert!(!media["example"].is_null(), "{method} {path}: the request body has no example");
            }
            operations.insert(format!("{} {path}", method.to_uppercase()), operation.clone());
        }
    }
    let mut unique = operation_ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), operation_ids.len(), "operationIds are unique: {operation_ids:?}");
    check_refs(&spec, &spec);

    // Every row of the API table is documented with the error statuses the server really sends.
    let documented = |key: &str, statuses: &[&str]| {
        let operation = operations.get(key).unwrap_or_else(|| panic!("{key} is not in the spec: {:?}", operations.keys()));
        for status in statuses {
            assert!(operation["responses"].get(*status).is_some(), "{key} does not document {status}");
        }
    };
    documented("POST /api/signup", &["201", "400", "409"]);
    documented("POST /api/signin", &["200", "400", "401"]);
    documented("POST /api/signout", &["204", "401"]);
    documented("GET /api/me", &["200", "401"]);
    documented("GET /api/chats_history", &["200", "401"]);
    documented("GET /api/users", &["200", "400", "401"]);
    documented("GET /api/messages/{username}", &["200", "400", "401", "404"]);
    documented("POST /api/messages/{username}", &["201", "200", "400", "401", "404", "409"]);
    documented("POST /api/messages/{username}/read", &["200", "400", "401", "404"]);
    documented("GET /api/health", &["200"]);
    documented("GET /api/ready", &["200", "503"]);
    documented("GET /api/read_markers", &["200", "401"]);
    documented("GET /api/conversations", &["200", "401"]);
    documented("POST /api/conversations", &["201", "400", "401", "404", "409"]);
    documented("GET /api/conversations/{id}", &["200", "401", "404"]);
    documented("PATCH /api/conversations/{id}", &["200", "400", "401", "403", "404", "409"]);
    documented("DELETE /api/conversations/{id}", &["204", "401", "403", "404"]);
    documented("POST /api/conversations/{id}/members", &["200", "400", "401", "403", "404"]);
    documented("DELETE /api/conversations/{id}/members/{username}", &["204", "401", "403", "404", "409"]);
    documented("PUT /api/conversations/{id}/members/{username}/role", &["200", "400", "401", "403", "404", "409"]);
    documented("POST /api/conversations/{id}/join", &["200", "401", "403", "404"]);
    documented("GET /api/conversations/{id}/messages", &["200", "400", "401", "404"]);
    documented("POST /api/conversations/{id}/messages", &["201", "200", "400", "401", "403", "404", "409"]);
    documented("POST /api/conversations/{id}/read", &["200", "400", "401", "403", "404"]);
    documented("GET /api/rooms", &["200", "400", "401"]);
    assert_eq!(operations.len(), 25, "{:?}", operations.keys());
    for key in operations.keys().filter(|k| !k.contains("signup") && !k.contains("signin") && !k.contains("health") && !k.contains("ready")) {
        assert!(operations[key]["security"].as_array().is_some_and(|s| !s.is_empty()), "{key} declares its bearer auth");
    }
    for key in ["POST /api/signup", "POST /api/signin", "GET /api/health", "GET /api/ready"] {
        assert_eq!(operations[key]["security"], json!([]), "{key} is public");
    }
    assert_eq!(spec["servers"], json!([{"url": "/", "description": "The chatd serving this document."}]));

    let docs = server.http.get(server.url("/api/docs")).send().await.unwrap();
    assert_eq!(docs.status().as_u16(), 200);
    assert!(docs.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = docs.text().await.unwrap();
    assert!(page.contains(r#""openapi": "3.1.0""#), "the docs page shows the served document");
    assert!(page.contains("/api/asyncapi.json"), "and links the WebSocket's");
}

#[test]
fn the_contract_check_refuses_what_the_document_does_not_say() {
    let mut json_headers = reqwest::header::HeaderMap::new();
    json_headers.insert("content-type", "application/json; charset=utf-8".parse().unwrap());
    let mut limited = json_headers.clone();
    limited.insert("retry-after", "30".parse().unwrap());
    let passes = |status: u16, headers: &reqwest::header::HeaderMap, body: Value| {
        std::panic::catch_unwind(|| openapi::check_response("POST", "/api/signup", status, headers, &body)).is_ok()
    };
    assert!(passes(201, &json_headers, json!({"username": "alice"})));
    assert!(!passes(201, &json_headers, json!({"username": 5})), "a field of the wrong type");
    assert!(!passes(201, &json_headers, json!({})), "a required field missing");
    assert!(!passes(404, &json_headers, json!({"code": "not_found", "message": "x"})), "a status the operation does not list");
    assert!(!passes(409, &json_headers, json!({"code": "conversation_not_found", "message": "x"})), "a code it does not list");
    assert!(!passes(409, &json_headers, json!({"code": "no_such_code", "message": "x"})), "a code that does not exist");
    assert!(passes(429, &limited, json!({"code": "rate_limited", "message": "x"})));
    assert!(!passes(429, &json_headers, json!({"code": "rate_limited", "message": "x"})), "a required header missing");
}

fn resolve<'a>(spec: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {reference}"));
    spec.pointer(pointer).unwrap_or_else(|| panic!("$ref {reference} does not resolve"))
}

fn check_refs(spec: &Value, node: &Value) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                resolve(spec, reference);
            }
            map.values().for_each(|v| check_refs(spec, v));
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(spec, v)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Restart

#[tokio::test]
async fn users_tokens_and_messages_survive_a_restart() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let signed_out = server.signin("alice").await;
    assert_eq!(server.post("/api/signout", Some(&signed_out), json!({})).await.0, 204);
    let opener = send(&server, &bob, "alice", "opener").await;
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(send(&server, &alice, "bob", &format!("before restart {i}")).await);
    }
    server.post("/api/messages/alice/read", Some(&bob.token), json!({"up_to": sent[0]["id"]})).await;

    let server = server.restart().await;
    let (status, me) = server.get("/api/me", Some(&alice.token)).await;
    assert_eq!((status, me["username"].as_str()), (200, Some("alice")), "tokens stay valid");
    assert_error(server.get("/api/me", Some(&signed_out)).await, 401, "unauthorized");
    assert!(!server.signin("bob").await.is_empty(), "passwords still work");
    assert_error(signup_with(&server, "alice", PASSWORD).await, 409, "username_taken");

    let mut expected = vec![opener];
    expected.extend(sent.iter().cloned());
    let (_, page) = server.get("/api/messages/bob", Some(&alice.token)).await;
    assert_eq!(page["messages"], json!(expected));
    let list = chats(&server, &bob).await;
    assert_eq!(list[0]["unread"], 2, "read markers survive");
    assert_eq!(list[0]["last_message"], sent[2]);
    // Idempotency keys survive too, and new ids continue above the old ones.
    let (status, again) = server.send_rest(&alice, "bob", "before restart 0", sent[0]["client_id"].as_str().unwrap()).await;
    assert_eq!((status, &again), (200, &sent[0]));
    let next = send(&server, &alice, "bob", "after restart").await;
    assert!(next["id"].as_i64() > sent[2]["id"].as_i64());
}
