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
    /// Directory for `chat.db` and the generated signing secret.
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub websocket: WebSocketConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub rate_limits: RateLimitsConfig,
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
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("token_ttl_secs", &self.token_ttl_secs)
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
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Largest accepted HTTP request body and WebSocket frame, in bytes.
    pub max_request_bytes: usize,
    /// Longest message body, in characters after trimming.
    pub max_message_chars: usize,
    /// Largest page of messages one history request may ask for (at most 100).
    pub max_page_size: u64,
}

/// Abuse limits; 0 turns a limit off.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitsConfig {
    pub signin_failures_per_account_per_minute: u32,
    pub signin_failures_per_address_per_minute: u32,
    pub signups_per_address_per_hour: u32,
    /// Sustained messages per user per second, over REST and WebSocket together.
    pub messages_per_second: u32,
    /// Messages a user may send at once before the rate applies.
    pub message_burst: u32,
    /// Open WebSockets per user.
    pub sockets_per_user: u32,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            signin_failures_per_account_per_minute: 10,
            signin_failures_per_address_per_minute: 30,
            signups_per_address_per_hour: 20,
            messages_per_second: 20,
            message_burst: 60,
            sockets_per_user: 20,
        }
    }
}

impl RateLimitsConfig {
    pub fn unlimited() -> Self {
        Self {
            signin_failures_per_account_per_minute: 0,
            signin_failures_per_address_per_minute: 0,
            signups_per_address_per_hour: 0,
            messages_per_second: 0,
            message_burst: 0,
            sockets_per_user: 0,
        }
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
            data_dir: PathBuf::from("."),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            websocket: WebSocketConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            rate_limits: RateLimitsConfig::default(),
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
        Self { token_ttl_secs: 7 * 24 * 3600, jwt_secret: String::new() }
    }
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), auth_timeout_secs: 5, ping_interval_secs: 30 }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { max_request_bytes: 64 * 1024, max_message_chars: 4000, max_page_size: 100 }
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
        if self.database.read_connections == 0 {
            bail!("database.read_connections must be at least 1");
        }
        if !(4..=65536).contains(&self.database.wal_budget_mib) {
            bail!("database.wal_budget_mib must be between 4 and 65536");
        }
        if self.websocket.ping_interval_secs == 0 || self.websocket.auth_timeout_secs == 0 {
            bail!("websocket.ping_interval_secs and websocket.auth_timeout_secs must be positive");
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
}
