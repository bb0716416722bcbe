//! Liveness and readiness probes.
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::ApiTags;
use crate::{App, error::Error, http::error::ErrorBody};

#[derive(Debug, Object)]
pub struct Status {
    /// Always `ok`.
    pub status: String,
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// The database answers.
    #[oai(status = 200)]
    Ready(Json<Status>),
    /// The database does not answer.
    #[oai(status = 503)]
    NotReady(Json<ErrorBody>),
}

pub struct SystemApi;

#[OpenApi(tag = "ApiTags::System")]
impl SystemApi {
    /// The process is up. Touches nothing else.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<Status> {
        Json(Status { status: "ok".into() })
    }

    /// The server can serve requests: its database answers.
    #[oai(path = "/ready", method = "get", operation_id = "ready")]
    async fn ready(&self, app: Data<&App>) -> ReadyResponse {
        if app.store.is_ready().await {
            ReadyResponse::Ready(Json(Status { status: "ok".into() }))
        } else {
            let error = Error::Unavailable;
            ReadyResponse::NotReady(Json(ErrorBody { code: error.code().into(), message: error.to_string() }))
        }
    }
}
