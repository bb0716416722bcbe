//! The application: configuration, storage and the services that the HTTP API, the WebSocket
//! and the CLI all call.
use std::sync::Arc;

use crate::{
    config::Config,
    domain::{accounts::Accounts, chat::Chat, limits::Limits},
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
    pub limits: Arc<Limits>,
}

impl App {
    /// Opens the database, applies pending migrations and starts the message pipeline.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        if config.metrics.enabled {
            crate::monitoring::install();
        }
        let store = Store::open(&config).await?;
        store.migrate().await?;
        let limits = Arc::new(Limits::new(&config.rate_limits));
        let accounts = Accounts::new(store.clone(), &config, limits.clone())?;
        accounts.warm_up();
        let hub = Arc::new(Hub::new());
        let chat = Chat::start(store.clone(), hub.clone(), config.limits.clone(), limits.clone()).await?;
        Ok(Self { config: Arc::new(config), store, accounts, chat, hub, limits })
    }
}
