//! The part of chatd's REST and WebSocket protocol the benchmark speaks, against loopback only.
use std::{borrow::Cow, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::{net::TcpStream, sync::Semaphore};
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{Message as WsMessage, protocol::WebSocketConfig},
};

pub type Ws = WebSocketStream<TcpStream>;

pub const PASSWORD: &str = "bench-password-1";
/// Sign-ups and sign-ins in flight at once. The server's argon2 CPU is the limit, not this; more
/// in flight only adds 19 MiB of hashing memory each on the server.
const ACCOUNT_CONCURRENCY: usize = 4;
/// Sockets being opened at once.
const CONNECT_CONCURRENCY: usize = 128;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// A chatd server listening on a loopback address.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    base: String,
    http: reqwest::Client,
}

/// A user the benchmark created and signed in, and the node (an index into [`Nodes`]) it did so on.
#[derive(Clone, Debug)]
pub struct Account {
    pub username: String,
    pub token: String,
    pub node: usize,
}

/// The servers a scenario drives: one, or the nodes of a cluster on one database. Every user and
/// socket is placed on a node by index (taken modulo the node count); a token from any node is
/// good on all of them.
#[derive(Clone)]
pub struct Nodes(Arc<[Target]>);

impl Nodes {
    pub fn new(urls: &[String]) -> anyhow::Result<Self> {
        let targets = urls.iter().filter(|u| !u.trim().is_empty()).map(|u| Target::new(u.trim())).collect::<anyhow::Result<Vec<_>>>()?;
        ensure!(!targets.is_empty(), "no server URL given");
        Ok(Self(targets.into()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The node at `index`, modulo the node count.
    pub fn at(&self, index: usize) -> &Target {
        &self.0[index % self.0.len()]
    }

    /// Names placed round-robin: the i-th on node i.
    pub fn round_robin(&self, names: impl IntoIterator<Item = String>) -> Vec<(String, usize)> {
        names.into_iter().enumerate().map(|(i, name)| (name, i % self.len())).collect()
    }

    /// Signs up and signs in every user on its node, a bounded number at a time (per node); fails
    /// on the first error.
    pub async fn create_accounts(&self, users: Vec<(String, usize)>) -> anyhow::Result<Vec<Account>> {
        let limits: Vec<_> = (0..self.len()).map(|_| Arc::new(Semaphore::new(ACCOUNT_CONCURRENCY))).collect();
        let mut tasks = Vec::with_capacity(users.len());
        for (username, node) in users {
            let node = node % self.len();
            let target = self.at(node).clone();
            let limit = limits[node].clone();
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await?;
                target.sign_up(&username).await?;
                let token = target.sign_in(&username).await?;
                anyhow::Ok(Account { username, token, node })
            }));
        }
        let mut accounts = Vec::with_capacity(tasks.len());
        for task in tasks {
            accounts.push(task.await??);
        }
        Ok(accounts)
    }

    /// Opens and authenticates one socket per (token, node), in order, a bounded number at a time.
    pub async fn connect_all(&self, sockets: Vec<(String, usize)>, read_buffer: usize) -> anyhow::Result<Vec<Ws>> {
        let limit = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let mut tasks = Vec::with_capacity(sockets.len());
        for (token, node) in sockets {
            let target = self.at(node).clone();
            let limit = limit.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await?;
                target.connect(&token, read_buffer).await
            }));
        }
        let mut sockets = Vec::with_capacity(tasks.len());
        for task in tasks {
            sockets.push(task.await??);
        }
        Ok(sockets)
    }
}

/// One server frame, as much of it as the benchmark reads.
#[derive(Deserialize)]
pub struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub client_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub message: Option<FrameMessage<'a>>,
}

#[derive(Deserialize)]
pub struct FrameMessage<'a> {
    pub id: i64,
    #[serde(borrow)]
    pub body: Cow<'a, str>,
}

impl Target {
    /// Accepts `http://HOST:PORT` or `HOST:PORT`; refuses anything that is not loopback.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let authority = url.trim_start_matches("http://").trim_end_matches('/');
        let addr: SocketAddr = authority
            .replace("localhost", "127.0.0.1")
            .parse()
            .with_context(|| format!("`{url}` is not http://IP:PORT"))?;
        ensure!(addr.ip().is_loopback(), "chatd-bench only targets loopback addresses, not {}", addr.ip());
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { addr, base: format!("http://{addr}"), http })
    }

    pub async fn is_ready(&self) -> bool {
        let ready = self.http.get(format!("{}/api/ready", self.base)).timeout(Duration::from_secs(2)).send().await;
        ready.is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
    }

    pub async fn sign_up(&self, username: &str) -> anyhow::Result<()> {
        let body = serde_json::json!({ "username": username, "password": PASSWORD });
        let response = self.http.post(format!("{}/api/signup", self.base)).json(&body).send().await?;
        let status = response.status();
        ensure!(
            status.as_u16() != 429,
            "sign-up refused with 429: turn the server's abuse limits off for benchmarks \
             (CHATD_RATE_LIMITS__SIGNUPS_PER_ADDRESS_PER_HOUR=0 and friends; bench/run.sh does)"
        );
        ensure!(status.as_u16() == 201, "sign-up of {username}: HTTP {status}: {}", response.text().await.unwrap_or_default());
        Ok(())
    }

    pub async fn sign_in(&self, username: &str) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
        }
        let body = serde_json::json!({ "username": username, "password": PASSWORD });
        let response = self.http.post(format!("{}/api/signin", self.base)).json(&body).send().await?;
        let status = response.status();
        ensure!(status.is_success(), "sign-in of {username}: HTTP {status}: {}", response.text().await.unwrap_or_default());
        Ok(response.json::<Token>().await?.access_token)
    }

    /// One page of history with `peer`; returns how many messages it held.
    pub async fn history_page(&self, token: &str, peer: &str, limit: u32, before: Option<i64>) -> anyhow::Result<usize> {
        #[derive(Deserialize)]
        struct Page {
            messages: Vec<serde::de::IgnoredAny>,
        }
        let mut url = format!("{}/api/messages/{peer}?limit={limit}", self.base);
        if let Some(before) = before {
            url.push_str(&format!("&before={before}"));
        }
        let response = self.http.get(url).bearer_auth(token).send().await?;
        let status = response.status();
        ensure!(status.is_success(), "history with {peer}: HTTP {status}");
        Ok(response.json::<Page>().await?.messages.len())
    }

    /// Creates a room owned by the holder of `token` with `members` in it; returns its id.
    pub async fn create_room(&self, token: &str, name: &str, members: &[Account]) -> anyhow::Result<i64> {
        #[derive(Deserialize)]
        struct Created {
            id: i64,
        }
        // At most 1,000 names per request.
        let mut chunks = members.chunks(1000);
        let first: Vec<&str> = chunks.next().unwrap_or_default().iter().map(|a| a.username.as_str()).collect();
        let body = serde_json::json!({ "kind": "room", "name": name, "visibility": "private", "members": first });
        let response = self.http.post(format!("{}/api/conversations", self.base)).bearer_auth(token).json(&body).send().await?;
        let status = response.status();
        ensure!(status.as_u16() == 201, "creating room {name}: HTTP {status}: {}", response.text().await.unwrap_or_default());
        let id = response.json::<Created>().await?.id;
        for chunk in chunks {
            let names: Vec<&str> = chunk.iter().map(|a| a.username.as_str()).collect();
            let url = format!("{}/api/conversations/{id}/members", self.base);
            let response = self.http.post(url).bearer_auth(token).json(&serde_json::json!({ "usernames": names })).send().await?;
            ensure!(response.status().is_success(), "adding members to room {name}: HTTP {}", response.status());
        }
        Ok(id)
    }

    /// Opens `/ws`, authenticates, and waits for `ready` and `online_users`.
    pub async fn connect(&self, token: &str, read_buffer: usize) -> anyhow::Result<Ws> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.connect_inner(token, read_buffer))
            .await
            .context("WebSocket handshake timed out")?
    }

    async fn connect_inner(&self, token: &str, read_buffer: usize) -> anyhow::Result<Ws> {
        let tcp = TcpStream::connect(self.addr).await.context("connect to chatd")?;
        tcp.set_nodelay(true)?;
        let config = WebSocketConfig::default().read_buffer_size(read_buffer).write_buffer_size(0);
        let (mut ws, _) = client_async_with_config(format!("ws://{}/ws", self.addr), tcp, Some(config)).await?;
        let auth = serde_json::json!({ "type": "auth", "token": token }).to_string();
        ws.send(WsMessage::text(auth)).await?;
        let (mut ready, mut online) = (false, false);
        for _ in 0..16 {
            let Some(frame) = ws.next().await else { bail!("socket closed during auth") };
            match frame? {
                WsMessage::Text(text) => match parse_frame(&text)?.kind.as_ref() {
                    "ready" => ready = true,
                    "online_users" => online = true,
                    "presence" => {}
                    other => bail!("unexpected `{other}` frame during auth: {}", text.as_str()),
                },
                WsMessage::Close(close) => bail!("socket closed during auth: {close:?}"),
                _ => {}
            }
            if ready && online {
                return Ok(ws);
            }
        }
        bail!("no ready/online_users after auth")
    }
}

pub fn parse_frame(text: &str) -> anyhow::Result<Frame<'_>> {
    serde_json::from_str(text).with_context(|| format!("bad frame from server: {text}"))
}

/// The `send_message` frame. The body carries the send time and the sender's sequence number.
pub fn send_frame(to: &str, sent_ns: u64, sender: u32, seq: u64, padding: &str) -> WsMessage {
    WsMessage::text(format!(
        r#"{{"type":"send_message","to":"{to}","body":"t={sent_ns} s={sender} q={seq}{padding}","client_id":"c{seq}"}}"#
    ))
}

/// What a benchmark message body says: (send time, sender index, sequence number).
pub fn parse_body(body: &str) -> Option<(u64, u32, u64)> {
    let mut parts = body.split(' ');
    let t = parts.next()?.strip_prefix("t=")?.parse().ok()?;
    let s = parts.next()?.strip_prefix("s=")?.parse().ok()?;
    let q = parts.next()?.strip_prefix("q=")?.trim_end_matches('.').parse().ok()?;
    Some((t, s, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip() {
        let WsMessage::Text(frame) = send_frame("bob", 123, 4, 5, " ....") else { panic!("text frame") };
        let value: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
        assert_eq!(parse_body(value["body"].as_str().unwrap()), Some((123, 4, 5)));
        assert_eq!(value["client_id"], "c5");
    }

    #[test]
    fn refuses_remote_targets() {
        assert!(Target::new("http://10.0.0.1:3000").is_err());
        assert!(Target::new("http://127.0.0.1:3000").is_ok());
        assert!(Nodes::new(&["http://127.0.0.1:3000".into(), "http://10.0.0.1:3000".into()]).is_err());
        assert!(Nodes::new(&[]).is_err());
    }

    #[test]
    fn users_go_round_robin_over_the_nodes() {
        let urls: Vec<String> = (0..3).map(|i| format!("http://127.0.0.1:{}", 3000 + i)).collect();
        let nodes = Nodes::new(&urls).unwrap();
        let placed = nodes.round_robin((0..5).map(|i| format!("u{i}")));
        assert_eq!(placed.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [0, 1, 2, 0, 1]);
        assert_eq!(nodes.at(4).addr.port(), 3001);
        let one = Nodes::new(&urls[..1]).unwrap();
        assert!(one.round_robin((0..3).map(|i| format!("u{i}"))).iter().all(|(_, n)| *n == 0));
    }
}
