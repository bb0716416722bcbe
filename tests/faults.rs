//! Fault tests against the real `chatd` binary: kill -9 during traffic, SIGTERM under load,
//! reconnects through restarts, write contention and slow clients. Each test spawns
//! `chatd serve` on a loopback port with a temporary data directory and only talks to it as a
//! client would (REST, WebSocket, raw TCP), then checks the database through `chatd export` and
//! SQLite's own `PRAGMA integrity_check`.

#[path = "common/asyncapi.rs"]
mod asyncapi;
#[path = "common/openapi.rs"]
mod openapi;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    fs::OpenOptions,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use assert_cmd::cargo::CommandCargoExt;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    net::TcpStream,
    sync::{Notify, mpsc},
    task::JoinHandle,
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message as WsMessage};

const PASSWORD: &str = "correct horse battery";

/// The tests here load the machine on purpose; running two at once would only measure each other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------
// The server process

/// `chatd serve` as a child process on a fixed loopback port, so clients can reconnect to the
/// same address after a restart. Killed when dropped.
struct Chatd {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    http: reqwest::Client,
}

impl Chatd {
    async fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port();
        let mut server = Self {
            child: None,
            port,
            dir: dir.to_owned(),
            log: dir.join("chatd.log"),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        };
        server.spawn();
        server.wait_ready().await;
        server
    }

    /// The binary with the test's configuration only: no inherited `CHATD_*`, no repo `config.toml`.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::cargo_bin("chatd").expect("the chatd binary is built");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CHATD_") {
                command.env_remove(key);
            }
        }
        command
            .env_remove("RUST_LOG")
            .current_dir(&self.dir)
            .env("CHATD_DATA_DIR", &self.dir)
            .env("CHATD_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("CHATD_RATE_LIMITS__MESSAGES_PER_SECOND", "0")
            .env("CHATD_RATE_LIMITS__SIGNUPS_PER_ADDRESS_PER_HOUR", "0")
            .env("CHATD_RATE_LIMITS__SOCKETS_PER_USER", "0")
            // Every client here shares one loopback address.
            .env("CHATD_RATE_LIMITS__CONNECTIONS_PER_ADDRESS", "0")
            .env("CHATD_RATE_LIMITS__SIGNINS_PER_ADDRESS_PER_MINUTE", "0")
            .env("CHATD_RATE_LIMITS__SIGNINS_PER_ACCOUNT_PER_MINUTE", "0")
            .env("CHATD_RATE_LIMITS__SYNCS_PER_USER_PER_MINUTE", "0");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command.args(args);
        command
    }

    /// Starts `serve`; its standard error is appended to the log file across restarts.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "chatd is already running");
        let log = OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = self
            .command(&["serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("chatd serve starts");
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
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn restart(&mut self) {
        self.spawn();
        self.wait_ready().await;
    }

    /// SIGKILL: no shutdown code runs.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }

    /// SIGTERM, then the exit status and how long the process took to exit.
    async fn terminate(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
        assert!(sent.success(), "kill -TERM failed");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chatd did not exit within 30 s of SIGTERM:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(&mut self) {
        let (status, took) = self.terminate().await;
        assert!(status.success(), "chatd exited with {status} after SIGTERM:\n{}", self.log_tail());
        assert!(took < Duration::from_secs(10), "chatd took {took:?} to stop");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> reqwest::Result<(u16, Value)> {
        let mut request = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        into_json("POST", request.send().await?).await
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Result<(u16, Value)> {
        into_json("GET", self.http.get(self.url(path)).bearer_auth(token).send().await?).await
    }

    /// Signs a new user up and in; returns the token.
    async fn user(&self, name: &str) -> String {
        let (status, body) = self.post("/api/signup", None, json!({"username": name, "password": PASSWORD})).await.unwrap();
        assert_eq!(status, 201, "sign-up of {name}: {body}");
        let (status, body) = self.post("/api/signin", None, json!({"username": name, "password": PASSWORD})).await.unwrap();
        assert_eq!(status, 200, "sign-in of {name}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The whole conversation with `peer`, paged oldest first with `after`.
    async fn history_ids(&self, token: &str, peer: &str) -> Vec<i64> {
        let mut ids = Vec::new();
        let mut after = 0;
        loop {
            let (status, page) = self.get(&format!("/api/messages/{peer}?after={after}&limit=100"), token).await.unwrap();
            assert_eq!(status, 200, "{page}");
            for message in page["messages"].as_array().unwrap() {
                after = message["id"].as_i64().unwrap();
                ids.push(after);
            }
            if page["has_more"] != true {
                return ids;
            }
        }
    }

    /// Every stored message, in id order, from `chatd export` (run while the server is stopped
    /// or running: the export is one read transaction).
    fn export(&self) -> Vec<Stored> {
        let output = self.command(&["export", "-o", "-"]).output().expect("chatd export runs");
        assert!(output.status.success(), "chatd export failed: {}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8(output.stdout).expect("UTF-8 export");
        let mut members: HashMap<i64, Vec<String>> = HashMap::new();
        let mut messages = Vec::new();
        for line in text.lines() {
            let row: Value = serde_json::from_str(line).expect("JSON Lines");
            match row["type"].as_str() {
                Some("conversation") => {
                    let names = row["members"].as_array().unwrap().iter().map(|m| m["username"].as_str().unwrap().to_owned()).collect();
                    members.insert(row["id"].as_i64().unwrap(), names);
                }
                Some("message") => {
                    let from = row["from"].as_str().unwrap().to_owned();
                    let conversation = &members[&row["conversation_id"].as_i64().unwrap()];
                    let to = conversation.iter().find(|m| **m != from).expect("a direct conversation").clone();
                    messages.push(Stored {
                        id: row["id"].as_i64().unwrap(),
                        from,
                        to,
                        body: row["body"].as_str().unwrap().to_owned(),
                        client_id: row["client_id"].as_str().unwrap().to_owned(),
                    });
                }
                _ => {}
            }
        }
        messages
    }
}

impl Drop for Chatd {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The status and body, checked against the OpenAPI document.
async fn into_json(method: &str, response: reqwest::Response) -> reqwest::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let (path, headers) = (response.url().path().to_owned(), response.headers().clone());
    let text = response.text().await?;
    Ok((status, openapi::checked_body(method, &path, status, &headers, text)))
}

#[derive(Debug, Clone)]
struct Stored {
    id: i64,
    from: String,
    to: String,
    body: String,
    client_id: String,
}

/// Checks what every test expects of the messages table and returns it keyed by
/// (sender, client_id): ids strictly increasing and gap-free (1..=N), no key twice.
fn check_stored(stored: &[Stored]) -> HashMap<(String, String), Stored> {
    for (index, message) in stored.iter().enumerate() {
        assert_eq!(message.id, index as i64 + 1, "message ids must be 1..=N without holes; found {} at position {}", message.id, index + 1);
    }
    let mut by_key = HashMap::new();
    for message in stored {
        let previous = by_key.insert((message.from.clone(), message.client_id.clone()), message.clone());
        assert!(previous.is_none(), "({}, {}) is stored twice", message.from, message.client_id);
    }
    by_key
}

/// `PRAGMA integrity_check` through Python's sqlite3 module (the server must not be running).
fn integrity_check(dir: &Path) -> String {
    let output = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nprint(c.execute('PRAGMA integrity_check').fetchone()[0])\nc.close()",
        ])
        .arg(dir.join("chat.db"))
        .output()
        .expect("python3 with its sqlite3 module runs the integrity check");
    assert!(output.status.success(), "integrity check failed to run: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

// ---------------------------------------------------------------------------------------------
// WebSocket client

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open_ws(port: u16) -> Option<Ws> {
    let url = format!("ws://127.0.0.1:{port}/ws");
    match tokio::time::timeout(Duration::from_secs(10), connect_async(url)).await {
        Ok(Ok((ws, _))) => Some(ws),
        _ => None,
    }
}

/// Sends `auth` and waits for `ready`; returns its `last_id`.
async fn authenticate(ws: &mut Ws, token: &str) -> Option<i64> {
    if !send_json(ws, json!({"type": "auth", "token": token})).await {
        return None;
    }
    match next_frame(ws, Duration::from_secs(10)).await {
        Incoming::Frame(frame) if frame["type"] == "ready" => frame["last_id"].as_i64(),
        Incoming::Frame(frame) => panic!("expected ready, got {frame}"),
        _ => None,
    }
}

async fn send_json(ws: &mut Ws, frame: Value) -> bool {
    ws.send(WsMessage::text(frame.to_string())).await.is_ok()
}

async fn send_message(ws: &mut Ws, to: &str, body: &str, client_id: &str) -> bool {
    send_json(ws, json!({"type": "send_message", "to": to, "body": body, "client_id": client_id})).await
}

enum Incoming {
    Frame(Value),
    /// A close frame, with its code.
    Closed(Option<u16>),
    /// The connection ended without a close frame (or nothing came in time).
    Gone,
}

async fn next_frame(ws: &mut Ws, wait: Duration) -> Incoming {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(WsMessage::Text(text)))) => {
                let frame = serde_json::from_str(&text).expect("JSON frame");
                asyncapi::check_frame(&frame);
                return Incoming::Frame(frame);
            }
            Ok(Some(Ok(WsMessage::Close(frame)))) => return Incoming::Closed(frame.map(|f| u16::from(f.code))),
            Ok(Some(Ok(_))) => continue,
            _ => return Incoming::Gone,
        }
    }
}

fn client_id(name: &str, seq: u64) -> String {
    format!("{name}-{seq}")
}

fn body(name: &str, seq: u64) -> String {
    format!("message {seq} from {name}")
}

fn seq_of(client_id: &str) -> u64 {
    client_id.rsplit_once('-').and_then(|(_, seq)| seq.parse().ok()).expect("a client_id of ours")
}

// ---------------------------------------------------------------------------------------------
// 1. kill -9 at random moments

/// A sender's whole history across server lives.
struct CrashSender {
    name: String,
    peer: String,
    token: String,
    next_seq: u64,
    /// Sent and not acked (yet): seq → client_id.
    unacked: BTreeMap<u64, String>,
    /// client_id → id from the ack.
    acked: BTreeMap<String, i64>,
    resent: u64,
    /// Resends whose ack named a message stored before this server life: committed, ack lost.
    stored_before_kill: u64,
}

const CRASH_WINDOW: usize = 16;

/// One server life of one sender: resend what is unacked, then keep `CRASH_WINDOW` new sends in
/// flight until the server dies. With `finish`, only resend and return once everything is acked.
async fn crash_sender(port: u16, mut s: CrashSender, finish: bool, ready: mpsc::Sender<()>) -> CrashSender {
    let Some(mut ws) = open_ws(port).await else { return s };
    let Some(last_id) = authenticate(&mut ws, &s.token).await else { return s };
    let _ = ready.send(()).await;
    let resends: Vec<(u64, String)> = s.unacked.iter().map(|(seq, cid)| (*seq, cid.clone())).collect();
    let resent: HashSet<String> = resends.iter().map(|(_, cid)| cid.clone()).collect();
    for (seq, cid) in &resends {
        if !send_message(&mut ws, &s.peer, &body(&s.name, *seq), cid).await {
            return s;
        }
        s.resent += 1;
    }
    loop {
        if finish && s.unacked.is_empty() {
            let _ = ws.close(None).await;
            return s;
        }
        while !finish && s.unacked.len() < CRASH_WINDOW {
            let seq = s.next_seq;
            s.next_seq += 1;
            let cid = client_id(&s.name, seq);
            s.unacked.insert(seq, cid.clone());
            if !send_message(&mut ws, &s.peer, &body(&s.name, seq), &cid).await {
                return s;
            }
        }
        let frame = match next_frame(&mut ws, Duration::from_secs(10)).await {
            Incoming::Frame(frame) => frame,
            _ => return s,
        };
        match frame["type"].as_str() {
            Some("ack") => {
                let cid = frame["client_id"].as_str().unwrap().to_owned();
                let seq = seq_of(&cid);
                assert!(s.unacked.remove(&seq).is_some(), "{}: an ack for {cid}, which was not waiting: {frame}", s.name);
                let message = &frame["message"];
                assert_eq!(message["body"], body(&s.name, seq), "{frame}");
                assert_eq!(message["from"], s.name.as_str(), "{frame}");
                assert_eq!(message["to"], s.peer.as_str(), "{frame}");
                assert_eq!(message["client_id"], cid.as_str(), "{frame}");
                let id = message["id"].as_i64().unwrap();
                if resent.contains(&cid) && id <= last_id {
                    s.stored_before_kill += 1;
                }
                assert!(s.acked.insert(cid, id).is_none(), "{}: acked twice: {frame}", s.name);
            }
            Some("error") => panic!("{}: unexpected error frame {frame}", s.name),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_that_was_acked() {
    const ROUNDS: usize = 20;
    const PAIRS: usize = 4;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Chatd::start(dir.path(), &[]).await;
    let mut senders = Vec::new();
    for pair in 0..PAIRS {
        let (name, peer) = (format!("crash-a{pair}"), format!("crash-b{pair}"));
        server.user(&peer).await;
        let token = server.user(&name).await;
        senders.push(CrashSender {
            name,
            peer,
            token,
            next_seq: 0,
            unacked: BTreeMap::new(),
            acked: BTreeMap::new(),
            resent: 0,
            stored_before_kill: 0,
        });
    }

    let mut survived = 0;
    let mut integrity_checks = 0;
    for round in 0..ROUNDS {
        if round > 0 {
            server.restart().await;
        }
        let (ready, mut connected) = mpsc::channel(PAIRS);
        let tasks: Vec<_> =
            senders.drain(..).map(|s| tokio::spawn(crash_sender(server.port, s, false, ready.clone()))).collect();
        drop(ready);
        for _ in 0..PAIRS {
            let up = tokio::time::timeout(Duration::from_secs(10), connected.recv()).await;
            assert!(matches!(up, Ok(Some(()))), "round {round}: a sender could not connect:\n{}", server.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(50..=400))).await;
        server.kill9();
        for task in tasks {
            senders.push(task.await.expect("sender task"));
        }
        survived += 1;
        if round % 5 == 4 {
            assert_eq!(integrity_check(dir.path()), "ok", "after round {round}");
            integrity_checks += 1;
        }
    }

    // One more life without a kill: every unacked send is resent with its client_id until acked.
    server.restart().await;
    let (ready, _connected) = mpsc::channel(PAIRS);
    let tasks: Vec<_> = senders.drain(..).map(|s| tokio::spawn(crash_sender(server.port, s, true, ready.clone()))).collect();
    for task in tasks {
        let s = tokio::time::timeout(Duration::from_secs(30), task).await.expect("resends are acked").expect("sender task");
        assert!(s.unacked.is_empty(), "{} still has unacked sends: {:?}", s.name, s.unacked);
        senders.push(s);
    }
    for s in &senders {
        let mut acked: Vec<i64> = s.acked.values().copied().collect();
        acked.sort_unstable();
        assert_eq!(server.history_ids(&s.token, &s.peer).await, acked, "history of {} with {}", s.name, s.peer);
    }
    server.stop().await;

    let stored = server.export();
    let by_key = check_stored(&stored);
    let sent: u64 = senders.iter().map(|s| s.next_seq).sum();
    assert_eq!(stored.len() as u64, sent, "every send landed exactly once");
    for s in &senders {
        assert_eq!(s.acked.len() as u64, s.next_seq);
        for (cid, id) in &s.acked {
            let message = by_key.get(&(s.name.clone(), cid.clone())).unwrap_or_else(|| panic!("acked {cid} is not stored"));
            assert_eq!(message.id, *id, "{cid} is stored under another id than its ack named");
            assert_eq!(message.body, body(&s.name, seq_of(cid)));
            assert_eq!(message.to, s.peer);
        }
    }
    assert_eq!(integrity_check(dir.path()), "ok");
    integrity_checks += 1;
    println!(
        "crash: survived {survived} kill -9 rounds; {} messages checked, ids 1..={} gap-free; {} resends, {} of them \
         committed before a kill but never acked (each returned once); integrity_check ok {integrity_checks} times",
        stored.len(),
        stored.len(),
        senders.iter().map(|s| s.resent).sum::<u64>(),
        senders.iter().map(|s| s.stored_before_kill).sum::<u64>(),
    );
}

// ---------------------------------------------------------------------------------------------
// 2. SIGTERM under load

/// What one sender saw: acked client_ids with their ids, and sends that never got an answer.
#[derive(Default)]
struct SendLog {
    acked: BTreeMap<String, i64>,
    unacked: BTreeSet<String>,
}

/// Keeps a window of WebSocket sends in flight until the server closes the socket; returns the
/// close code and what was acked.
async fn sender_until_closed(port: u16, name: String, peer: String, token: String, acks: Arc<AtomicU64>) -> (String, Option<u16>, SendLog) {
    const WINDOW: usize = 32;
    let mut ws = open_ws(port).await.expect("connects");
    authenticate(&mut ws, &token).await.expect("authenticates");
    let mut log = SendLog::default();
    let mut seq = 0;
    let mut sending = true;
    loop {
        while sending && log.unacked.len() < WINDOW {
            let cid = client_id(&name, seq);
            log.unacked.insert(cid.clone());
            sending = send_message(&mut ws, &peer, &body(&name, seq), &cid).await;
            seq += 1;
        }
        match next_frame(&mut ws, Duration::from_secs(15)).await {
            Incoming::Frame(frame) if frame["type"] == "ack" => {
                let cid = frame["client_id"].as_str().unwrap().to_owned();
                assert!(log.unacked.remove(&cid), "{name}: unexpected ack {frame}");
                assert_eq!(frame["message"]["body"], body(&name, seq_of(&cid)));
                log.acked.insert(cid, frame["message"]["id"].as_i64().unwrap());
                acks.fetch_add(1, Ordering::Relaxed);
            }
            Incoming::Frame(frame) if frame["type"] == "error" => panic!("{name}: error frame {frame}"),
            Incoming::Frame(_) => {}
            Incoming::Closed(code) => return (name, code, log),
            Incoming::Gone => return (name, None, log),
        }
    }
}

/// Reads until the server closes the socket; returns the close code.
async fn reader_until_closed(port: u16, token: String) -> Option<u16> {
    let mut ws = open_ws(port).await.expect("connects");
    authenticate(&mut ws, &token).await.expect("authenticates");
    loop {
        match next_frame(&mut ws, Duration::from_secs(15)).await {
            Incoming::Frame(_) => {}
            Incoming::Closed(code) => return code,
            Incoming::Gone => return None,
        }
    }
}

/// REST sends one after another until the server stops answering.
async fn rest_sender_until_refused(server_url: String, name: String, peer: String, token: String, acks: Arc<AtomicU64>) -> (String, SendLog) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    let mut log = SendLog::default();
    for seq in 0.. {
        let cid = client_id(&name, seq);
        log.unacked.insert(cid.clone());
        let sent = http
            .post(format!("{server_url}/api/messages/{peer}"))
            .bearer_auth(&token)
            .json(&json!({"body": body(&name, seq), "client_id": cid}))
            .send()
            .await;
        let Ok(response) = sent else { break };
        let status = response.status().as_u16();
        let Ok(answer) = response.json::<Value>().await else { break };
        if status != 201 {
            assert!(status == 503, "{name}: {status} {answer}");
            break;
        }
        log.unacked.remove(&cid);
        log.acked.insert(cid, answer["id"].as_i64().unwrap());
        acks.fetch_add(1, Ordering::Relaxed);
    }
    (name, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_acks_only_what_is_stored_and_closes_with_1001() {
    const PAIRS: usize = 4;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Chatd::start(dir.path(), &[]).await;
    let acks = Arc::new(AtomicU64::new(0));
    let mut tokens = HashMap::new();
    let mut ws_senders = Vec::new();
    let mut readers = Vec::new();
    let mut rest_senders = Vec::new();
    for pair in 0..PAIRS {
        let (name, peer) = (format!("term-a{pair}"), format!("term-b{pair}"));
        let peer_token = server.user(&peer).await;
        let token = server.user(&name).await;
        tokens.insert(name.clone(), token.clone());
        readers.push(tokio::spawn(reader_until_closed(server.port, peer_token)));
        ws_senders.push(tokio::spawn(sender_until_closed(server.port, name, peer.clone(), token, acks.clone())));
        if pair < 2 {
            let rest_name = format!("term-r{pair}");
            let token = server.user(&rest_name).await;
            tokens.insert(rest_name.clone(), token.clone());
            rest_senders.push(tokio::spawn(rest_sender_until_refused(server.url(""), rest_name, peer, token, acks.clone())));
        }
    }
    let loaded = Instant::now();
    while acks.load(Ordering::Relaxed) < 2000 && loaded.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(rand::random_range(0..200))).await;
    let acked_before_signal = acks.load(Ordering::Relaxed);
    let (status, took) = server.terminate().await;
    assert!(status.success(), "chatd exited with {status}:\n{}", server.log_tail());
    assert!(took < Duration::from_secs(10), "chatd took {took:?} to exit after SIGTERM");

    let mut logs: Vec<(String, SendLog)> = Vec::new();
    let mut sockets = 0;
    for task in ws_senders {
        let (name, code, log) = task.await.unwrap();
        assert_eq!(code, Some(1001), "{name}'s socket");
        sockets += 1;
        logs.push((name, log));
    }
    for task in readers {
        assert_eq!(task.await.unwrap(), Some(1001), "a receiving socket");
        sockets += 1;
    }
    for task in rest_senders {
        logs.push(task.await.unwrap());
    }

    // Everything acked is stored under the id its ack named.
    let stored = server.export();
    let by_key = check_stored(&stored);
    let mut acked = 0;
    for (name, log) in &logs {
        for (cid, id) in &log.acked {
            let message = by_key.get(&(name.clone(), cid.clone())).unwrap_or_else(|| panic!("acked {name}/{cid} is not stored"));
            assert_eq!(message.id, *id);
            acked += 1;
        }
    }
    // An unacked send may have been committed; resent with its client_id, it lands exactly once.
    server.restart().await;
    let (mut unacked, mut unacked_stored) = (0, 0);
    for (name, log) in &logs {
        let peer = name.replace("-a", "-b").replace("-r", "-b");
        for cid in &log.unacked {
            unacked += 1;
            let (status, answer) = server
                .post(&format!("/api/messages/{peer}"), Some(&tokens[name]), json!({"body": body(name, seq_of(cid)), "client_id": cid}))
                .await
                .unwrap();
            match by_key.get(&(name.clone(), cid.clone())) {
                Some(message) => {
                    unacked_stored += 1;
                    assert_eq!((status, answer["id"].as_i64()), (200, Some(message.id)), "resend of stored {name}/{cid}: {answer}");
                }
                None => assert_eq!(status, 201, "resend of {name}/{cid}: {answer}"),
            }
        }
    }
    server.stop().await;
    let after = server.export();
    check_stored(&after);
    assert_eq!(after.len(), acked + unacked, "every send is stored exactly once after the resends");
    assert_eq!(integrity_check(dir.path()), "ok");
    println!(
        "shutdown: SIGTERM after {acked_before_signal} acks; exited 0 in {} ms; {sockets}/{sockets} sockets closed with 1001; \
         {acked} acked and stored, {unacked} in flight unacked ({unacked_stored} of them committed, returned once on resend)",
        took.as_millis()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Reconnects through dropped sockets and server restarts

/// One user's device: sends its own sequence to its peer and receives the peer's, across any
/// number of socket lifetimes, the way the protocol tells a client to.
struct Device {
    name: String,
    peer: String,
    token: String,
    total: u64,
    next_seq: u64,
    unacked: BTreeSet<u64>,
    acked: BTreeMap<u64, i64>,
    /// The highest id up to which this device holds everything involving it (the `sync` cursor).
    cursor: i64,
    /// The peer's messages: id → the peer's sequence number.
    received: BTreeMap<i64, u64>,
    /// Ids seen on sockets that closed before their `sync_done`: the next `sync` may repeat them.
    unconfirmed: HashSet<i64>,
    lifetimes: u64,
    repeated_after_incomplete_sync: u64,
}

impl Device {
    fn done(&self) -> bool {
        self.acked.len() as u64 == self.total && self.received.len() as u64 == self.total
    }
}

const DEVICE_WINDOW: usize = 16;
const DEVICE_PACE: Duration = Duration::from_millis(6);

/// One socket lifetime. Returns true when the device has everything and closed on purpose.
async fn device_lifetime(port: u16, d: &mut Device, drop_now: &Notify) -> (bool, bool) {
    let Some(mut ws) = open_ws(port).await else { return (false, false) };
    if authenticate(&mut ws, &d.token).await.is_none() {
        return (false, false);
    }
    d.lifetimes += 1;
    let mut seen = HashSet::new();
    let mut synced = false;
    let mut highest = d.cursor;
    let mut ok = send_json(&mut ws, json!({"type": "sync", "after": d.cursor})).await;
    for seq in d.unacked.clone() {
        ok = ok && send_message(&mut ws, &d.peer, &body(&d.name, seq), &client_id(&d.name, seq)).await;
    }
    let mut pace = tokio::time::interval(DEVICE_PACE);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let finished = loop {
        if !ok {
            break false;
        }
        if d.done() {
            let _ = ws.close(None).await;
            break true;
        }
        let can_send = d.unacked.len() < DEVICE_WINDOW && d.next_seq < d.total;
        tokio::select! {
            _ = drop_now.notified() => break false, // the socket is dropped without a close frame
            _ = pace.tick(), if can_send => {
                let seq = d.next_seq;
                d.next_seq += 1;
                d.unacked.insert(seq);
                ok = send_message(&mut ws, &d.peer, &body(&d.name, seq), &client_id(&d.name, seq)).await;
            }
            incoming = next_frame(&mut ws, Duration::from_secs(20)) => {
                let Incoming::Frame(frame) = incoming else { break false };
                let id = match frame["type"].as_str() {
                    Some("ack") => {
                        let message = &frame["message"];
                        let seq = seq_of(message["client_id"].as_str().unwrap());
                        let id = message["id"].as_i64().unwrap();
                        assert_eq!(message["body"], body(&d.name, seq), "{frame}");
                        own_message_stored(d, seq, id);
                        id
                    }
                    Some("receive_message") => {
                        let message = &frame["message"];
                        let id = message["id"].as_i64().unwrap();
                        assert!(seen.insert(id), "{}: message {id} arrived twice on one socket", d.name);
                        let seq = seq_of(message["client_id"].as_str().unwrap());
                        if message["from"] == d.peer.as_str() {
                            assert_eq!(message["body"], body(&d.peer, seq), "{frame}");
                            if let Some(earlier) = d.received.insert(id, seq) {
                                assert_eq!(earlier, seq);
                                assert!(
                                    d.unconfirmed.contains(&id),
                                    "{}: message {id} arrived again although a completed sync covered it",
                                    d.name
                                );
                                d.repeated_after_incomplete_sync += 1;
                            }
                        } else {
                            // My own message (from `sync`): it was stored even if its ack was lost.
                            assert_eq!(message["from"], d.name.as_str(), "{frame}");
                            own_message_stored(d, seq, id);
                        }
                        id
                    }
                    Some("sync_done") => {
                        synced = true;
                        frame["last_id"].as_i64().unwrap()
                    }
                    // e.g. `unavailable` while the server shuts down: resend after reconnecting.
                    Some("error") => break false,
                    _ => continue,
                };
                highest = highest.max(id);
                if synced {
                    // After `sync_done` this socket holds everything up to what it has seen.
                    d.cursor = d.cursor.max(highest);
                }
            }
        }
    };
    if !synced {
        d.unconfirmed.extend(seen);
    }
    (true, finished)
}

fn own_message_stored(d: &mut Device, seq: u64, id: i64) {
    d.unacked.remove(&seq);
    if let Some(earlier) = d.acked.insert(seq, id) {
        assert_eq!(earlier, id, "{}: message {seq} acked under two ids", d.name);
    }
}

/// Reconnects with exponential backoff and jitter until the device has everything.
async fn run_device(port: u16, mut d: Device, drop_now: Arc<Notify>, deadline: Instant) -> Device {
    let mut backoff = Duration::from_millis(50);
    loop {
        assert!(
            Instant::now() < deadline,
            "{} did not finish: {} of {} acked, {} of {} received",
            d.name,
            d.acked.len(),
            d.total,
            d.received.len(),
            d.total
        );
        let (connected, finished) = device_lifetime(port, &mut d, &drop_now).await;
        if finished {
            return d;
        }
        if connected {
            backoff = Duration::from_millis(50);
        }
        tokio::time::sleep(backoff.mul_f64(rand::random_range(0.5..1.5))).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_clients_get_every_message_once_in_order_through_restarts() {
    const PAIRS: usize = 4;
    const MESSAGES: u64 = 10_000;
    const RESTARTS: usize = 8;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Chatd::start(dir.path(), &[]).await;
    let per_device = MESSAGES / (PAIRS as u64 * 2);
    let mut devices = Vec::new();
    for pair in 0..PAIRS {
        let names = [format!("recon-a{pair}"), format!("recon-b{pair}")];
        for (name, peer) in [(&names[0], &names[1]), (&names[1], &names[0])] {
            devices.push(Device {
                name: name.clone(),
                peer: peer.clone(),
                token: server.user(name).await,
                total: per_device,
                next_seq: 0,
                unacked: BTreeSet::new(),
                acked: BTreeMap::new(),
                cursor: 0,
                received: BTreeMap::new(),
                unconfirmed: HashSet::new(),
                lifetimes: 0,
                repeated_after_incomplete_sync: 0,
            });
        }
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(85);
    let drops: Vec<Arc<Notify>> = devices.iter().map(|_| Arc::new(Notify::new())).collect();
    let tasks: Vec<JoinHandle<Device>> =
        devices.into_iter().zip(&drops).map(|(d, drop_now)| tokio::spawn(run_device(server.port, d, drop_now.clone(), deadline))).collect();

    let (mut kills, mut graceful, mut dropped) = (0, 0, 0);
    let mut next_restart = Instant::now() + Duration::from_millis(800);
    while !tasks.iter().all(|t| t.is_finished()) {
        assert!(Instant::now() < deadline, "the clients did not finish in time:\n{}", server.log_tail());
        tokio::time::sleep(Duration::from_millis(rand::random_range(60..200))).await;
        if kills + graceful < RESTARTS && Instant::now() >= next_restart {
            if (kills + graceful) % 2 == 0 {
                server.kill9();
                kills += 1;
            } else {
                server.stop().await;
                graceful += 1;
            }
            tokio::time::sleep(Duration::from_millis(rand::random_range(0..300))).await;
            server.restart().await;
            next_restart = Instant::now() + Duration::from_millis(rand::random_range(500..1200));
        } else {
            drops[rand::random_range(0..drops.len())].notify_one();
            dropped += 1;
        }
    }
    let mut devices = Vec::new();
    for task in tasks {
        devices.push(task.await.expect("device task"));
    }
    let elapsed = started.elapsed();
    assert!(kills >= 2 && graceful >= 2, "the traffic ended before the restarts: {kills} kills, {graceful} graceful");

    // Every receiver holds exactly the peer's sequence, in order, once.
    for d in &devices {
        let sequence: Vec<u64> = d.received.values().copied().collect();
        assert_eq!(sequence, (0..d.total).collect::<Vec<_>>(), "{} got {}'s messages out of order or not once", d.name, d.peer);
        assert_eq!(d.acked.len() as u64, d.total);
    }
    server.stop().await;
    let stored = server.export();
    let by_key = check_stored(&stored);
    assert_eq!(stored.len() as u64, MESSAGES);
    for d in &devices {
        for (seq, id) in &d.acked {
            assert_eq!(by_key[&(d.name.clone(), client_id(&d.name, *seq))].id, *id);
        }
        let peer = devices.iter().find(|p| p.name == d.peer).unwrap();
        let sent: BTreeMap<i64, u64> = peer.acked.iter().map(|(seq, id)| (*id, *seq)).collect();
        assert_eq!(d.received, sent, "{} received exactly what {} sent", d.name, d.peer);
    }
    assert_eq!(integrity_check(dir.path()), "ok");
    println!(
        "reconnect: {MESSAGES} messages over {} devices in {:.1} s; {kills} kill -9 and {graceful} graceful restarts, {dropped} \
         dropped sockets, {} socket lifetimes; every receiver got its peer's sequence once and in order ({} messages \
         repeated by a sync after a socket closed before its sync_done)",
        devices.len(),
        elapsed.as_secs_f64(),
        devices.iter().map(|d| d.lifetimes).sum::<u64>(),
        devices.iter().map(|d| d.repeated_after_incomplete_sync).sum::<u64>(),
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Write contention

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 50 {
            failures.push(what);
        }
    }

    /// Counts a REST answer: `expected`, or a failure (any 5xx and any "database is locked" included).
    fn check(&self, kind: &str, expected: u16, answer: reqwest::Result<(u16, Value)>) {
        match answer {
            Ok((status, _)) if status == expected => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, body)) => self.fail(format!("{kind}: {status} {body}")),
            Err(error) => self.fail(format!("{kind}: {error}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_writers_never_see_database_is_locked() {
    const WRITERS: usize = 50;
    const USERS: usize = 20;
    let seconds: u64 = std::env::var("FAULTS_CONTENTION_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Chatd::start(dir.path(), &[("CHATD_LOG__LEVEL", "info"), ("CHATD_LOG__FORMAT", "json")]).await;
    let mut users = Vec::new();
    for i in 0..USERS {
        let name = format!("busy{i}");
        let token = server.user(&name).await;
        users.push((name, token));
    }
    // Every user has a conversation with the next one, so read markers have something to move.
    for i in 0..USERS {
        let (name, token) = &users[i];
        let peer = &users[(i + 1) % USERS].0;
        let (status, body) = server
            .post(&format!("/api/messages/{peer}"), Some(token), json!({"body": "hello", "client_id": format!("{name}-seed")}))
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let server = Arc::new(server);
    let users = Arc::new(users);
    let stop = Arc::new(AtomicBool::new(false));
    let tallies: Arc<[Tally; 4]> = Arc::new(Default::default());
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (server, users, stop, tallies) = (server.clone(), users.clone(), stop.clone(), tallies.clone());
        writers.push(tokio::spawn(async move {
            let (name, token) = users[writer % USERS].clone();
            let peer = users[(writer % USERS + 1) % USERS].0.clone();
            let mut n = 0u64;
            match writer % 4 {
                // REST sends.
                0 => {
                    while !stop.load(Ordering::Relaxed) {
                        let cid = format!("{name}-rest{writer}-{n}");
                        let answer = server.post(&format!("/api/messages/{peer}"), Some(&token), json!({"body": "busy", "client_id": cid})).await;
                        tallies[0].check("REST send", 201, answer);
                        n += 1;
                    }
                }
                // WebSocket sends, a few in flight.
                1 => {
                    let mut ws = open_ws(server.port).await.expect("connects");
                    authenticate(&mut ws, &token).await.expect("authenticates");
                    let mut in_flight = 0;
                    while !stop.load(Ordering::Relaxed) || in_flight > 0 {
                        while !stop.load(Ordering::Relaxed) && in_flight < 8 {
                            let cid = format!("{name}-ws{writer}-{n}");
                            n += 1;
                            assert!(send_message(&mut ws, &peer, "busy", &cid).await, "the socket stays open");
                            in_flight += 1;
                        }
                        match next_frame(&mut ws, Duration::from_secs(30)).await {
                            Incoming::Frame(frame) if frame["type"] == "ack" => {
                                in_flight -= 1;
                                tallies[1].ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Incoming::Frame(frame) if frame["type"] == "error" => {
                                in_flight -= 1;
                                tallies[1].fail(format!("WebSocket send: {frame}"));
                            }
                            Incoming::Frame(_) => {}
                            _ => {
                                tallies[1].fail("WebSocket send: the socket closed".into());
                                break;
                            }
                        }
                    }
                    let _ = ws.close(None).await;
                }
                // Sign-ups, each followed by a sign-in (a session row).
                2 => {
                    while !stop.load(Ordering::Relaxed) {
                        let fresh = format!("new{writer}x{n}");
                        n += 1;
                        let credentials = json!({"username": fresh, "password": PASSWORD});
                        tallies[2].check("sign-up", 201, server.post("/api/signup", None, credentials.clone()).await);
                        tallies[2].check("sign-in", 200, server.post("/api/signin", None, credentials).await);
                    }
                }
                // Read markers, over REST and the WebSocket.
                _ => {
                    let mut ws = open_ws(server.port).await.expect("connects");
                    authenticate(&mut ws, &token).await.expect("authenticates");
                    let previous = users[(writer % USERS + USERS - 1) % USERS].0.clone();
                    while !stop.load(Ordering::Relaxed) {
                        let answer = server.post(&format!("/api/messages/{previous}/read"), Some(&token), json!({"up_to": 1_i64 << 40})).await;
                        tallies[3].check("read marker", 200, answer);
                        let ok = send_json(&mut ws, json!({"type": "read", "peer": peer, "up_to": 1_i64 << 40})).await
                            && send_json(&mut ws, json!({"type": "ping"})).await;
                        assert!(ok, "the socket stays open");
                        // Everything up to the pong has been handled; error frames are failures.
                        loop {
                            match next_frame(&mut ws, Duration::from_secs(30)).await {
                                Incoming::Frame(frame) if frame["type"] == "pong" => break,
                                Incoming::Frame(frame) if frame["type"] == "error" => tallies[3].fail(format!("read frame: {frame}")),
                                Incoming::Frame(_) => {}
                                _ => {
                                    tallies[3].fail("read frame: the socket closed".into());
                                    return;
                                }
                            }
                        }
                        tallies[3].ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(60), writer).await.expect("writers stop").expect("writer task");
    }
    let mut server = Arc::into_inner(server).expect("no other owner");
    server.stop().await;

    let kinds = ["REST sends", "WebSocket sends", "sign-ups and sign-ins", "read markers"];
    let mut failures = Vec::new();
    for (kind, tally) in kinds.iter().zip(tallies.iter()) {
        let ok = tally.ok.load(Ordering::Relaxed);
        assert!(ok > 0, "no {kind} succeeded");
        failures.extend(tally.failures.lock().unwrap().iter().cloned());
    }
    assert!(failures.is_empty(), "{} failures under contention, e.g.:\n{}", failures.len(), failures.join("\n"));
    let log = server.log_text();
    let locked: Vec<&str> = log.lines().filter(|l| l.to_lowercase().contains("database is locked")).collect();
    assert!(locked.is_empty(), "the server log mentions a locked database:\n{}", locked.join("\n"));
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(r#""level":"ERROR""#)).collect();
    assert!(errors.is_empty(), "the server logged errors under contention:\n{}", errors.join("\n"));
    check_stored(&server.export());
    assert_eq!(integrity_check(dir.path()), "ok");
    println!(
        "contention: {WRITERS} writers x {seconds} s, no 5xx and no \"database is locked\" in {} log lines: {}",
        log.lines().count(),
        kinds.iter().zip(tallies.iter()).map(|(k, t)| format!("{} {k}", t.ok.load(Ordering::Relaxed))).collect::<Vec<_>>().join(", ")
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Slow clients

/// This process's open-file limit, as a shell started from it reports it.
fn open_file_limit() -> usize {
    let output = Command::new("sh").args(["-c", "ulimit -n"]).output().expect("sh runs");
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if text == "unlimited" { usize::MAX } else { text.parse().expect("ulimit -n prints a number") }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        if stream.writable().await.is_err() {
            return false;
        }
        match stream.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return false,
        }
    }
    true
}

/// True when the server has closed the connection (or answered, which ends the slow request).
fn ended_by_server(stream: &TcpStream) -> bool {
    let mut buffer = [0u8; 1024];
    !matches!(stream.try_read(&mut buffer), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
}

#[derive(Default)]
struct SlowCounters {
    held: AtomicUsize,
    ended_by_server: AtomicUsize,
}

/// Holds one request open: `start` at once, then one byte of `trickle` every 2–4 s, forever.
/// When the server ends it, the connection is opened again.
async fn hold_slow_request(port: u16, start: String, trickle: u8, counters: Arc<SlowCounters>) {
    loop {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if write_all(&stream, start.as_bytes()).await {
            counters.held.fetch_add(1, Ordering::Relaxed);
            loop {
                tokio::time::sleep(Duration::from_millis(rand::random_range(2000..4000))).await;
                if ended_by_server(&stream) || !write_all(&stream, &[trickle]).await {
                    break;
                }
            }
            counters.held.fetch_sub(1, Ordering::Relaxed);
        }
        counters.ended_by_server.fetch_add(1, Ordering::Relaxed);
    }
}

/// Close codes of silent sockets, with how long after the handshake each came.
type Closes = Arc<Mutex<Vec<(Option<u16>, Duration)>>>;

/// Opens a WebSocket and never authenticates; records the close code and how long after the
/// handshake it came, then does it again.
async fn hold_silent_socket(port: u16, counters: Arc<SlowCounters>, closes: Closes) {
    loop {
        let Some(mut ws) = open_ws(port).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let opened = Instant::now();
        counters.held.fetch_add(1, Ordering::Relaxed);
        let code = match next_frame(&mut ws, Duration::from_secs(15)).await {
            Incoming::Closed(code) => code,
            Incoming::Frame(frame) => panic!("an unauthenticated socket got {frame}"),
            Incoming::Gone => None,
        };
        counters.held.fetch_sub(1, Ordering::Relaxed);
        closes.lock().unwrap().push((code, opened.elapsed()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_starve_a_fresh_sign_in() {
    const WANTED: usize = 2000;
    const AUTH_TIMEOUT: Duration = Duration::from_secs(2);
    let _serial = SERIAL.lock().await;
    let limit = open_file_limit();
    // Each held connection is one descriptor here (the server is another process); keep some spare.
    let target = WANTED.min(limit.saturating_sub(300)).max(100);
    if target < WANTED {
        println!("slow clients: the open-file limit is {limit}; holding {target} slow connections instead of {WANTED}");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = Chatd::start(dir.path(), &[("CHATD_WEBSOCKET__AUTH_TIMEOUT_SECS", "2"), ("CHATD_LOG__LEVEL", "warn")]).await;
    let port = server.port;
    let (headers, bodies) = (target / 2, target / 4);
    let sockets = target - headers - bodies;

    let (requests, silent) = (Arc::new(SlowCounters::default()), Arc::new(SlowCounters::default()));
    let closes = Arc::new(Mutex::new(Vec::new()));
    let mut holders = Vec::new();
    for i in 0..target {
        holders.push(if i < headers {
            let start = format!("GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ");
            tokio::spawn(hold_slow_request(port, start, b'a', requests.clone()))
        } else if i < headers + bodies {
            let start = format!(
                "POST /api/signup HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{{"
            );
            tokio::spawn(hold_slow_request(port, start, b' ', requests.clone()))
        } else {
            tokio::spawn(hold_silent_socket(port, silent.clone(), closes.clone()))
        });
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    let held = || requests.held.load(Ordering::Relaxed) + silent.held.load(Ordering::Relaxed);
    let opening = Instant::now();
    while held() < target * 95 / 100 {
        assert!(opening.elapsed() < Duration::from_secs(20), "only {} of {target} slow connections opened", held());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A fresh client (new connections every time) signs up and in while they are held.
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(10)).build().unwrap();
    let (mut slowest_signup, mut slowest_signin, mut fewest_held) = (Duration::ZERO, Duration::ZERO, usize::MAX);
    for round in 0..6 {
        fewest_held = fewest_held.min(held());
        let credentials = json!({"username": format!("fresh{round}"), "password": PASSWORD});
        let started = Instant::now();
        let signup = fresh.post(server.url("/api/signup")).json(&credentials).send().await.expect("sign-up answers");
        let signup_took = started.elapsed();
        assert_eq!(signup.status(), 201);
        let started = Instant::now();
        let signin = fresh.post(server.url("/api/signin")).json(&credentials).send().await.expect("sign-in answers");
        let signin_took = started.elapsed();
        assert_eq!(signin.status(), 200);
        assert!(signup_took < Duration::from_secs(1), "sign-up took {signup_took:?} with {} slow connections held", held());
        assert!(signin_took < Duration::from_secs(1), "sign-in took {signin_took:?} with {} slow connections held", held());
        slowest_signup = slowest_signup.max(signup_took);
        slowest_signin = slowest_signin.max(signin_took);
        fewest_held = fewest_held.min(held());
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    for holder in &holders {
        holder.abort();
    }
    for holder in holders {
        let _ = holder.await;
    }
    assert!(fewest_held >= target * 9 / 10, "only {fewest_held} of {target} slow connections were held while signing in");

    // Every unauthenticated socket was closed with 4401 at the auth deadline.
    let closes = std::mem::take(&mut *closes.lock().unwrap());
    assert!(closes.len() >= sockets, "only {} of {sockets} silent sockets were closed", closes.len());
    for (code, after) in &closes {
        assert_eq!(*code, Some(4401), "an unauthenticated socket closed after {after:?}");
        assert!(
            *after >= AUTH_TIMEOUT - Duration::from_millis(100) && *after < AUTH_TIMEOUT + Duration::from_secs(3),
            "an unauthenticated socket was closed {after:?} after its handshake (deadline {AUTH_TIMEOUT:?})"
        );
    }
    let latest = closes.iter().map(|(_, after)| *after).max().unwrap();
    server.stop().await;
    println!(
        "slow clients: {target} held ({headers} trickling headers, {bodies} trickling bodies, {sockets} silent sockets; at least \
         {fewest_held} open at every measurement); slowest sign-up {} ms, slowest sign-in {} ms; {} silent sockets closed \
         with 4401 within {} ms of the handshake (deadline 2 s); {} slow requests ended by the server",
        slowest_signup.as_millis(),
        slowest_signin.as_millis(),
        closes.len(),
        latest.as_millis(),
        requests.ended_by_server.load(Ordering::Relaxed),
    );
}

// ---------------------------------------------------------------------------------------------
// The change stream under membership changes, disconnects and kill -9

/// Frames that carry a stream id: messages and the events of a conversation.
fn stream_id(frame: &Value) -> Option<i64> {
    match frame["type"].as_str()? {
        "receive_message" => frame["message"]["id"].as_i64(),
        "conversation_created" | "member_added" | "member_removed" | "conversation_updated" | "role_changed"
        | "conversation_removed" => frame["id"].as_i64(),
        _ => None,
    }
}

/// One socket's life as a member saw it.
#[derive(Default, Debug)]
struct Lifetime {
    ids: Vec<i64>,
    /// `sync_done.last_id`, once it came.
    synced_to: Option<i64>,
}

/// A member's client: connects, catches up from its cursor, stays a random while, drops the
/// socket (or loses it to a restart), and again, until told to finish with a complete catch-up.
async fn stream_client(port: u16, token: String, finish: Arc<AtomicBool>, seed: u64) -> Vec<Lifetime> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut lifetimes = Vec::new();
    let mut cursor = 0i64;
    loop {
        let last_round = finish.load(Ordering::SeqCst);
        let Some(mut ws) = open_ws(port).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if authenticate(&mut ws, &token).await.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let mut life = Lifetime::default();
        if !send_json(&mut ws, json!({"type": "sync", "after": cursor})).await {
            continue;
        }
        let stay = Duration::from_millis(rng.random_range(100..700));
        let started = Instant::now();
        loop {
            let wait = if last_round { Duration::from_secs(10) } else { stay.saturating_sub(started.elapsed()) };
            match next_frame(&mut ws, wait).await {
                Incoming::Frame(frame) if frame["type"] == "sync_done" => {
                    let last = frame["last_id"].as_i64().unwrap();
                    life.synced_to = Some(last);
                    cursor = cursor.max(last).max(life.ids.iter().copied().max().unwrap_or(0));
                    if last_round {
                        break;
                    }
                }
                Incoming::Frame(frame) => {
                    if let Some(id) = stream_id(&frame) {
                        life.ids.push(id);
                        if life.synced_to.is_some() {
                            cursor = cursor.max(id);
                        }
                    }
                }
                Incoming::Closed(_) | Incoming::Gone => break,
            }
            if !last_round && started.elapsed() >= stay {
                break;
            }
        }
        let complete = last_round && life.synced_to.is_some();
        lifetimes.push(life);
        if complete {
            return lifetimes;
        }
    }
}

/// Every entry of a conversation, paged oldest first, as the owner (who never leaves) reads it.
async fn timeline(server: &Chatd, token: &str, conversation: i64) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("/api/conversations/{conversation}/messages?after={after}&limit=100");
        let (status, page) = server.get(&path, token).await.unwrap();
        assert_eq!(status, 200, "{page}");
        let messages = page["messages"].as_array().unwrap().clone();
        if let Some(last) = messages.last() {
            after = last["id"].as_i64().unwrap();
        }
        entries.extend(messages);
        if page["has_more"] != true {
            return entries;
        }
    }
}

/// Who may see which entries of a conversation, replayed from its own events: each member from the
/// event that added them up to the one that removed them.
fn visible_entries(entries: &[Value]) -> HashMap<String, BTreeSet<i64>> {
    let mut since: HashMap<String, i64> = HashMap::new();
    let mut intervals: Vec<(String, i64, i64)> = Vec::new();
    for entry in entries {
        let id = entry["id"].as_i64().unwrap();
        let event = &entry["event"];
        match event["type"].as_str() {
            Some("conversation_created" | "member_added") => {
                for member in event["members"].as_array().unwrap() {
                    since.insert(member["username"].as_str().unwrap().to_owned(), id);
                }
            }
            Some("member_removed") => {
                let name = event["username"].as_str().unwrap().to_owned();
                let from = since.remove(&name).expect("a removed member was added first");
                intervals.push((name, from, id));
            }
            _ => {}
        }
    }
    intervals.extend(since.into_iter().map(|(name, from)| (name, from, i64::MAX)));
    let mut visible: HashMap<String, BTreeSet<i64>> = HashMap::new();
    for (name, from, until) in intervals {
        let ids = entries.iter().map(|e| e["id"].as_i64().unwrap()).filter(|id| (from..=until).contains(id));
        visible.entry(name).or_default().extend(ids);
    }
    visible
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_gets_every_change_once_in_order_through_membership_changes_and_kill_9() {
    use rand::{Rng, SeedableRng, seq::{IndexedMutRandom, IndexedRandom}};
    const STEPS: usize = 600;
    const KILL_EVERY: usize = 60;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Chatd::start(dir.path(), &[]).await;
    let owner = server.user("owner").await;
    let names: Vec<String> = (1..=6).map(|n| format!("member{n}")).collect();
    let mut tokens = HashMap::new();
    for name in &names {
        tokens.insert(name.clone(), server.user(name).await);
    }
    let finish = Arc::new(AtomicBool::new(false));
    let clients: Vec<(String, JoinHandle<Vec<Lifetime>>)> = names
        .iter()
        .enumerate()
        .map(|(n, name)| (name.clone(), tokio::spawn(stream_client(server.port, tokens[name].clone(), finish.clone(), n as u64))))
        .collect();

    // Two rooms and a group, each with a model of who is in it now.
    let mut conversations: Vec<(i64, &str, BTreeSet<String>)> = Vec::new();
    for (body, kind) in [
        (json!({"kind": "room", "name": "private", "visibility": "private", "members": ["member1", "member2"]}), "private"),
        (json!({"kind": "room", "name": "public", "members": ["member3"]}), "public"),
        (json!({"kind": "group", "members": ["member1", "member4"]}), "group"),
    ] {
        let initial: BTreeSet<String> = body["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect();
        let (status, created) = server.post("/api/conversations", Some(&owner), body).await.unwrap();
        assert_eq!(status, 201, "{created}");
        conversations.push((created["id"].as_i64().unwrap(), kind, initial));
    }

    let mut rng = rand::rngs::StdRng::seed_from_u64(20261202);
    let (mut sent, mut changes, mut kills) = (0, 0, 0);
    for step in 0..STEPS {
        if step > 0 && step % KILL_EVERY == 0 {
            server.kill9();
            kills += 1;
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
            server.restart().await;
        }
        // A little time between steps, so that sockets come and go in the middle of them.
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..12))).await;
        let (id, kind, members) = conversations.choose_mut(&mut rng).unwrap();
        let outsiders: Vec<String> = names.iter().filter(|n| !members.contains(*n)).cloned().collect();
        let roll = rng.random_range(0..100);
        let path = |rest: &str| format!("/api/conversations/{id}{rest}");
        if roll < 55 {
            // A message from someone in it (the owner included).
            let poster = members.iter().cloned().collect::<Vec<_>>().choose(&mut rng).cloned();
            let token = poster.as_ref().map_or(&owner, |p| &tokens[p]);
            let body = json!({"body": format!("step {step}"), "client_id": format!("s{step}")});
            let (status, message) = server.post(&path("/messages"), Some(token), body).await.unwrap();
            assert_eq!(status, 201, "step {step}: {message}");
            sent += 1;
        } else if roll < 75 && !outsiders.is_empty() {
            let newcomer = outsiders.choose(&mut rng).unwrap().clone();
            let (status, answer) = if *kind == "public" && rng.random_bool(0.5) {
                server.post(&path("/join"), Some(&tokens[&newcomer]), json!({})).await.unwrap()
            } else {
                server.post(&path("/members"), Some(&owner), json!({"usernames": [newcomer.clone()]})).await.unwrap()
            };
            assert_eq!(status, 200, "step {step}: {answer}");
            members.insert(newcomer);
            changes += 1;
        } else if roll < 92 && !members.is_empty() {
            let leaving = members.iter().cloned().collect::<Vec<_>>().choose(&mut rng).unwrap().clone();
            // In a group one can only leave; in a room the owner may also remove.
            let token = if *kind == "group" || rng.random_bool(0.5) { &tokens[&leaving] } else { &owner };
            let response = server.http.delete(server.url(&path(&format!("/members/{leaving}")))).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 204, "step {step}");
            members.remove(&leaving);
            changes += 1;
        } else {
            let body = json!({"name": format!("{kind} {step}")});
            let response = server.http.patch(server.url(&path(""))).bearer_auth(&owner).json(&body).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200, "step {step}");
            changes += 1;
        }
    }
    finish.store(true, Ordering::SeqCst);
    let mut received: HashMap<String, Vec<Lifetime>> = HashMap::new();
    for (name, client) in clients {
        received.insert(name, tokio::time::timeout(Duration::from_secs(60), client).await.expect("clients finish").unwrap());
    }

    let mut expected: HashMap<String, BTreeSet<i64>> = HashMap::new();
    for (id, ..) in &conversations {
        for (name, ids) in visible_entries(&timeline(&server, &owner, *id).await) {
            expected.entry(name).or_default().extend(ids);
        }
    }
    let (mut lifetimes_total, mut deliveries) = (0, 0);
    for name in &names {
        let lifetimes = &received[name];
        lifetimes_total += lifetimes.len();
        let got: BTreeSet<i64> = lifetimes.iter().flat_map(|l| l.ids.iter().copied()).collect();
        let want = expected.remove(name).unwrap_or_default();
        assert!(want.len() > 20, "{name} was in conversations for a while: {want:?}");
        deliveries += want.len();
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        assert!(missing.is_empty() && extra.is_empty(), "{name}: missing {missing:?}, should not have {extra:?}");
        let mut seen_in: HashMap<i64, usize> = HashMap::new();
        for (index, life) in lifetimes.iter().enumerate() {
            let once: BTreeSet<i64> = life.ids.iter().copied().collect();
            assert_eq!(once.len(), life.ids.len(), "{name}: an id twice on one socket: {:?}", life.ids);
            if let Some(last) = life.synced_to {
                // The catch-up (ids up to `last`) in order; live ones after it in order too.
                let replay: Vec<i64> = life.ids.iter().copied().filter(|id| *id <= last).collect();
                assert!(replay.windows(2).all(|w| w[0] < w[1]), "{name}: catch-up out of order: {replay:?}");
                let live: Vec<i64> = life.ids.iter().copied().filter(|id| *id > last).collect();
                assert!(live.windows(2).all(|w| w[0] < w[1]), "{name}: live frames out of order: {live:?}");
            }
            for id in &life.ids {
                if let Some(earlier) = seen_in.insert(*id, index) {
                    assert!(
                        lifetimes[earlier].synced_to.is_none(),
                        "{name}: {id} came again although the socket that had it finished its catch-up"
                    );
                }
            }
        }
    }
    eprintln!(
        "{STEPS} steps: {sent} messages, {changes} membership and name changes, {kills} kill -9, \
         {lifetimes_total} socket lifetimes, {deliveries} entries checked"
    );
    server.stop().await;
    assert_eq!(integrity_check(dir.path()), "ok");
}
