//! HTTP: the REST API under `/api`, the WebSocket at `/ws` and the embedded web app at `/`,
//! all on one listener.
pub mod api;
pub mod auth;
pub mod client_address;
pub mod error;
mod connection_guard;
mod metrics;
mod middleware;
mod spa;
mod ws;

use std::{
    future::Future,
    net::IpAddr,
    time::{Duration, Instant},
};

use poem::{
    Endpoint, EndpointExt, IntoEndpoint, Route, Server, get,
    listener::Acceptor,
    web::{LocalAddr, RemoteAddr},
};
use tokio::net::{TcpListener, TcpStream};

use self::connection_guard::{AddressCounts, AddressSlot, GuardedConnection};
use crate::{App, realtime::protocol::CLOSE_GOING_AWAY};

/// How long shutdown waits for open requests and sockets before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// Every route, with errors turned into JSON and security headers on every response.
pub fn routes(app: &App) -> impl Endpoint + 'static {
    let api = api::service();
    Route::new()
        .at("/api/openapi.json", get(api::document_endpoint))
        .at("/api/asyncapi.json", get(asyncapi_endpoint))
        .nest("/api/docs", Route::new().at("/", get(api::docs_endpoint)))
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

/// `GET /api/asyncapi.json`: the AsyncAPI document of `/ws`, beside the OpenAPI one.
#[poem::handler]
fn asyncapi_endpoint() -> poem::Response {
    poem::Response::builder().content_type("application/json").body(crate::realtime::asyncapi::document())
}

/// Serves until `shutdown` resolves, with the App's background tasks running; then closes every
/// socket with 1001, waits (briefly) for in-flight requests and sockets, and returns once every
/// queued message is committed and the database closed.
pub async fn serve(listener: TcpListener, app: App, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let background = app.start_background().await?;
    let served = serve_until(listener, &app, shutdown).await;
    background.stop();
    app.chat.flush().await;
    match tokio::time::timeout(SHUTDOWN_GRACE, app.store.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "closing the database failed"),
        Err(_) => tracing::warn!("closing the database timed out"),
    }
    served
}

async fn serve_until(listener: TcpListener, app: &App, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let hub = app.hub.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down");
        hub.close_all(CLOSE_GOING_AWAY, "server is shutting down");
    };
    Server::new_with_acceptor(GuardedAcceptor::new(listener, app)?)
        .run_with_graceful_shutdown(routes(app), signal, Some(SHUTDOWN_GRACE))
        .await?;
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while app.hub.connected_sockets() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Accepts TCP connections with Nagle's algorithm off (chat frames are small and latency-bound),
/// a deadline on each request, and at most `rate_limits.connections_per_address` per client
/// address; backs off briefly instead of spinning when accepting fails (out of descriptors, say).
struct GuardedAcceptor {
    listener: TcpListener,
    local_addr: LocalAddr,
    app: App,
    trusted_proxies: Vec<client_address::Network>,
    counts: AddressCounts,
}

impl GuardedAcceptor {
    fn new(listener: TcpListener, app: &App) -> std::io::Result<Self> {
        let local_addr = LocalAddr(listener.local_addr()?.into());
        let trusted_proxies = app.config.trusted_proxies.iter().filter_map(|p| client_address::parse_network(p)).collect();
        Ok(Self { listener, local_addr, app: app.clone(), trusted_proxies, counts: AddressCounts::default() })
    }

    /// A place for a connection from `peer`; `Err` when its address has too many already.
    /// Trusted proxies carry many clients and are not counted.
    fn slot_for(&self, peer: IpAddr) -> Result<Option<AddressSlot>, ()> {
        let max = self.app.limits.connections_per_address;
        if max == 0 || self.trusted_proxies.iter().any(|n| n.contains(peer)) {
            return Ok(None);
        }
        self.counts.take(self.app.limits.address_key(peer), max).map(Some).ok_or(())
    }
}

impl Acceptor for GuardedAcceptor {
    type Io = GuardedConnection<TcpStream>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![self.local_addr.clone()]
    }

    async fn accept(&mut self) -> std::io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let Ok(slot) = self.slot_for(peer.ip()) else {
                        crate::domain::rate_limits::count_refusal();
                        tracing::debug!(%peer, "too many connections from this address");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let deadline = Duration::from_secs(self.app.config.limits.request_timeout_secs);
                    let stream = GuardedConnection::new(stream, deadline, slot);
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
