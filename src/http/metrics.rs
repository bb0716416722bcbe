//! `GET /metrics`: Prometheus text format, when enabled; behind a bearer token when one is set.
use poem::{
    Request, Response, handler,
    http::header,
    web::Data,
};

use super::error::json_response;
use crate::{App, error::ErrorCode};

#[handler]
pub fn metrics_endpoint(req: &Request, Data(app): Data<&App>) -> Response {
    let config = &app.config.metrics;
    let rendered = match crate::monitoring::render() {
        Some(text) if config.enabled => text,
        _ => return json_response(ErrorCode::NotFound, "metrics are disabled (metrics.enabled)"),
    };
    if !config.token.is_empty() {
        let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|token| constant_time_eq(token.as_bytes(), config.token.as_bytes())) {
            return json_response(ErrorCode::Unauthorized, "metrics need the configured bearer token");
        }
    }
    Response::builder().content_type("text/plain; version=0.0.4; charset=utf-8").body(rendered)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}
