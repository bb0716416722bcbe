//! Request middleware: a cap on body size, security headers on every response, and one log line
//! per request (never its body or token).
use std::time::Instant;

use poem::{
    Body, Endpoint, IntoResponse, Request, Response, Result,
    error::ReadBodyError,
    http::{HeaderValue, Method, header},
};

use super::error::json_response;
use crate::{App, error::ErrorCode, monitoring};

/// The web app needs no inline scripts and no inline styles but the ones Angular adds, which
/// carry the nonce of the page that loaded it (see `spa`). `connect-src 'self'` covers the
/// server's own `ws:`/`wss:` origin and nothing else.
pub fn app_csp(style_nonce: Option<&str>) -> String {
    let styles = style_nonce.map(|nonce| format!(" 'nonce-{nonce}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'{styles}; img-src 'self' data:; connect-src 'self'; \
         font-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    )
}

/// The API docs page is one HTML document with its script inline.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'";

pub async fn secure_and_log<E: Endpoint>(next: E, req: Request) -> Result<Response> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut response = next.call(req).await?.into_response();
    let headers = response.headers_mut();
    if path.starts_with("/api/docs") {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
    } else if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        static APP_CSP: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();
        let csp = APP_CSP.get_or_init(|| HeaderValue::from_str(&app_csp(None)).expect("a valid header"));
        headers.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if path.starts_with("/api/") && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!(monitoring::HTTP_REQUESTS, "method" => method.to_string(), "status" => response.status().as_u16().to_string())
        .increment(1);
    metrics::histogram!(monitoring::HTTP_SECONDS).record(elapsed);
    tracing::info!(
        target: "chatd::http",
        %method,
        path,
        status = response.status().as_u16(),
        // Hundredths of a millisecond: the float's last digits are noise in a log line.
        duration_ms = (elapsed * 100_000.0).round() / 100.0,
        "request"
    );
    Ok(response)
}

/// Whether a body read failed on the connection's request deadline (hyper wraps our `TimedOut`).
fn timed_out_reading(error: &std::io::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if error.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut) {
            return true;
        }
        cause = error.source();
    }
    false
}

fn timed_out() -> Response {
    json_response(ErrorCode::RequestTimeout, "the request body did not arrive in time")
}

/// Bodies larger than `limits.max_request_bytes` get 413, whether they announce their length or
/// arrive chunked; smaller ones are read once and handed on; ones slower than
/// `limits.request_timeout_secs` get 408.
pub async fn limit_body<E: Endpoint>(next: E, mut req: Request) -> Result<Response> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(next.call(req).await?.into_response());
    }
    let (limit, deadline) = req
        .data::<App>()
        .map(|app| (app.config.limits.max_request_bytes, app.config.limits.request_timeout_secs))
        .unwrap_or((64 * 1024, 15));
    let too_large = || json_response(ErrorCode::PayloadTooLarge, format!("request bodies are limited to {limit} bytes"));
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Ok(too_large());
    }
    // A body trickled in a byte at a time must not hold the request open forever.
    let read = tokio::time::timeout(std::time::Duration::from_secs(deadline), req.take_body().into_bytes_limit(limit)).await;
    match read {
        Ok(Ok(bytes)) => req.set_body(Body::from(bytes)),
        Ok(Err(ReadBodyError::PayloadTooLarge)) => return Ok(too_large()),
        // The connection's own request deadline (see `connection_guard`) ends a stalled body too.
        Ok(Err(ReadBodyError::Io(error))) if timed_out_reading(&error) => return Ok(timed_out()),
        Ok(Err(error)) => return Err(error.into()),
        Err(_) => return Ok(timed_out()),
    }
    Ok(next.call(req).await?.into_response())
}
