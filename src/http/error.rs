//! The one place where errors become HTTP responses: `{"code", "message"}` JSON with the right
//! status, for domain errors and for everything poem or poem-openapi reject on their own.
use poem::{Response, http::StatusCode};
use poem_openapi::{ApiResponse, Object, payload::Json};

use crate::error::Error;

/// Every error body chatd sends.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// Stable snake_case identifier, e.g. `username_taken`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// The error responses of the API, as described in the OpenAPI document.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is invalid; `code` names what is wrong.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, invalid, expired or revoked credentials.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Not allowed: the account is disabled (`account_disabled`), or the other person is the caller
    /// (`cannot_message_self`).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such user or resource.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Conflicts with existing data (`username_taken`, `client_id_conflict`).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request body is larger than `limits.max_request_bytes` (64 KiB by default).
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The request body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// Too many attempts; `Retry-After` says how many seconds to wait.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// The server failed; details are in its log, never in the response.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The database is not available (`unavailable`), or the server is too busy to take the request
    /// now (`server_busy`, with `Retry-After`).
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] Option<u64>),
}

fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody { code: code.to_owned(), message: message.into() })
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let json = body(error.code(), error.to_string());
        match error {
            Error::InvalidUsername(_)
            | Error::InvalidPassword(_)
            | Error::EmptyMessage
            | Error::MessageTooLong(_)
            | Error::InvalidClientId
            | Error::InvalidName(_)
            | Error::InvalidTopic
            | Error::InvalidRole
            | Error::TooManyMembers(_)
            | Error::TooFewMembers
            | Error::InvalidParameter(_) => ApiError::BadRequest(json),
            Error::InvalidCredentials | Error::Unauthorized => ApiError::Unauthorized(json),
            // A well-formed request for something the caller may not do: messages and read markers
            // with oneself.
            Error::AccountDisabled | Error::CannotMessageSelf | Error::Forbidden(_) | Error::Archived => {
                ApiError::Forbidden(json)
            }
            Error::UserNotFound | Error::UsersNotFound(_) | Error::ConversationNotFound | Error::NotAMember => {
                ApiError::NotFound(json)
            }
            Error::UsernameTaken | Error::ClientIdConflict | Error::LastOwner | Error::NameTaken => ApiError::Conflict(json),
            Error::RateLimited { retry_after_secs } => ApiError::TooManyRequests(json, retry_after_secs),
            Error::Unavailable => ApiError::Unavailable(json, None),
            Error::Busy { retry_after_secs } => ApiError::Unavailable(json, Some(retry_after_secs)),
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                ApiError::Internal(json)
            }
        }
    }
}

/// A JSON error response for anything that failed outside our handlers: unknown paths, bad
/// JSON, wrong methods, oversized bodies, failed authorisation.
pub fn error_response(error: poem::Error) -> Response {
    if error.is_from_response() {
        return error.into_response();
    }
    let status = error.status();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint".to_owned()),
        StatusCode::BAD_REQUEST if error.is::<poem_openapi::error::ParseRequestPayloadError>() => {
            ("invalid_body", format!("the request body is not valid: {}", error))
        }
        StatusCode::BAD_REQUEST => ("invalid_parameter", error.to_string()),
        StatusCode::UNAUTHORIZED => ("unauthorized", "missing, invalid, expired or revoked token".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this endpoint does not accept that method".to_owned()),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large".to_owned()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", error.to_string()),
        status if status.is_server_error() => {
            tracing::error!(error = %error, "request failed");
            ("internal_error", "internal error".to_owned())
        }
        _ => ("bad_request", error.to_string()),
    };
    json_response(status, code, message)
}

pub fn json_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let payload = serde_json::json!({ "code": code, "message": message.into() });
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(payload.to_string())
}
