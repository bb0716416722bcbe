//! The application: configuration, storage, the services that the HTTP API, the WebSocket and
//! the CLI all call, and the background work a serving process does.
use std::{sync::Arc, time::Duration};

use crate::{
    config::Config,
    domain::{accounts::Accounts, chat::Chat, rate_limits::RateLimiter},
    realtime::hub::Hub,
    store::Store,
};

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub accounts: Accounts,
    pub chat: Chat,
    pub hub: Arc<Hub>,
    pub limits: Arc<RateLimiter>,
}

impl App {
    /// Opens the database, applies pending migrations and starts the message pipeline.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        if config.metrics.enabled {
            crate::monitoring::install();
        }
        let store = Store::open(&config).await?;
        store.migrate().await?;
        let limits = Arc::new(RateLimiter::new(&config.rate_limits));
        let accounts = Accounts::new(store.clone(), &config, limits.clone())?;
        accounts.warm_up();
        let hub = Arc::new(Hub::new());
        let chat = Chat::start(store.clone(), hub.clone(), config.limits.clone(), limits.clone()).await?;
        Ok(Self { config: Arc::new(config), store, accounts, chat, hub, limits })
    }

    /// The WAL checkpointer, the revocation watcher (sessions revoked by another process close
    /// their sockets), the minutely forgetting of rate-limit state, and the follower that
    /// publishes what another process (the command line) committed to the stream.
    pub async fn start_background(&self) -> anyhow::Result<Background> {
        let watcher = tokio::spawn(crate::realtime::revocations::watch(self.store.clone(), self.hub.clone()));
        let checkpointer = self.store.checkpoint_in_background().await?;
        let limits = self.limits.clone();
        let housekeeping = tokio::spawn(async move {
            let mut every_minute = tokio::time::interval(Duration::from_secs(60));
            loop {
                every_minute.tick().await;
                limits.forget_stale();
            }
        });
        let chat = self.chat.clone();
        let follower = tokio::spawn(async move {
            let mut every_second = tokio::time::interval(Duration::from_secs(1));
            loop {
                every_second.tick().await;
                chat.catch_up().await;
            }
        });
        Ok(Background(vec![watcher, checkpointer, housekeeping, follower]))
    }
}

/// A serving App's background tasks; they stop with [`Background::stop`] (or when dropped).
pub struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Background {
    pub fn stop(self) {}
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
