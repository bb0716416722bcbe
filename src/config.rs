//! Configuration: built-in defaults < `config.toml` < `CHATD_*` environment variables (nested with `__`).
use std::{fmt, net::SocketAddr, path::PathBuf};

use anyhow::{Context, bail};
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// Environment variables that belong to the CLI, not to the configuration tree.
const NON_CONFIG_VARS: &[&str] = &["CONFIG", "PASSWORD"];

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address and port the server listens on.
    pub listen: String,
    /// The address people open in their browsers (`https://chat.example.com`); when set, only
    /// that origin (and `websocket.allowed_origins`) may open the WebSocket from a browser.
    pub public_url: String,
    /// Directory for `chat.db` and the generated signing secret.
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub websocket: WebSocketConfig,
    pub limits: InputLimitsConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub rate_limits: RateLimitsConfig,
    pub cluster: ClusterConfig,
    /// Proxies (IP addresses or CIDR ranges) whose `X-Forwarded-For` is believed; from anyone
    /// else the header is ignored and the socket's address is the client's.
    pub trusted_proxies: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// A sea-orm SQLite URL; empty means `sqlite://<data_dir>/chat.db`.
    pub url: String,
    /// SQLite `synchronous` setting: `full` survives power loss, `normal` survives a process crash.
    pub synchronous: String,
    /// How long a connection waits on a locked database before giving up.
    pub busy_timeout_ms: u64,
    /// Read connections (writes always go through one connection).
    pub read_connections: u32,
    /// Size (MiB) at which the write-ahead log starts over; also what it is kept at for reuse.
    pub wal_budget_mib: u64,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Lifetime of a sign-in token, in seconds.
    pub token_ttl_secs: u64,
    /// HMAC secret for tokens; empty means "generate one into the data directory on first start".
    pub jwt_secret: String,
    /// Live sessions per user; signing in beyond it revokes the oldest.
    pub max_sessions_per_user: u32,
    /// Password checks waiting per hashing thread before sign-ins get 503; 0: no bound.
    pub hash_queue_per_core: u32,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("max_sessions_per_user", &self.max_sessions_per_user)
            .field("hash_queue_per_core", &self.hash_queue_per_core)
            .field("jwt_secret", &if self.jwt_secret.is_empty() { "" } else { "<redacted>" })
            .finish()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct WebSocketConfig {
    /// Browser origins allowed besides the server's own, e.g. `https://chat.example.com`.
    pub allowed_origins: Vec<String>,
    /// Seconds a new socket has to send its `auth` frame.
    pub auth_timeout_secs: u64,
    /// Seconds between server pings; a socket silent for two intervals is closed.
    pub ping_interval_secs: u64,
    /// Seconds a write to a socket may take before the socket is dropped: a client that stops
    /// reading must not hold its socket, its memory or its presence.
    pub write_timeout_secs: u64,
    /// Bytes of frames queued for one socket before it is dropped as too slow (its client
    /// reconnects and catches up with `sync`).
    pub max_queued_bytes: usize,
}

/// Sizes of what clients may send and ask for.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct InputLimitsConfig {
    /// Largest accepted HTTP request body and WebSocket frame, in bytes.
    pub max_request_bytes: usize,
    /// Longest message body, in characters after trimming.
    pub max_message_chars: usize,
    /// Largest page of messages one history request may ask for (at most 100).
    pub max_page_size: u64,
    /// Seconds a request (headers and body) may take to arrive, on a new connection or a
    /// kept-alive one; slower ones get 408 or are disconnected.
    pub request_timeout_secs: u64,
}

/// Abuse limits; 0 means no limit (the limit is off).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitsConfig {
    /// Wrong passwords for one account from one address before that address waits.
    pub signin_failures_per_account_per_minute: u32,
    /// Wrong passwords for one account from all addresses together before the account accepts
    /// sign-ins only from addresses it has signed in from before.
    pub signin_failures_per_account_per_hour: u32,
    /// Wrong passwords from one address, whatever the account.
    pub signin_failures_per_address_per_minute: u32,
    /// Sign-in attempts, right or wrong, from one address.
    pub signins_per_address_per_minute: u32,
    /// Sign-in attempts, right or wrong, for one account from addresses it has not signed in from.
    pub signins_per_account_per_minute: u32,
    pub signups_per_address_per_hour: u32,
    /// Sustained messages per user per second, over REST and WebSocket together.
    pub messages_per_second: u32,
    /// Messages a user may send at once before the rate applies.
    pub message_burst: u32,
    /// Open WebSockets per user.
    pub sockets_per_user: u32,
    /// `sync` frames per user per minute, over all of their sockets.
    pub syncs_per_user_per_minute: u32,
    /// Open TCP connections per client address (trusted proxies are not counted).
    pub connections_per_address: u32,
    /// IPv6 clients are counted per network of this prefix length: one host usually holds a
    /// whole /64. 128 counts every address on its own.
    pub ipv6_prefix: u8,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            signin_failures_per_account_per_minute: 10,
            signin_failures_per_account_per_hour: 100,
            signin_failures_per_address_per_minute: 30,
            signins_per_address_per_minute: 60,
            signins_per_account_per_minute: 30,
            signups_per_address_per_hour: 20,
            messages_per_second: 20,
            message_burst: 60,
            sockets_per_user: 20,
            syncs_per_user_per_minute: 60,
            connections_per_address: 128,
            ipv6_prefix: 64,
        }
    }
}

impl RateLimitsConfig {
    pub fn unlimited() -> Self {
        Self {
            signin_failures_per_account_per_minute: 0,
            signin_failures_per_account_per_hour: 0,
            signin_failures_per_address_per_minute: 0,
            signins_per_address_per_minute: 0,
            signins_per_account_per_minute: 0,
            signups_per_address_per_hour: 0,
            messages_per_second: 0,
            message_burst: 0,
            sockets_per_user: 0,
            syncs_per_user_per_minute: 0,
            connections_per_address: 0,
            ipv6_prefix: 64,
        }
    }

    /// The limits set to 0, i.e. switched off.
    pub fn switched_off(&self) -> Vec<&'static str> {
        let limits = [
            ("signin_failures_per_account_per_minute", self.signin_failures_per_account_per_minute),
            ("signin_failures_per_account_per_hour", self.signin_failures_per_account_per_hour),
            ("signin_failures_per_address_per_minute", self.signin_failures_per_address_per_minute),
            ("signins_per_address_per_minute", self.signins_per_address_per_minute),
            ("signins_per_account_per_minute", self.signins_per_account_per_minute),
            ("signups_per_address_per_hour", self.signups_per_address_per_hour),
            ("messages_per_second", self.messages_per_second),
            ("sockets_per_user", self.sockets_per_user),
            ("syncs_per_user_per_minute", self.syncs_per_user_per_minute),
            ("connections_per_address", self.connections_per_address),
        ];
        limits.into_iter().filter(|(_, value)| *value == 0).map(|(name, _)| name).collect()
    }
}

/// Several nodes on one PostgreSQL database, talking over NATS.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    /// A NATS server (`nats://host:4222`) makes this node a member of a cluster; empty: alone.
    pub nats_url: String,
    /// First part of every NATS subject the nodes use: clusters sharing a NATS server need their own.
    pub subject_prefix: String,
    /// This node's name in logs; empty means the host name and process id.
    pub node_name: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { nats_url: String::new(), subject_prefix: "chatd".into(), node_name: String::new() }
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Serve Prometheus metrics at `/metrics`.
    pub enabled: bool,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub token: String,
}

impl fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("enabled", &self.enabled)
            .field("token", &if self.token.is_empty() { "" } else { "<redacted>" })
            .finish()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter such as `info` or `chatd=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:3000".into(),
            public_url: String::new(),
            data_dir: PathBuf::from("."),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            websocket: WebSocketConfig::default(),
            limits: InputLimitsConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            cluster: ClusterConfig::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: String::new(), synchronous: "full".into(), busy_timeout_ms: 5000, read_connections: 4, wal_budget_mib: 128 }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { token_ttl_secs: 7 * 24 * 3600, jwt_secret: String::new(), max_sessions_per_user: 50, hash_queue_per_core: 16 }
    }
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), auth_timeout_secs: 5, ping_interval_secs: 30, write_timeout_secs: 10, max_queued_bytes: 4 * 1024 * 1024 }
    }
}

impl InputLimitsConfig {
    /// The longest message body by default; the API document states this one.
    pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 4000;
}

impl Default for InputLimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 64 * 1024,
            max_message_chars: Self::DEFAULT_MAX_MESSAGE_CHARS,
            max_page_size: 100,
            request_timeout_secs: 15,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: "text".into(), level: "info".into() }
    }
}

impl Config {
    /// Loads the layered configuration; `file` is the `-c/--config` path (or `CHATD_CONFIG`).
    /// A missing default `config.toml` is fine; a missing file that was asked for is an error.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    bail!("configuration file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None => figment = figment.merge(Toml::file("config.toml")),
        }
        let figment = figment.merge(Env::prefixed("CHATD_").ignore(NON_CONFIG_VARS).split("__"));
        let config: Config = figment.extract().context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    /// Defaults with everything kept under `data_dir`: what tests and quick starts want.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self { data_dir: data_dir.into(), listen: "127.0.0.1:0".into(), ..Self::default() }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.listen
            .parse::<SocketAddr>()
            .with_context(|| format!("listen: `{}` is not an address like 0.0.0.0:3000", self.listen))?;
        if !matches!(self.database.synchronous.as_str(), "full" | "normal" | "extra") {
            bail!("database.synchronous must be `full`, `normal` or `extra`");
        }
        if !self.cluster.nats_url.is_empty() && !self.database_url().starts_with("postgres") {
            bail!("cluster.nats_url needs database.url to be a postgres:// URL: several nodes cannot share one SQLite file");
        }
        if !self.cluster.nats_url.is_empty() && self.auth.jwt_secret.is_empty() {
            bail!("cluster.nats_url needs auth.jwt_secret: every node must sign and check tokens with the same secret");
        }
        if self.cluster.subject_prefix.is_empty() || self.cluster.subject_prefix.contains(['.', '*', '>', ' ']) {
            bail!("cluster.subject_prefix must be a non-empty NATS subject token (no `.`, `*`, `>` or spaces)");
        }
        if self.database.read_connections == 0 {
            bail!("database.read_connections must be at least 1");
        }
        if !(4..=65536).contains(&self.database.wal_budget_mib) {
            bail!("database.wal_budget_mib must be between 4 and 65536");
        }
        if self.websocket.ping_interval_secs == 0 || self.websocket.auth_timeout_secs == 0 || self.websocket.write_timeout_secs == 0 {
            bail!("websocket.ping_interval_secs, auth_timeout_secs and write_timeout_secs must be positive");
        }
        if self.limits.request_timeout_secs == 0 {
            bail!("limits.request_timeout_secs must be positive");
        }
        if self.websocket.max_queued_bytes < 64 * 1024 {
            bail!("websocket.max_queued_bytes must be at least 65536");
        }
        if self.auth.max_sessions_per_user == 0 {
            bail!("auth.max_sessions_per_user must be at least 1");
        }
        if !(32..=128).contains(&self.rate_limits.ipv6_prefix) {
            bail!("rate_limits.ipv6_prefix must be between 32 and 128");
        }
        if !self.public_url.is_empty() {
            public_origin(&self.public_url)?;
        }
        if self.auth.token_ttl_secs < 60 {
            bail!("auth.token_ttl_secs must be at least 60");
        }
        if !self.auth.jwt_secret.is_empty() && self.auth.jwt_secret.len() < 32 {
            bail!("auth.jwt_secret must be at least 32 characters (or empty to generate one)");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bail!("log.format must be `text` or `json`");
        }
        if self.limits.max_request_bytes < 1024 {
            bail!("limits.max_request_bytes must be at least 1024");
        }
        for proxy in &self.trusted_proxies {
            crate::http::client_address::parse_network(proxy)
                .with_context(|| format!("trusted_proxies: `{proxy}` is not an IP address or CIDR range"))?;
        }
        if self.limits.max_message_chars == 0 || self.limits.max_page_size == 0 {
            bail!("limits.max_message_chars and limits.max_page_size must be positive");
        }
        if self.limits.max_page_size > 100 {
            // The API document promises clients at most 100 per page.
            bail!("limits.max_page_size can be at most 100");
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("chat.db").display())
        } else {
            self.database.url.clone()
        }
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().expect("validated at load")
    }

    /// `public_url` as a browser's `Origin` header would name it, when set.
    pub fn public_origin(&self) -> Option<String> {
        (!self.public_url.is_empty()).then(|| public_origin(&self.public_url).expect("validated at load"))
    }
}

/// `scheme://host[:port]` of an `http` or `https` URL, lowercase, without a default port.
fn public_origin(url: &str) -> anyhow::Result<String> {
    let invalid = || anyhow::anyhow!("public_url: `{url}` is not an http:// or https:// URL like https://chat.example.com");
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") {
        return Err(invalid());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default().to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid());
    }
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Ok(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_needs_postgres_a_shared_secret_and_a_plain_subject_prefix() {
        let mut config = Config::default();
        config.cluster.nats_url = "nats://127.0.0.1:4222".into();
        assert!(config.validate().unwrap_err().to_string().contains("postgres"));
        config.database.url = "postgres://chatd@db/chatd".into();
        assert!(config.validate().unwrap_err().to_string().contains("jwt_secret"));
        config.auth.jwt_secret = "x".repeat(32);
        config.validate().unwrap();
        config.cluster.subject_prefix = "a.b".into();
        assert!(config.validate().unwrap_err().to_string().contains("subject_prefix"));
    }

    #[test]
    fn public_urls_become_origins() {
        assert_eq!(public_origin("https://Chat.Example.com/").unwrap(), "https://chat.example.com");
        assert_eq!(public_origin("https://chat.example.com:443/app").unwrap(), "https://chat.example.com");
        assert_eq!(public_origin("http://10.0.0.5:3000").unwrap(), "http://10.0.0.5:3000");
        for bad in ["chat.example.com", "ftp://x", "https://", "https://user@host"] {
            assert!(public_origin(bad).is_err(), "{bad}");
        }
    }
}
