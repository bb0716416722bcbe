//! The one place where errors become HTTP responses: `{"code", "message"}` JSON with the right
//! status, for domain errors and for everything poem or poem-openapi reject on their own.
use poem::{
    Response,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{ApiResponse, Object, payload::Json};

use crate::error::{Error, ErrorCode};

/// Every error body chatd sends.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// Stable identifier to match on; each operation lists the codes it can answer with.
    pub code: ErrorCode,
    /// Human-readable explanation, for people rather than programs.
    pub message: String,
}

/// An error as poem-openapi sends it. The document's error responses are written per operation
/// (`api::document`), so these variants carry no descriptions of their own.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] Option<u64>),
}

/// The one mapping from codes to HTTP statuses.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        InvalidUsername | InvalidPassword | EmptyMessage | MessageTooLong | InvalidClientId | InvalidName | InvalidTopic
        | InvalidRole | TooManyMembers | TooFewMembers | InvalidParameter | InvalidBody | BadRequest | InvalidJson
        | InvalidFrame | UnknownType | AlreadyAuthenticated => StatusCode::BAD_REQUEST,
        InvalidCredentials | Unauthorized => StatusCode::UNAUTHORIZED,
        // A well-formed request for something the caller may not do.
        AccountDisabled | CannotMessageSelf | Forbidden | Archived | ForbiddenOrigin => StatusCode::FORBIDDEN,
        UserNotFound | ConversationNotFound | NotAMember | NotFound => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        UsernameTaken | ClientIdConflict | LastOwner | NameTaken => StatusCode::CONFLICT,
        PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        Unavailable | ServerBusy => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let code = error.code();
        let json = Json(ErrorBody { code, message: error.to_string() });
        let retry_after = match error {
            Error::RateLimited { retry_after_secs } | Error::Busy { retry_after_secs } => Some(retry_after_secs),
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                None
            }
            _ => None,
        };
        match status_of(code) {
            StatusCode::BAD_REQUEST => ApiError::BadRequest(json),
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized(json),
            StatusCode::FORBIDDEN => ApiError::Forbidden(json),
            StatusCode::NOT_FOUND => ApiError::NotFound(json),
            StatusCode::CONFLICT => ApiError::Conflict(json),
            StatusCode::TOO_MANY_REQUESTS => ApiError::TooManyRequests(json, retry_after.unwrap_or(1)),
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable(json, retry_after),
            _ => ApiError::Internal(json),
        }
    }
}

/// A JSON error response for anything that failed outside our handlers: unknown paths, bad
/// JSON, wrong methods, oversized bodies, failed authorisation.
pub fn error_response(error: poem::Error) -> Response {
    if error.is_from_response() {
        let mut response = error.into_response();
        challenge_if_unauthorized(&mut response);
        return response;
    }
    let status = error.status();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "no such endpoint".to_owned()),
        StatusCode::BAD_REQUEST if error.is::<poem_openapi::error::ParseRequestPayloadError>() => {
            (ErrorCode::InvalidBody, format!("the request body is not valid: {}", error))
        }
        StatusCode::BAD_REQUEST => (ErrorCode::InvalidParameter, error.to_string()),
        StatusCode::UNAUTHORIZED => (ErrorCode::Unauthorized, Error::Unauthorized.to_string()),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::MethodNotAllowed, "this endpoint does not accept that method".to_owned()),
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, "the request body is too large".to_owned()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (ErrorCode::UnsupportedMediaType, error.to_string()),
        status if status.is_server_error() => {
            tracing::error!(error = %error, "request failed");
            (ErrorCode::InternalError, "internal error".to_owned())
        }
        _ => (ErrorCode::BadRequest, error.to_string()),
    };
    let mut response = json_response(code, message);
    response.set_status(status);
    response
}

/// An error response outside poem-openapi's handlers, with the status its code maps to.
pub fn json_response(code: ErrorCode, message: impl Into<String>) -> Response {
    let payload = serde_json::json!({ "code": code, "message": message.into() });
    let mut response =
        Response::builder().status(status_of(code)).content_type("application/json; charset=utf-8").body(payload.to_string());
    challenge_if_unauthorized(&mut response);
    response
}

/// A 401 says how to authenticate (RFC 9110 §11.6.1).
fn challenge_if_unauthorized(response: &mut Response) {
    if response.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="chatd""#));
    }
}
