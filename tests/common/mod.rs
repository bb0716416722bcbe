//! Test harness: a real chatd on 127.0.0.1:0 with a temporary data directory, and real HTTP and
//! WebSocket clients.
#![allow(dead_code)]

pub mod asyncapi;
pub mod database;
pub mod openapi;

pub use database::sqlite_only;

use std::{net::SocketAddr, time::Duration};

use chatd::{App, Config};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest},
};

pub const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub data_dir: TempDir,
    pub app: App,
    /// The PostgreSQL database this server made for its data directory, when the tests run there.
    database: Option<database::TestDatabase>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(data_dir, configure).await
    }

    /// A server on an existing data directory (a database made earlier, say).
    pub async fn start_in(data_dir: TempDir, configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::for_data_dir(data_dir.path());
        // Tests exercise behaviour at speed; the limits have tests of their own that turn them on.
        config.rate_limits = chatd::config::RateLimitsConfig::unlimited();
        configure(&mut config);
        let database = use_test_database(&mut config);
        let app = App::open(config).await.expect("app opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(chatd::http::serve(listener, app.clone(), async move {
            let _ = stop.await;
        }));
        Self { addr, http: reqwest::Client::new(), data_dir, app, database, shutdown: Some(shutdown), task: Some(task) }
    }

    /// Stops the server gracefully and starts a new one on the same data directory.
    pub async fn restart(mut self) -> Self {
        self.stop_in_place().await;
        let data_dir = std::mem::replace(&mut self.data_dir, tempfile::tempdir().unwrap());
        let database = self.database.take();
        let mut restarted = Self::start_in(data_dir, |_| {}).await;
        restarted.database = database;
        restarted
    }

    pub async fn stop_in_place(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task).await.expect("server stops in time").unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        into_json("POST", path, request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        into_json("GET", path, request.send().await.expect("request")).await
    }

    /// Any method, with an optional token and an optional JSON body.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let verb = method;
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        into_json(verb, path, request.send().await.expect("request")).await
    }

    pub async fn signup(&self, name: &str) -> (u16, Value) {
        self.post("/api/signup", None, json!({"username": name, "password": PASSWORD})).await
    }

    pub async fn signin(&self, name: &str) -> String {
        let (status, body) = self.post("/api/signin", None, json!({"username": name, "password": PASSWORD})).await;
        assert_eq!(status, 200, "sign-in of {name}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Signs a new user up and in.
    pub async fn user(&self, name: &str) -> TestUser {
        let (status, body) = self.signup(name).await;
        assert_eq!(status, 201, "sign-up of {name}: {body}");
        TestUser { name: name.to_owned(), token: self.signin(name).await }
    }

    /// An authenticated socket that has already received `ready` and `online_users`.
    pub async fn connect(&self, user: &TestUser) -> (WsClient, Value, Value) {
        let mut ws = WsClient::open(self).await;
        ws.send(json!({"type": "auth", "token": user.token})).await;
        let ready = ws.recv().await;
        assert_eq!(ready["type"], "ready", "{ready}");
        let online = ws.recv().await;
        assert_eq!(online["type"], "online_users", "{online}");
        (ws, ready, online)
    }

    pub async fn send_rest(&self, from: &TestUser, to: &str, body: &str, client_id: &str) -> (u16, Value) {
        self.post(&format!("/api/messages/{to}"), Some(&from.token), json!({"body": body, "client_id": client_id})).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// On PostgreSQL runs, points a configuration that names no database at its data directory's
/// test database, made now if there is none; returns the one it made.
pub fn use_test_database(config: &mut Config) -> Option<database::TestDatabase> {
    if !config.database.url.is_empty() {
        return None;
    }
    let made = database::TestDatabase::for_dir(&config.data_dir);
    config.database.url = database::url_for(&config.data_dir).unwrap_or_default();
    made
}


/// The status and JSON body (null when empty), checked against the OpenAPI document.
pub async fn into_json(method: &str, path: &str, response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    (status, openapi::checked_body(method, path, status, &headers, text))
}

/// The `chatd` binary with a configuration of the test's own: no inherited `CHATD_*` variable,
/// no `config.toml` of the repository, `data_dir` as the data directory.
pub fn chatd_cli(data_dir: &std::path::Path) -> std::process::Command {
    use assert_cmd::cargo::CommandCargoExt;
    let mut command = std::process::Command::cargo_bin("chatd").expect("the chatd binary is built");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CHATD_") {
            command.env_remove(key);
        }
    }
    command.env_remove("RUST_LOG").current_dir(data_dir).env("CHATD_DATA_DIR", data_dir);
    command.envs(database::env_for(data_dir));
    command
}

/// Runs `chatd` with `args` and returns its standard output; fails the test if it fails.
pub fn run_chatd(data_dir: &std::path::Path, args: &[&str]) -> String {
    let output = chatd_cli(data_dir).args(args).output().expect("chatd runs");
    assert!(output.status.success(), "chatd {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

pub struct TestUser {
    pub name: String,
    pub token: String,
}

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    pub async fn open(server: &TestServer) -> Self {
        let (stream, _) = connect_async(server.ws_url()).await.expect("websocket connects");
        Self { stream }
    }

    /// A socket to any server (a node of a cluster, say).
    pub async fn open_url(url: &str) -> Self {
        let (stream, _) = connect_async(url).await.expect("websocket connects");
        Self { stream }
    }

    pub async fn open_with_origin(server: &TestServer, origin: &str) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let mut request = server.ws_url().into_client_request().unwrap();
        request.headers_mut().insert("origin", origin.parse().unwrap());
        connect_async(request).await.map(|(stream, _)| Self { stream })
    }

    pub async fn send(&mut self, frame: Value) {
        self.stream.send(Message::text(frame.to_string())).await.expect("send frame");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.expect("send frame");
    }

    /// A text frame as JSON, which must be a server frame of the AsyncAPI document.
    fn frame(text: &str) -> Value {
        let frame = serde_json::from_str(text).expect("JSON frame");
        asyncapi::check_frame(&frame);
        frame
    }

    /// The next text frame as JSON; fails the test after 5 s.
    pub async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a frame within 5 s")
                .expect("socket still open")
                .expect("valid frame");
            match message {
                Message::Text(text) => return Self::frame(&text),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next text frame, or the close code (if any) when the server closes the socket first.
    pub async fn try_recv(&mut self) -> Result<Value, Option<u16>> {
        loop {
            match tokio::time::timeout(WAIT, self.stream.next()).await.expect("a frame within 5 s") {
                Some(Ok(Message::Text(text))) => return Ok(Self::frame(&text)),
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// Skips frames until one of `kind` arrives.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Asserts that nothing but pings arrives for `duration`.
    pub async fn expect_silence(&mut self, duration: Duration) {
        if let Ok(Some(Ok(message))) = tokio::time::timeout(duration, self.stream.next()).await {
            panic!("expected silence, got {message:?}");
        }
    }

    /// Waits for the server to close the socket and returns the close code.
    pub async fn closed_with(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.stream.next()).await.expect("closes in time") {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(Message::Text(text))) => {
                    Self::frame(&text);
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
