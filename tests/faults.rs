//! Fault tests against the real `chatd` binary: kill -9 during traffic, SIGTERM under load,
//! reconnects through restarts, write contention and slow clients. Each test spawns
//! `chatd serve` on a loopback port with a temporary data directory and only talks to it as a
//! client would (REST, WebSocket, raw TCP), then checks the database through `chatd export` and
//! SQLite's own `PRAGMA integrity_check`.

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
            .env("CHATD_RATE_LIMITS__SOCKETS_PER_USER", "0");
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
        into_json(request.send().await?).await
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Result<(u16, Value)> {
        into_json(self.http.get(self.url(path)).bearer_auth(token).send().await?).await
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
                    let names = row["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect();
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

async fn into_json(response: reqwest::Response) -> reqwest::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
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
    loop {
        match next_frame(ws, Duration::from_secs(10)).await {
            Incoming::Frame(frame) if frame["type"] == "ready" => return frame["last_id"].as_i64(),
            Incoming::Frame(frame) => panic!("expected ready, got {frame}"),
            _ => return None,
        }
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
            Ok(Some(Ok(WsMessage::Text(text)))) => return Incoming::Frame(serde_json::from_str(&text).expect("JSON frame")),
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
