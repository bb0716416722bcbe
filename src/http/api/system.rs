//! Liveness and readiness probes.
use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, payload::Json};

use super::ApiTags;
use crate::{App, error::Error, http::error::ErrorBody};

#[derive(Debug, Object)]
pub struct Status {
    pub status: StatusValue,
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum StatusValue {
    Ok,
}

/// What a node depends on, checked.
#[derive(Debug, Object)]
pub struct Readiness {
    pub status: StatusValue,
    pub database: StatusValue,
    pub bus: BusState,
}

/// The cluster's bus as this node sees it.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum BusState {
    /// No `cluster.nats_url`: this node runs alone.
    None,
    Connected,
    /// The node still serves and commits; other nodes' messages reach its sockets from the
    /// database, a second or two late, until the bus is back.
    Disconnected,
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// The database answers; `bus` tells how the cluster's bus is.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// The database does not answer.
    #[oai(status = 503)]
    NotReady(Json<ErrorBody>),
}

pub struct SystemApi;

#[OpenApi(tag = "ApiTags::System")]
impl SystemApi {
    /// Liveness: the process is up.
    ///
    /// Touches nothing else, so it answers even when the database does not; use `ready` to know
    /// whether requests can be served.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<Status> {
        Json(Status { status: StatusValue::Ok })
    }

    /// Readiness: the server can serve requests.
    ///
    /// 200 when its database answers, 503 `unavailable` when it does not (a load balancer should
    /// send no traffic to it then). A cluster node whose bus is down is still ready: it serves
    /// and commits, and reads other nodes' messages from the database meanwhile.
    #[oai(path = "/ready", method = "get", operation_id = "ready")]
    async fn ready(&self, app: Data<&App>) -> ReadyResponse {
        if app.store.is_ready().await {
            let bus = match &app.node {
                None => BusState::None,
                Some(node) if node.is_connected() => BusState::Connected,
                Some(_) => BusState::Disconnected,
            };
            ReadyResponse::Ready(Json(Readiness { status: StatusValue::Ok, database: StatusValue::Ok, bus }))
        } else {
            let error = Error::Unavailable;
            ReadyResponse::NotReady(Json(ErrorBody { code: error.code(), message: error.to_string() }))
        }
    }
}
