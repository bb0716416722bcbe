//! The application: configuration, storage, the services that the HTTP API, the WebSocket and
//! the CLI all call, and the background work a serving process does.
use std::{sync::Arc, time::Duration};

use crate::{
    cluster::{self, Node},
    config::Config,
    domain::{accounts::Accounts, chat::Chat, fanout::Fanout, rate_limits::RateLimiter},
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
    /// This node's seat on the cluster's bus, when `cluster.nats_url` is set.
    pub node: Option<Arc<Node>>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl App {
    /// Opens the database, applies pending migrations, joins the cluster if there is one and
    /// starts the message pipeline.
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
        let (fanout, cluster, node, tasks): (Arc<dyn Fanout>, _, _, _) = if config.cluster.nats_url.is_empty() {
            (hub.clone(), None, None, Vec::new())
        } else {
            let joined = cluster::join(&config.cluster, hub.clone(), store.clone(), limits.clone()).await?;
            (joined.fanout, Some(joined.cluster), Some(joined.node), joined.tasks)
        };
        let chat = Chat::start(store.clone(), fanout, cluster, config.limits.clone(), limits.clone()).await?;
        let tasks = Arc::new(std::sync::Mutex::new(tasks));
        Ok(Self { config: Arc::new(config), store, accounts, chat, hub, limits, node, tasks })
    }

    /// The App of a command-line run: it commits and leaves, so it joins no cluster; the nodes
    /// find its commits through the stream's counter and its revocations in the log.
    pub async fn open_for_command(mut config: Config) -> anyhow::Result<Self> {
        config.cluster.nats_url.clear();
        Self::open(config).await
    }

    /// The WAL checkpointer, the revocation watcher (sessions revoked by another process close
    /// their sockets) and the minutely forgetting of rate-limit state; the cluster's tasks, which
    /// started with the App, stop with these.
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
        let mut tasks = vec![watcher, checkpointer, housekeeping];
        tasks.append(&mut self.tasks.lock().expect("tasks lock"));
        Ok(Background(tasks))
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
