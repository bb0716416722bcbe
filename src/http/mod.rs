//! HTTP: the REST API under `/api`, the WebSocket at `/ws` and the embedded web app at `/`,
//! all on one listener.
pub mod api;
pub mod auth;
pub mod client_address;
pub mod error;
mod first_request_deadline;
mod metrics;
mod middleware;
mod spa;
mod ws;

use std::{
    future::Future,
    time::{Duration, Instant},
};

use poem::{
    Endpoint, EndpointExt, IntoEndpoint, Route, Server, get,
    listener::Acceptor,
    web::{LocalAddr, RemoteAddr},
};
use tokio::net::{TcpListener, TcpStream};

use self::first_request_deadline::FirstRequestDeadline;
use crate::{App, realtime::connection::CLOSE_GOING_AWAY};

/// How long shutdown waits for open requests and sockets before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// Every route, with errors turned into JSON and security headers on every response.
pub fn routes(app: &App) -> impl Endpoint + 'static {
    let api = api::service();
    Route::new()
        .at("/api/openapi.json", get(api::document_endpoint))
        .nest("/api/docs", api.swagger_ui())
        .nest("/api", api.around(api::allow_header))
        .at("/ws", get(ws::websocket))
        .at("/metrics", get(metrics::metrics_endpoint))
        .at("/", get(spa::serve_ui))
        .at("/*path", get(spa::serve_ui))
        .around(middleware::limit_body)
        .around(client_address::attach)
        .data(app.clone())
        .catch_all_error(|error| async move { error::error_response(error) })
        .around(middleware::secure_and_log)
        .into_endpoint()
}

/// Serves until `shutdown` resolves, then closes every socket with 1001, waits for in-flight
/// work, and makes sure every queued message is committed before returning.
pub async fn serve(listener: TcpListener, app: App, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let watcher = tokio::spawn(crate::realtime::revocations::watch(app.store.clone(), app.hub.clone()));
    let checkpointer = app.store.checkpoint_in_background().await?;
    let limits = app.limits.clone();
    let housekeeping = tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            limits.forget_stale();
        }
    });
    let hub = app.hub.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down");
        hub.close_all(CLOSE_GOING_AWAY, "server is shutting down");
    };
    Server::new_with_acceptor(NoDelayAcceptor::new(listener)?)
        .run_with_graceful_shutdown(routes(&app), signal, Some(SHUTDOWN_GRACE))
        .await?;
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while app.hub.connected_sockets() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watcher.abort();
    housekeeping.abort();
    checkpointer.abort();
    app.chat.flush().await;
    Ok(())
}

/// How long a new connection has to deliver its first complete request.
const FIRST_REQUEST_DEADLINE: Duration = Duration::from_secs(15);

/// Accepts TCP connections with Nagle's algorithm off (chat frames are small and latency-bound)
/// and a deadline on the first request, and backs off briefly instead of spinning when accepting
/// fails (e.g. out of file descriptors).
struct NoDelayAcceptor {
    listener: TcpListener,
    local_addr: LocalAddr,
}

impl NoDelayAcceptor {
    fn new(listener: TcpListener) -> std::io::Result<Self> {
        let local_addr = LocalAddr(listener.local_addr()?.into());
        Ok(Self { listener, local_addr })
    }
}

impl Acceptor for NoDelayAcceptor {
    type Io = FirstRequestDeadline<TcpStream>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![self.local_addr.clone()]
    }

    async fn accept(&mut self) -> std::io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let stream = FirstRequestDeadline::new(stream, FIRST_REQUEST_DEADLINE);
                    return Ok((stream, self.local_addr.clone(), RemoteAddr(peer.into()), poem::http::uri::Scheme::HTTP));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}
