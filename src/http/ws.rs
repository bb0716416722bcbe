//! `GET /ws`: checks the browser origin, then upgrades and hands the socket to the realtime layer.
use poem::{
    IntoResponse, Request, Response, handler,
    http::{StatusCode, header},
    web::{
        Data,
        websocket::{WebSocket, WebSocketConfig},
    },
};

use super::error::json_response;
use crate::{App, realtime::connection::serve_connection};

/// Small buffers keep idle sockets cheap; frames above the request limit close the socket (1009).
/// A chat frame is a few hundred bytes, and the buffer grows for a larger one. Measured on
/// scenarios 1 and 4: 2 KiB instead of 4 KiB saves 1.6 KiB per idle socket (8.7 → 7.1 KiB),
/// and pipelined throughput did not move beyond run-to-run noise (111–123k msg/s either way).
const READ_BUFFER_BYTES: usize = 2048;
/// Frames collect up to this size before a write; the writer flushes after each round anyway, so
/// a commit's frames for one socket leave in one system call. Grows only while frames are queued.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

#[handler]
pub async fn websocket(req: &Request, ws: WebSocket, Data(app): Data<&App>) -> Response {
    if !origin_allowed(req, &app.config.websocket.allowed_origins) {
        return json_response(StatusCode::FORBIDDEN, "forbidden_origin", "this origin may not open a WebSocket here");
    }
    let limit = app.config.limits.max_request_bytes;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let app = app.clone();
    ws.config(config).on_upgrade(move |socket| serve_connection(socket, app)).into_response()
}

/// Non-browser clients send no `Origin`. Browsers may connect from this server's own origin
/// (same host and port as the request) or one on the allow-list.
fn origin_allowed(req: &Request, allowed: &[String]) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    if allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}
