//! `chatd serve`: migrate, bind, serve until SIGINT or SIGTERM.
use anyhow::{Context, bail};

use crate::{App, config::Config, store::files::DatabaseLock};

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen_addr();
    for problem in crate::store::permissions::loose_modes(&config.data_dir) {
        tracing::warn!("{problem}");
    }
    if config.metrics.enabled && config.metrics.token.is_empty() {
        tracing::warn!("metrics are public: /metrics needs no token (set metrics.token)");
    }
    let _lock = DatabaseLock::acquire(&config, "serve")?;
    let app = App::open(config).await?;
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "cannot listen on {listen}: the address is already in use (another chatd, or another program, has port {port}). \
             Pick another port with CHATD_LISTEN={ip}:{other} or `listen = \"{ip}:{other}\"` in the configuration file",
            port = listen.port(),
            ip = listen.ip(),
            other = listen.port().wrapping_add(1).max(1),
        ),
        Err(error) => return Err(error).with_context(|| format!("cannot listen on {listen}")),
    };
    let address = listener.local_addr()?;
    tracing::info!(%address, data_dir = %app.config.data_dir.display(), "chatd is listening on http://{address}");
    crate::http::serve(listener, app, shutdown_signal()).await
}

/// Resolves on Ctrl-C or SIGTERM (what `docker stop` sends).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
