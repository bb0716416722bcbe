//! Operating chatd: the admin CLI against a live server's data directory (revocations reach open
//! sockets), online backup, import round trips, configuration checks, metrics, healthcheck, and
//! the Dockerfile's promises.
mod common;

use std::{path::Path, process::Output, time::Duration};

use common::*;
use serde_json::{Value, json};

/// Runs the real `chatd` binary on `data_dir` with nothing inherited from this environment.
fn chatd(data_dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut command = assert_cmd::Command::cargo_bin("chatd").expect("binary");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CHATD_")) {
        command.env_remove(key);
    }
    command.current_dir(data_dir).env("CHATD_DATA_DIR", data_dir).env("RUST_LOG", "warn").args(args);
    command.envs(database::env_for(data_dir));
    for (key, value) in env {
        command.env(key, value);
    }
    command.write_stdin(stdin.unwrap_or_default());
    command.output().expect("chatd runs")
}

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &Output, code: i32, stderr_has: &str) {
    assert_eq!(output.status.code(), Some(code), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(stderr_has), "stderr {stderr:?} lacks {stderr_has:?}");
}

#[tokio::test]
async fn admin_commands_change_accounts_and_close_their_sockets_within_seconds() {
    let server = TestServer::start().await;
    let dir = server.data_dir.path().to_owned();
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;

    let listed: Vec<Value> = ok(&chatd(&dir, &["user", "list", "--json"], &[], None))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.iter().map(|u| u["username"].as_str().unwrap()).collect::<Vec<_>>(), ["alice", "bob"]);
    assert!(listed.iter().all(|u| u.get("password_hash").is_none()));

    ok(&chatd(&dir, &["user", "set-admin", "bob", "true"], &[], None));
    assert_eq!(server.get("/api/me", Some(&bob.token)).await.1["is_admin"], true);
    ok(&chatd(&dir, &["user", "set-admin", "bob", "false"], &[], None));
    assert_eq!(server.get("/api/me", Some(&bob.token)).await.1["is_admin"], false);

    // A new password signs alice out everywhere: REST at once, her socket within seconds.
    let (mut alice_ws, ..) = server.connect(&alice).await;
    ok(&chatd(&dir, &["user", "passwd", "alice", "--password-stdin"], &[], Some("a brand new secret\n")));
    assert_eq!(server.get("/api/me", Some(&alice.token)).await.0, 401);
    assert_eq!(alice_ws.closed_with().await, Some(4401));
    let (status, _) = server.post("/api/signin", None, json!({"username": "alice", "password": "a brand new secret"})).await;
    assert_eq!(status, 200);
    let (status, _) = server.post("/api/signin", None, json!({"username": "alice", "password": PASSWORD})).await;
    assert_eq!(status, 401);

    // Disabling ends sessions and blocks sign-in; enabling lets the user back in.
    let (mut bob_ws, ..) = server.connect(&bob).await;
    ok(&chatd(&dir, &["user", "disable", "bob"], &[], None));
    assert_eq!(bob_ws.closed_with().await, Some(4401));
    assert_eq!(server.get("/api/me", Some(&bob.token)).await.0, 401);
    let (status, body) = server.post("/api/signin", None, json!({"username": "bob", "password": PASSWORD})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("account_disabled")));
    ok(&chatd(&dir, &["user", "enable", "bob"], &[], None));
    let bob_again = server.signin("bob").await;

    // Removal: the account and its sessions are gone.
    ok(&chatd(&dir, &["user", "remove", "bob", "--yes"], &[], None));
    assert_eq!(server.get("/api/me", Some(bob_again.as_str())).await.0, 401);
    let (status, _) = server.post("/api/signin", None, json!({"username": "bob", "password": PASSWORD})).await;
    assert_eq!(status, 401);
    failed(&chatd(&dir, &["user", "remove", "bob", "--yes"], &[], None), 1, "no user with that name");
}

#[test]
fn user_add_is_scriptable() {
    let dir = tempfile::tempdir().unwrap();
    let _database = database::TestDatabase::for_dir(dir.path());
    let password = [("CHATD_PASSWORD", PASSWORD)];
    ok(&chatd(dir.path(), &["user", "add", "carol"], &password, None));
    failed(&chatd(dir.path(), &["user", "add", "carol"], &password, None), 1, "already taken");
    ok(&chatd(dir.path(), &["user", "add", "Carol", "--ignore-exists"], &password, None));
    failed(&chatd(dir.path(), &["user", "add", "dave"], &[("CHATD_PASSWORD", "short")], None), 1, "at least 8");
    failed(&chatd(dir.path(), &["user", "passwd", "carol"], &[], None), 1, "no password given");
    failed(&chatd(dir.path(), &["user", "set-admin", "carol", "maybe"], &[], None), 2, "invalid value");
}

#[tokio::test]
async fn backup_while_serving_gives_a_consistent_database_that_serves_again() {
    if sqlite_only("`chatd backup` copies a SQLite file (PostgreSQL: pg_dump)") {
        return;
    }
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let (mut ws, ..) = server.connect(&alice).await;
    for n in 0..200 {
        ws.send(json!({"type": "send_message", "to": "bob", "body": format!("m{n}"), "client_id": format!("c{n}")})).await;
    }
    // Snapshot while those messages are being written.
    let backup_dir = tempfile::tempdir().unwrap();
    let snapshot = backup_dir.path().join("chat.db");
    ok(&chatd(server.data_dir.path(), &["backup", "-o", snapshot.to_str().unwrap()], &[], None));
    failed(&chatd(server.data_dir.path(), &["backup", "-o", snapshot.to_str().unwrap()], &[], None), 1, "already exists");
    for _ in 0..200 {
        ws.recv_type("ack").await;
    }

    // Restore = put the file in a data directory (with the secret) and serve it.
    std::fs::copy(server.data_dir.path().join("jwt-secret"), backup_dir.path().join("jwt-secret")).unwrap();
    let exported = ok(&chatd(backup_dir.path(), &["export"], &[], None));
    let messages: Vec<Value> =
        exported.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|v| v["type"] == "message").collect();
    // A prefix of the send order, with no gaps: a consistent snapshot.
    for (n, message) in messages.iter().enumerate() {
        assert_eq!(message["body"], format!("m{n}"));
    }
    let restored = chatd(backup_dir.path(), &["user", "list", "--json"], &[], None);
    assert_eq!(ok(&restored).lines().count(), 2);
}

#[tokio::test]
async fn backup_of_a_postgresql_database_refuses_and_points_to_pg_dump() {
    if database::postgres_only("`chatd backup` refuses PostgreSQL") {
        return;
    }
    let server = TestServer::start().await;
    let target = server.data_dir.path().join("copy.db");
    failed(&chatd(server.data_dir.path(), &["backup", "-o", target.to_str().unwrap()], &[], None), 1, "pg_dump");
    assert!(!target.exists(), "nothing written");
}

#[tokio::test]
async fn import_round_trips_and_is_idempotent() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    server.user("carol").await;
    for n in 0..5 {
        server.send_rest(&alice, "bob", &format!("hello {n} \u{1F600}"), &format!("a{n}")).await;
        server.send_rest(&bob, "alice", &format!("re {n}\nline two"), &format!("b{n}")).await;
    }
    server.send_rest(&alice, "carol", "hi carol", "c0").await;
    let first = ok(&chatd(server.data_dir.path(), &["export"], &[], None));
    let export_file = server.data_dir.path().join("export.jsonl");
    std::fs::write(&export_file, &first).unwrap();

    let fresh = tempfile::tempdir().unwrap();
    let _fresh_database = database::TestDatabase::for_dir(fresh.path());
    let file = export_file.to_str().unwrap();
    ok(&chatd(fresh.path(), &["import", file], &[], None));
    assert_eq!(ok(&chatd(fresh.path(), &["export"], &[], None)), first, "export → import → export is identical");
    ok(&chatd(fresh.path(), &["import", file], &[], None));
    assert_eq!(ok(&chatd(fresh.path(), &["export"], &[], None)), first, "a second import changes nothing");

    // Imported accounts have no usable password until an admin sets one.
    let restored = TestServer::start_with(|c| c.data_dir = fresh.path().to_owned()).await;
    let (status, _) = restored.post("/api/signin", None, json!({"username": "alice", "password": PASSWORD})).await;
    assert_eq!(status, 401);

    failed(&chatd(fresh.path(), &["import", "/nonexistent/export.jsonl"], &[], None), 1, "cannot open");
    let bad = fresh.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"type\":\"user\"}\n").unwrap();
    failed(&chatd(fresh.path(), &["import", bad.to_str().unwrap()], &[], None), 1, "line 1");
}

#[test]
fn config_check_warns_and_show_redacts() {
    let dir = tempfile::tempdir().unwrap();
    let out = chatd(dir.path(), &["config", "check"], &[("CHATD_LISTN", "0.0.0.0:1"), ("CHATD_AUTH__JWT_SECRET", "changeme-changeme-changeme-changeme")], None);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown environment variable CHATD_LISTN"), "{stderr}");
    assert!(stderr.contains("jwt_secret"), "{stderr}");

    failed(&chatd(dir.path(), &["config", "check"], &[("CHATD_LISTEN", "nowhere")], None), 1, "listen");
    failed(&chatd(dir.path(), &["config", "check"], &[("CHATD_AUTH__JWT_SECRET", "short")], None), 1, "at least 32");

    let secret = "f3b9c2e1a7d64b0e9c8a1f2d3e4b5c6a7";
    let shown = ok(&chatd(dir.path(), &["config", "show", "--json"], &[("CHATD_AUTH__JWT_SECRET", secret), ("CHATD_LISTEN", "127.0.0.1:4000")], None));
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["listen"], "127.0.0.1:4000");
    assert_eq!(shown["auth"]["jwt_secret"], "<redacted>");
    let toml = ok(&chatd(dir.path(), &["config", "show"], &[("CHATD_AUTH__JWT_SECRET", secret)], None));
    assert!(toml.contains("[database]") && !toml.contains(secret));
}

#[tokio::test]
async fn metrics_are_off_by_default_and_guarded_by_their_token() {
    let plain = TestServer::start().await;
    assert_eq!(plain.get("/metrics", None).await.0, 404);

    let server = TestServer::start_with(|c| {
        c.metrics.enabled = true;
        c.metrics.token = "metrics-token-0123456789".into();
    })
    .await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let (_ws, ..) = server.connect(&alice).await;
    server.send_rest(&alice, "bob", "counted", "m-1").await;
    assert_eq!(server.get("/metrics", None).await.0, 401);
    assert_eq!(server.get("/metrics", Some("wrong")).await.0, 401);
    let (status, body) = server.get("/metrics", Some("metrics-token-0123456789")).await;
    assert_eq!(status, 200);
    let text = body.as_str().unwrap();
    for name in [
        "chatd_websocket_connections",
        "chatd_online_users",
        "chatd_messages_stored_total",
        "chatd_commit_batch_size_bucket",
        "chatd_message_ack_latency_seconds_bucket",
        "chatd_http_requests_total",
        "chatd_http_request_duration_seconds_bucket",
        "chatd_signins_total",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

// The binary talks to the in-process server while this test blocks on it: it needs a second thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_follows_readiness() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = server.addr.to_string();
    let up = chatd(dir.path(), &["healthcheck"], &[("CHATD_LISTEN", &listen)], None);
    assert_eq!(ok(&up).trim(), "ok: database ok");
    drop(server);
    tokio::time::sleep(Duration::from_millis(300)).await;
    failed(&chatd(dir.path(), &["healthcheck", "--timeout", "2"], &[("CHATD_LISTEN", &listen)], None), 1, "");
}

#[test]
fn the_dockerfile_builds_what_the_readme_says_and_runs_safely() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let known = ["FROM", "WORKDIR", "COPY", "RUN", "ENV", "USER", "VOLUME", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD"];
    let mut continued = false;
    for line in &lines {
        let instruction = line.split_whitespace().next().unwrap();
        assert!(continued || known.contains(&instruction), "unknown instruction: {line}");
        continued = line.ends_with('\\');
    }
    // Every COPY source outside another stage exists in the repository.
    for line in lines.iter().filter(|l| l.starts_with("COPY ") && !l.contains("--from=")) {
        let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &parts[..parts.len() - 1] {
            assert!(root.join(source).exists(), "COPY source {source} is missing");
        }
    }
    // The build commands are the documented ones.
    assert!(dockerfile.contains("npm ci") && dockerfile.contains("cargo build --release --locked"));
    assert!(readme.contains("docker build -t chatd .") && readme.contains("-v chatd-data:/data"));
    assert!(readme.contains("CHATD_UI_DIST") && dockerfile.contains("CHATD_UI_DIST=/ui"));
    // The runtime stage: non-root user, state in /data, port, health check, exec-form entrypoint.
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(runtime.contains("USER chatd"), "runs as root");
    assert!(runtime.contains("VOLUME /data") && runtime.contains("EXPOSE 3000"));
    assert!(runtime.contains(r#"HEALTHCHECK"#) && runtime.contains(r#"CMD ["chatd", "healthcheck"]"#));
    assert!(runtime.contains(r#"ENTRYPOINT ["chatd"]"#) && runtime.contains(r#"CMD ["serve"]"#));
    assert!(runtime.contains("CHATD_DATA_DIR=/data"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_object_per_request_line() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let _database = database::TestDatabase::for_dir(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("chatd"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CHATD_")) {
        command.env_remove(key);
    }
    let mut child = command
        .arg("serve")
        .current_dir(dir.path())
        .env("CHATD_DATA_DIR", dir.path())
        .env("CHATD_LISTEN", format!("127.0.0.1:{port}"))
        .env("CHATD_LOG__FORMAT", "json")
        .envs(database::env_for(dir.path()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/api/ready");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while reqwest::get(&url).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reqwest::get(format!("http://127.0.0.1:{port}/api/nope")).await.unwrap();
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    let request = lines
        .iter()
        .find(|l| l["fields"]["path"] == "/api/nope")
        .unwrap_or_else(|| panic!("no line for the request in {log}"));
    assert_eq!(request["fields"]["status"], 404);
    assert!(request["fields"]["duration_ms"].as_f64().is_some());
    assert!(lines.iter().any(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains("shutting down"))));
}

/// Under steady writes a passive checkpoint never catches up, so without a restart the WAL grows
/// for as long as the load lasts. The checkpointer must make it start over and trim it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_starts_over_once_it_grows_past_its_limit() {
    use chatd::store::{Store, sql};
    use sea_orm::ConnectionTrait;

    if sqlite_only("SQLite's write-ahead log") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&chatd::Config::for_data_dir(dir.path())).await.unwrap();
    store.migrate().await.unwrap();
    store.checkpoint_in_background().await.unwrap().abort(); // its settings, without its timer
    let wal = dir.path().join("chat.db-wal");
    store.write.execute_unprepared("CREATE TABLE filler (b BLOB NOT NULL)").await.unwrap();
    // 160 commits of 1 MiB: about 41,000 pages of log, past the 32,768 that trigger a restart.
    for _ in 0..160 {
        store.write.execute_raw(sql(&store.write, "INSERT INTO filler (b) VALUES (randomblob(1048576))", [])).await.unwrap();
    }
    let grown = std::fs::metadata(&wal).unwrap().len();
    assert!(grown > 160 << 20, "the log holds every commit: {grown} bytes");

    let pages = store.checkpoint().await.unwrap();
    assert!(pages > 32_768, "the checkpointer saw {pages} pages");
    store.write.execute_raw(sql(&store.write, "INSERT INTO filler (b) VALUES (x'00')", [])).await.unwrap();
    let trimmed = std::fs::metadata(&wal).unwrap().len();
    assert!(trimmed <= 128 << 20, "the log started over and was trimmed: {trimmed} bytes");

    let rows = store.read.query_one_raw(sql(&store.read, "SELECT COUNT(*) AS n FROM filler", [])).await.unwrap().unwrap();
    assert_eq!(rows.try_get::<i64>("", "n").unwrap(), 161);
    let check = store.read.query_one_raw(sql(&store.read, "PRAGMA integrity_check", [])).await.unwrap().unwrap();
    assert_eq!(check.try_get::<String>("", "integrity_check").unwrap(), "ok");
}

#[tokio::test]
async fn a_graceful_shutdown_copies_the_log_into_the_database_and_leaves_none_behind() {
    if sqlite_only("SQLite's write-ahead log") {
        return;
    }
    let mut server = TestServer::start().await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    for n in 0..20 {
        assert_eq!(server.send_rest(&alice, "bob", &format!("m{n}"), &format!("c{n}")).await.0, 201);
    }
    let wal = server.data_dir.path().join("chat.db-wal");
    assert!(std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0), "the server writes through its log");
    server.stop_in_place().await;
    assert!(std::fs::metadata(&wal).map_or(true, |m| m.len() == 0), "a clean stop leaves no log to recover");
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(server.data_dir.path().join("chat.db"), copy.path().join("chat.db")).unwrap();
    let exported = ok(&chatd(copy.path(), &["export"], &[], None));
    assert_eq!(exported.lines().filter(|l| l.contains("\"client_id\":\"c")).count(), 20, "{exported}");
}
