//! Several `chatd serve` processes on one PostgreSQL database and one NATS, on loopback: what a
//! cluster promises, checked from outside. Needs `CHATD_TEST_POSTGRES` (a PostgreSQL server URL
//! with the right to create databases) and NATS (`CHATD_TEST_NATS_URL`, default
//! nats://127.0.0.1:4222); without them each test says so and passes, except under `CI=true`.
mod common;

use std::{
    collections::{BTreeMap, HashSet},
    fs::OpenOptions,
    net::ToSocketAddrs,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use assert_cmd::cargo::CommandCargoExt;
use common::{PASSWORD, into_json};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};
use tokio::{net::TcpStream, task::JoinHandle};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

const SECRET: &str = "a-cluster-test-secret-of-enough-length";

struct Services {
    postgres: String,
    nats: String,
}

/// The PostgreSQL server and NATS the test needs, or `None` (and a line saying why) without them.
fn services(test: &str) -> Option<Services> {
    if std::env::var("CHATD_TEST_BACKEND").as_deref() == Ok("postgres") {
        println!("{test}: skipped: the cluster runs on PostgreSQL whatever the backend of the pass, so once, in the default pass");
        return None;
    }
    let postgres = std::env::var("CHATD_TEST_POSTGRES").ok().filter(|url| !url.is_empty());
    let nats = std::env::var("CHATD_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let missing = match &postgres {
        None => Some("CHATD_TEST_POSTGRES is not set".to_owned()),
        Some(_) if !answers(&nats) => Some(format!("NATS at {nats} does not answer")),
        Some(_) => None,
    };
    match missing {
        None => Some(Services { postgres: postgres.expect("checked"), nats }),
        Some(missing) => {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{test}: {missing}, and CI requires it");
            println!("{test}: skipped: {missing}");
            None
        }
    }
}

fn answers(url: &str) -> bool {
    let host_port = url.trim_start_matches("nats://");
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{:012x}", rand::random::<u64>() >> 16)
}

/// A database of the test's own on the PostgreSQL server, dropped with this value.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    async fn fresh(admin: &str) -> Self {
        let name = unique("chatd_c_");
        let connection = sea_orm::Database::connect(admin).await.expect("PostgreSQL answers");
        connection.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("database created");
        let (base, _) = admin.rsplit_once('/').expect("a URL with a database");
        Self { admin: admin.to_owned(), url: format!("{base}/{name}"), name }
    }

    async fn connect(&self) -> sea_orm::DatabaseConnection {
        sea_orm::Database::connect(&self.url).await.expect("test database answers")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(connection) = sea_orm::Database::connect(&admin).await {
                    let _ = connection.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}

/// A NATS server of the test's own, which it may stop and start.
struct Nats {
    port: u16,
    child: Option<Child>,
}

impl Nats {
    async fn start() -> Self {
        let mut nats = Self { port: free_port(), child: None };
        nats.spawn().await;
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "nats-server"]
            .into_iter()
            .find(|b| !b.starts_with('/') || std::path::Path::new(b).exists())
            .unwrap();
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers(&self.url()) {
            assert!(Instant::now() < deadline, "the test's NATS server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `chatd serve` process of the cluster.
struct Node {
    port: u16,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
    http: reqwest::Client,
}

impl Node {
    async fn start(name: &str, database: &str, nats: &str, prefix: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("CHATD_DATABASE__URL", database),
            ("CHATD_CLUSTER__NATS_URL", nats),
            ("CHATD_CLUSTER__SUBJECT_PREFIX", prefix),
            ("CHATD_CLUSTER__NODE_NAME", name),
            ("CHATD_AUTH__JWT_SECRET", SECRET),
        ];
        let mut node = Self {
            port: free_port(),
            log: dir.path().join("chatd.log"),
            dir,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            child: None,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        };
        node.spawn();
        node.wait_ready().await;
        node
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut command = Command::cargo_bin("chatd").expect("the chatd binary is built");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CHATD_") {
                command.env_remove(key);
            }
        }
        command
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path())
            .env("CHATD_DATA_DIR", self.dir.path())
            .env("CHATD_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("CHATD_METRICS__ENABLED", "true");
        for limit in [
            "MESSAGES_PER_SECOND",
            "SIGNUPS_PER_ADDRESS_PER_HOUR",
            "SOCKETS_PER_USER",
            "CONNECTIONS_PER_ADDRESS",
            "SIGNINS_PER_ADDRESS_PER_MINUTE",
            "SIGNINS_PER_ACCOUNT_PER_MINUTE",
            "SYNCS_PER_USER_PER_MINUTE",
        ] {
            command.env(format!("CHATD_RATE_LIMITS__{limit}"), "0");
        }
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = command.arg("serve").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(log)).spawn().unwrap();
        self.child = Some(child);
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().expect("running").try_wait().unwrap() {
                panic!("chatd exited during start-up ({status}):\n{}", self.log_tail());
            }
            let ready = self.http.get(self.url("/api/ready")).timeout(Duration::from_secs(2)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "chatd was not ready within 30 s:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `/api/ready` answers as `wanted` says, for at most `secs`.
    async fn until_ready_says(&self, what: &str, secs: u64, wanted: impl Fn(u16, &Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (status, body) = self.call("GET", "/api/ready", None, None).await;
            if wanted(status, &body) {
                return;
            }
            assert!(Instant::now() < deadline, "{what} within {secs} s: {status} {body}\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        into_json(method, path, request.send().await.expect("the node answers")).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call("POST", path, token, Some(body)).await
    }

    /// Signs a new user up and in; returns the token (good on every node).
    async fn user(&self, name: &str) -> String {
        let (status, body) = self.post("/api/signup", None, json!({"username": name, "password": PASSWORD})).await;
        assert_eq!(status, 201, "sign-up of {name}: {body}");
        let (status, body) = self.post("/api/signin", None, json!({"username": name, "password": PASSWORD})).await;
        assert_eq!(status, 200, "sign-in of {name}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn socket(&self, token: &str) -> Live {
        Live::open(&format!("ws://127.0.0.1:{}/ws", self.port), token).await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An authenticated socket whose frames are collected as they arrive.
struct Live {
    sink: SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>,
    frames: Arc<Mutex<Vec<Value>>>,
    reader: JoinHandle<()>,
    ready: Value,
}

impl Live {
    async fn open(url: &str, token: &str) -> Self {
        let (stream, _) = connect_async(url).await.expect("websocket connects");
        let (mut sink, mut stream) = stream.split();
        sink.send(Message::text(json!({"type": "auth", "token": token}).to_string())).await.unwrap();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let collected = frames.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message {
                    let frame: Value = serde_json::from_str(&text).expect("JSON frame");
                    common::asyncapi::check_frame(&frame);
                    collected.lock().unwrap().push(frame);
                }
            }
        });
        let mut live = Self { sink, frames, reader, ready: Value::Null };
        live.ready = live.wait_for("ready", |f| f["type"] == "ready").await;
        live
    }

    async fn send(&mut self, frame: Value) {
        self.sink.send(Message::text(frame.to_string())).await.expect("send frame");
    }

    fn frames(&self) -> Vec<Value> {
        self.frames.lock().unwrap().clone()
    }

    fn is_closed(&self) -> bool {
        self.reader.is_finished()
    }

    /// The first frame so far or within 30 s that `matches`.
    async fn wait_for(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(frame) = self.frames().into_iter().find(|f| matches(f)) {
                return frame;
            }
            assert!(Instant::now() < deadline, "no {what} within 30 s; frames: {:?}", self.frames());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ids of the messages this socket heard of live, in arrival order: its own sends' acks and
    /// everyone's messages.
    fn live_ids(&self) -> Vec<i64> {
        self.frames()
            .iter()
            .filter(|f| f["type"] == "receive_message" || (f["type"] == "ack"))
            .map(|f| f["message"]["id"].as_i64().unwrap())
            .collect()
    }

    fn last_id(&self) -> i64 {
        self.ready["last_id"].as_i64().unwrap()
    }

    /// Everything after `after`, through `sync`: message ids in the order they came.
    async fn sync(&mut self, after: i64) -> Vec<i64> {
        let start = self.frames().len();
        self.send(json!({"type": "sync", "after": after})).await;
        self.wait_for("sync_done", |f| f["type"] == "sync_done").await;
        self.frames()[start..]
            .iter()
            .take_while(|f| f["type"] != "sync_done")
            .filter(|f| f["type"] == "receive_message")
            .map(|f| f["message"]["id"].as_i64().unwrap())
            .collect()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // The reader holds the socket's read half: without it the socket closes.
        self.reader.abort();
    }
}

fn assert_rising(ids: &[i64], what: &str) {
    for pair in ids.windows(2) {
        assert!(pair[0] < pair[1], "{what}: {} then {} (each message once, in order): {ids:?}", pair[0], pair[1]);
    }
}

fn send_frame(to: &Value, body: &str, client_id: &str) -> Value {
    let mut frame = json!({"type": "send_message", "body": body, "client_id": client_id});
    match to {
        Value::String(peer) => frame["to"] = json!(peer),
        id => frame["conversation_id"] = id.clone(),
    }
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_hold_every_acked_message_once_and_in_order_through_a_node_killed_mid_stream() {
    let Some(services) = services("three_nodes") else { return };
    let database = Database::fresh(&services.postgres).await;
    let prefix = unique("t");
    let mut nodes = Vec::new();
    for n in 0..3 {
        nodes.push(Node::start(&format!("node-{n}"), &database.url, &services.nats, &prefix).await);
    }
    let names = ["ann", "ben", "cat", "dan", "eve", "fay"];
    let mut tokens = Vec::new();
    for name in names {
        tokens.push(nodes[0].user(name).await);
    }
    let members: Vec<&str> = names[1..].to_vec();
    let (status, room) = nodes[1].post("/api/conversations", Some(&tokens[0]), json!({"kind": "room", "name": "general", "members": members})).await;
    assert_eq!(status, 201, "{room}");
    let room_id = room["id"].clone();

    // Everyone but fay has a socket on two nodes; fay has one, on the node that will die.
    let mut sockets: Vec<Vec<(usize, Live)>> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let homes = if i == 5 { vec![2] } else { vec![i % 3, (i + 1) % 3] };
        let mut mine = Vec::new();
        for home in homes {
            mine.push((home, nodes[home].socket(token).await));
        }
        sockets.push(mine);
    }
    let ann_watch = &sockets[0][0].1;
    ann_watch.wait_for("fay online", |f| f["type"] == "presence" && f["username"] == "fay" && f["online"] == true).await;

    // ann, ben, cat and dan write, each through their first socket, to the next person and to
    // the room. Round two is in flight when node 2 dies; its writers resend through node 0.
    const PER_ROUND: usize = 25;
    let writers = [0usize, 1, 2, 3];
    let target = |w: usize, k: usize| if k % 2 == 0 { json!(names[w + 1]) } else { room_id.clone() };
    let mut sent: BTreeMap<String, (usize, Value)> = BTreeMap::new();
    for round in 0..2 {
        for k in round * PER_ROUND..(round + 1) * PER_ROUND {
            for &w in &writers {
                let client_id = format!("{}-{k}", names[w]);
                let to = target(w, k);
                sockets[w][0].1.send(send_frame(&to, &format!("{} says {k}", names[w]), &client_id)).await;
                sent.insert(client_id, (w, to));
            }
        }
        if round == 1 {
            nodes[2].kill9();
        }
    }
    // Writers whose socket was on node 2 open one on node 0 and resend what was not acked (all of
    // it: a resend of a stored message is acked again and stored once).
    for &w in &writers {
        if sockets[w][0].0 == 2 {
            let mut again = nodes[0].socket(&tokens[w]).await;
            for k in 0..2 * PER_ROUND {
                let client_id = format!("{}-{k}", names[w]);
                again.send(send_frame(&target(w, k), &format!("{} says {k}", names[w]), &client_id)).await;
            }
            sockets[w].push((0, again));
        }
    }
    // Every message is acked once on a live socket; an ack on the dead one and the resend's agree.
    let mut acked: BTreeMap<String, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < sent.len() {
        if Instant::now() > deadline {
            let missing: Vec<&String> = sent.keys().filter(|c| !acked.contains_key(*c)).collect();
            let last_frames: Vec<Vec<Value>> = sockets.iter().map(|mine| mine.last().unwrap().1.frames()).collect();
            panic!("only {} of {} messages acked; missing {missing:?}; last sockets' frames: {last_frames:?}", acked.len(), sent.len());
        }
        for mine in &sockets {
            for (_, socket) in mine {
                for frame in socket.frames().iter().filter(|f| f["type"] == "ack") {
                    let client_id = frame["client_id"].as_str().unwrap().to_owned();
                    let id = frame["message"]["id"].as_i64().unwrap();
                    let earlier = *acked.entry(client_id.clone()).or_insert(id);
                    assert_eq!(earlier, id, "{client_id} was stored twice");
                }
                assert!(socket.frames().iter().all(|f| f["type"] != "error"), "{:?}", socket.frames());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // What each person may see: the room's messages, and direct ones they wrote or were sent.
    let expected = |person: usize| -> Vec<i64> {
        let mut ids: Vec<i64> = sent
            .iter()
            .filter(|(_, (w, to))| !to.is_string() || *w == person || to == &json!(names[person]))
            .map(|(client_id, _)| acked[client_id])
            .collect();
        ids.sort();
        ids
    };
    // A socket that lived through it all heard each message once, in order, with nothing missing.
    for (person, mine) in sockets.iter().enumerate() {
        for (home, socket) in mine.iter().filter(|(home, s)| *home != 2 && !s.is_closed()) {
            let want: Vec<i64> = expected(person).into_iter().filter(|id| *id > socket.last_id()).collect();
            let deadline = Instant::now() + Duration::from_secs(20);
            while socket.live_ids().iter().filter(|id| want.contains(id)).count() < want.len() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let heard = socket.live_ids();
            let fresh: Vec<i64> = heard.iter().copied().filter(|id| *id > socket.last_id()).collect();
            assert_rising(&fresh, &format!("{}'s socket on node {home}", names[person]));
            assert_eq!(fresh, want, "{}'s socket on node {home}", names[person]);
        }
    }
    // And `sync` on any surviving node gives every person exactly what they may see.
    for (person, token) in tokens.iter().enumerate() {
        let mut fresh = nodes[person % 2].socket(token).await;
        let synced = fresh.sync(0).await;
        assert_rising(&synced, &format!("{}'s sync", names[person]));
        assert_eq!(synced, expected(person), "{}'s sync", names[person]);
    }

    // fay's only node died: she goes offline for ann within the documented bound; ben, whose
    // other socket lives, does not.
    let ann_watch = &sockets[0][0].1;
    let offline = |f: &Value| f["type"] == "presence" && f["username"] == "fay" && f["online"] == false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ann_watch.frames().iter().any(offline) {
        assert!(
            Instant::now() < deadline,
            "fay is not offline for ann 30 s after her node died:\n{}",
            std::fs::read_to_string(&nodes[0].log).unwrap().lines().filter(|l| !l.contains("request method")).collect::<Vec<_>>().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!ann_watch.frames().iter().any(|f| f["type"] == "presence" && f["username"] == "ben" && f["online"] == false));

    // The node comes back and takes clients again.
    nodes[2].spawn();
    nodes[2].wait_ready().await;
    let fay = nodes[2].socket(&tokens[5]).await;
    let online_again = |f: &Value| f["type"] == "presence" && f["username"] == "fay" && f["online"] == true;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ann_watch.frames().iter().filter(|f| online_again(f)).count() < 2 {
        assert!(Instant::now() < deadline, "fay did not come back online for ann");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sockets[1][0].1.send(send_frame(&json!("fay"), "welcome back", "ben-back")).await;
    let frame = fay.wait_for("ben's message", |f| f["type"] == "receive_message" && f["message"]["body"] == "welcome back").await;
    assert_eq!(frame["message"]["from"], "ben");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_commits_late_holds_back_later_ids_so_no_client_can_skip_one() {
    let Some(services) = services("late_writer") else { return };
    let database = Database::fresh(&services.postgres).await;
    let prefix = unique("t");
    let a = Node::start("a", &database.url, &services.nats, &prefix).await;
    let b = Node::start("b", &database.url, &services.nats, &prefix).await;
    let ann = a.user("ann").await;
    let ben = a.user("ben").await;
    let (status, first) = a.post("/api/messages/ben", Some(&ann), json!({"body": "first", "client_id": "first"})).await;
    assert_eq!(status, 201, "{first}");
    let conversation = first["conversation_id"].as_i64().unwrap();
    let mut watchers = vec![a.socket(&ben).await, b.socket(&ben).await];

    // A slow writer elsewhere (another node mid-commit, imitated here) takes the next id and
    // holds its transaction open.
    let db = database.connect().await;
    let slow = db.begin().await.unwrap();
    let row = slow.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), "SELECT last_id FROM stream_counter WHERE id = 1 FOR UPDATE")).await.unwrap().unwrap();
    let last: i64 = row.try_get("", "last_id").unwrap();
    let ann_id: i64 = slow
        .query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), "SELECT id FROM users WHERE username = 'ann'"))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "id")
        .unwrap();
    slow.execute_unprepared(&format!(
        "INSERT INTO messages (id, conversation_id, sender_id, client_id, body, created_at, kind) VALUES ({}, {conversation}, {ann_id}, 'slow', 'slow', 0, 'text')",
        last + 1
    ))
    .await
    .unwrap();
    slow.execute_unprepared(&format!("UPDATE stream_counter SET last_id = {} WHERE id = 1", last + 1)).await.unwrap();

    // A send through node b started after it must not commit first: with ids from a sequence it
    // would, and a client seeing its id would skip the slow one for good.
    let b_url = b.url("/api/messages/ben");
    let token = ann.clone();
    let later = tokio::spawn(async move {
        reqwest::Client::new().post(b_url).bearer_auth(token).json(&json!({"body": "later", "client_id": "later"})).send().await.unwrap()
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!later.is_finished(), "a later writer committed while an earlier one held its id");
    for watcher in &watchers {
        assert!(watcher.live_ids().iter().all(|id| *id <= last), "nothing after {last} is visible yet");
    }
    slow.commit().await.unwrap();
    let response = later.await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let later_id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(later_id, last + 2);

    for (n, watcher) in watchers.iter().enumerate() {
        watcher.wait_for("the later message", |f| f["message"]["id"] == later_id).await;
        assert_eq!(watcher.live_ids(), vec![last + 1, last + 2], "ben's socket on node {n}: both, in order, once");
    }
    let mut reconnected = b.socket(&ben).await;
    assert_eq!(reconnected.sync(first["id"].as_i64().unwrap()).await, vec![last + 1, last + 2], "and sync gives both, in order");
    drop(watchers.pop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_down_nodes_keep_committing_and_deliver_each_others_messages_from_the_database() {
    let Some(services) = services("nats_down") else { return };
    let database = Database::fresh(&services.postgres).await;
    let mut nats = Nats::start().await;
    let prefix = unique("t");
    let a = Node::start("a", &database.url, &nats.url(), &prefix).await;
    let b = Node::start("b", &database.url, &nats.url(), &prefix).await;
    let ann = a.user("ann").await;
    let ben = a.user("ben").await;
    let mut ann_ws = a.socket(&ann).await;
    let ben_ws = b.socket(&ben).await;
    ann_ws.send(send_frame(&json!("ben"), "with the bus", "c-0")).await;
    ben_ws.wait_for("the first message", |f| f["message"]["body"] == "with the bus").await;

    nats.stop();
    a.until_ready_says("node a notices the bus is gone", 10, |status, body| status == 200 && body["bus"] == "disconnected").await;
    for n in 1..=10 {
        ann_ws.send(send_frame(&json!("ben"), &format!("without the bus {n}"), &format!("c-{n}"))).await;
    }
    ann_ws.wait_for("the tenth ack", |f| f["type"] == "ack" && f["client_id"] == "c-10").await;
    ben_ws.wait_for("the tenth message", |f| f["message"]["body"] == "without the bus 10").await;

    nats.spawn().await;
    for node in [&a, &b] {
        node.until_ready_says("the node reconnects to the bus", 20, |_, body| body["bus"] == "connected").await;
    }
    ann_ws.send(send_frame(&json!("ben"), "with the bus again", "c-11")).await;
    ben_ws.wait_for("the last message", |f| f["message"]["body"] == "with the bus again").await;
    let heard = ben_ws.live_ids();
    assert_rising(&heard, "ben's socket");
    assert_eq!(heard.len(), 12, "every message once: {heard:?}");
    let acks: HashSet<i64> = ann_ws.frames().iter().filter(|f| f["type"] == "ack").map(|f| f["message"]["id"].as_i64().unwrap()).collect();
    assert_eq!(heard.iter().copied().collect::<HashSet<_>>(), acks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_closes_the_sessions_sockets_on_every_node_and_typing_crosses_nodes() {
    let Some(services) = services("sign_out") else { return };
    let database = Database::fresh(&services.postgres).await;
    let prefix = unique("t");
    let a = Node::start("a", &database.url, &services.nats, &prefix).await;
    let b = Node::start("b", &database.url, &services.nats, &prefix).await;
    let ann = a.user("ann").await;
    let ben = a.user("ben").await;
    let (status, _) = a.post("/api/messages/ben", Some(&ann), json!({"body": "hi", "client_id": "hi"})).await;
    assert_eq!(status, 201);
    let (status, _) = b.post("/api/messages/ann", Some(&ben), json!({"body": "hello", "client_id": "hello"})).await;
    assert_eq!(status, 201);

    let mut ann_ws = a.socket(&ann).await;
    let ben_on_b = b.socket(&ben).await;
    ann_ws.send(json!({"type": "typing", "to": "ben"})).await;
    ben_on_b.wait_for("ann typing", |f| f["type"] == "typing" && f["from"] == "ann").await;
    ann_ws.send(json!({"type": "read", "peer": "ben", "up_to": 1_000_000})).await;
    ben_on_b.wait_for("ann's read receipt", |f| f["type"] == "read" && f["peer"] == "ann").await;

    let started = Instant::now();
    let (status, body) = a.call("POST", "/api/signout", Some(&ben), None).await;
    assert!(status == 204 || status == 200, "{status} {body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ben_on_b.is_closed() {
        assert!(Instant::now() < deadline, "ben's socket on node b stayed open after sign-out on node a");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_count_on_every_node_so_more_nodes_give_a_guesser_no_more_tries() {
    let Some(services) = services("guessing") else { return };
    let database = Database::fresh(&services.postgres).await;
    let prefix = unique("t");
    let mut a = Node::start("a", &database.url, &services.nats, &prefix).await;
    let mut b = Node::start("b", &database.url, &services.nats, &prefix).await;
    // The per-account-and-address limit on, at 6 a minute.
    for node in [&mut a, &mut b] {
        node.kill9();
        node.env.push(("CHATD_RATE_LIMITS__SIGNIN_FAILURES_PER_ACCOUNT_PER_MINUTE".into(), "6".into()));
        node.spawn();
        node.wait_ready().await;
    }
    a.user("ann").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let guess = |node: &Node| {
        let node_url = node.url("/api/signin");
        async move {
            let response = reqwest::Client::new().post(node_url).json(&json!({"username": "ann", "password": "wrong guess"})).send().await.unwrap();
            response.status().as_u16()
        }
    };
    let mut refused = 0;
    for n in 0..10 {
        let node = if n % 2 == 0 { &a } else { &b };
        let status = guess(node).await;
        assert!(status == 401 || status == 429, "{status}");
        if status == 429 {
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused >= 3, "10 guesses over two nodes with a limit of 6: only {refused} refused");
}

/// No container engine runs here, so the example compose file is checked for what it must say.
#[test]
fn the_example_compose_file_runs_migrations_first_then_three_nodes_on_postgres_and_nats_behind_a_proxy() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/cluster");
    let text = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    let compose: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("compose.yaml is YAML");
    let mut compose = compose;
    compose.apply_merge().expect("merge keys resolve");
    let services = compose["services"].as_mapping().expect("services");
    let nodes: Vec<&str> = ["node1", "node2", "node3"].into_iter().filter(|n| services.contains_key(*n)).collect();
    assert_eq!(nodes.len(), 3);
    for node in &nodes {
        let service = &compose["services"][*node];
        let env = &service["environment"];
        assert!(env["CHATD_DATABASE__URL"].as_str().unwrap().starts_with("postgres://"), "{node}");
        assert_eq!(env["CHATD_CLUSTER__NATS_URL"], "nats://nats:4222", "{node}");
        assert!(env["CHATD_AUTH__JWT_SECRET"].as_str().unwrap().contains("CHATD_JWT_SECRET"), "{node}: one secret for all");
        assert_eq!(env["CHATD_CLUSTER__NODE_NAME"], *node);
        assert_eq!(service["depends_on"]["migrate"]["condition"], "service_completed_successfully", "{node}");
        assert_eq!(service["healthcheck"]["test"][1], "chatd");
    }
    assert_eq!(compose["services"]["migrate"]["command"][0], "db");
    assert_eq!(compose["services"]["migrate"]["command"][1], "migrate");
    assert!(compose["services"]["postgres"]["image"].as_str().unwrap().starts_with("postgres:"));
    assert!(compose["services"]["nats"]["command"].as_sequence().unwrap().iter().any(|a| a == "-js"));
    let caddy = std::fs::read_to_string(dir.join("Caddyfile")).unwrap();
    for node in &nodes {
        assert!(caddy.contains(&format!("{node}:3000")), "Caddy spreads requests over {node}");
    }
    assert!(caddy.contains("health_uri /api/ready"));
    let nginx = std::fs::read_to_string(dir.join("nginx.conf")).unwrap();
    assert_eq!(nginx.matches("server 10.0.0.").count(), 3);
    assert!(nginx.contains("proxy_set_header Upgrade $http_upgrade"));
}

/// A TCP proxy to PostgreSQL that the test can cut (every connection dropped, new ones refused)
/// and restore, so a node sees its database go away and come back.
struct Proxy {
    port: u16,
    open: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    listener: JoinHandle<()>,
}

impl Proxy {
    async fn to(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (accepting, tracked) = (open.clone(), connections.clone());
        let listener = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                tracked.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self { port, open, connections, listener }
    }

    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.listener.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_gone_a_node_is_unready_and_refuses_sends_unacked_then_recovers_by_itself() {
    let Some(services) = services("postgres_down") else { return };
    let database = Database::fresh(&services.postgres).await;
    let authority = services.postgres.split('@').nth(1).and_then(|rest| rest.split('/').next()).expect("user@host:port in the URL");
    let target = authority.to_socket_addrs().unwrap().next().unwrap();
    let proxy = Proxy::to(target).await;
    let proxied = database.url.replacen(authority, &format!("127.0.0.1:{}", proxy.port), 1);
    let node = Node::start("a", &proxied, &services.nats, &unique("t")).await;
    let ann = node.user("ann").await;
    let ben = node.user("ben").await;
    let mut ann_ws = node.socket(&ann).await;
    let ben_ws = node.socket(&ben).await;
    ann_ws.send(send_frame(&json!("ben"), "before", "before")).await;
    ben_ws.wait_for("the first message", |f| f["message"]["body"] == "before").await;

    proxy.cut();
    node.until_ready_says("unready with its database gone", 20, |status, body| status == 503 && body["code"] == "unavailable").await;
    ann_ws.send(send_frame(&json!("ben"), "while down", "down-1")).await;
    let refused = ann_ws.wait_for("a refusal", |f| f["type"] == "error" && f["client_id"] == "down-1").await;
    assert_eq!(refused["code"], "unavailable", "{refused}");
    assert!(!ann_ws.frames().iter().any(|f| f["type"] == "ack" && f["client_id"] == "down-1"), "never acked");

    proxy.restore();
    node.until_ready_says("ready again once its database is back", 30, |status, _| status == 200).await;
    ann_ws.send(send_frame(&json!("ben"), "while down", "down-1")).await;
    ann_ws.wait_for("the resend's ack", |f| f["type"] == "ack" && f["client_id"] == "down-1").await;
    ben_ws.wait_for("the resent message", |f| f["message"]["body"] == "while down").await;
    let bodies: Vec<Value> = ben_ws.frames().iter().filter(|f| f["type"] == "receive_message").map(|f| f["message"]["body"].clone()).collect();
    assert_eq!(bodies, vec![json!("before"), json!("while down")], "each once");
}
