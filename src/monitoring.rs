//! Prometheus metrics. Off by default; `metrics.enabled = true` installs the recorder and serves
//! `GET /metrics`, optionally behind a bearer token. With no recorder installed the `metrics`
//! macros cost next to nothing.
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const CONNECTED_SOCKETS: &str = "chatd_websocket_connections";
pub const ONLINE_USERS: &str = "chatd_online_users";
pub const MESSAGES_STORED: &str = "chatd_messages_stored_total";
pub const MESSAGES_DELIVERED: &str = "chatd_messages_delivered_total";
pub const COMMIT_BATCH_SIZE: &str = "chatd_commit_batch_size";
pub const COMMIT_SECONDS: &str = "chatd_commit_duration_seconds";
pub const SEND_TO_ACK_SECONDS: &str = "chatd_message_ack_latency_seconds";
pub const HTTP_REQUESTS: &str = "chatd_http_requests_total";
pub const HTTP_SECONDS: &str = "chatd_http_request_duration_seconds";
pub const SIGN_INS: &str = "chatd_signins_total";
pub const RATE_LIMITED: &str = "chatd_rate_limited_total";
pub const CLUSTER_PUBLISHED: &str = "chatd_cluster_published_total";
pub const CLUSTER_RECEIVED: &str = "chatd_cluster_received_commits_total";
pub const CLUSTER_DROPPED: &str = "chatd_cluster_dropped_total";
pub const CLUSTER_RESYNCS: &str = "chatd_cluster_resyncs_total";
pub const CLUSTER_BUS_LAG_SECONDS: &str = "chatd_cluster_bus_lag_seconds";
pub const CLUSTER_NODES: &str = "chatd_cluster_nodes";

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once; later calls reuse it.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(COMMIT_BATCH_SIZE.into()), BATCH_BUCKETS))
            .expect("bucket lists are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed; the handle still renders ours.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

pub fn render() -> Option<String> {
    HANDLE.get().map(|handle| handle.render())
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(CONNECTED_SOCKETS, "Authenticated WebSocket connections");
    describe_gauge!(ONLINE_USERS, "Users with at least one open socket");
    describe_counter!(MESSAGES_STORED, "Messages committed to the database");
    describe_counter!(MESSAGES_DELIVERED, "receive_message frames queued to sockets");
    describe_histogram!(COMMIT_BATCH_SIZE, "Messages per commit");
    describe_histogram!(COMMIT_SECONDS, Unit::Seconds, "Time to commit one batch");
    describe_histogram!(SEND_TO_ACK_SECONDS, Unit::Seconds, "From a validated send to its ack");
    describe_counter!(HTTP_REQUESTS, "HTTP requests by method and status");
    describe_counter!(CLUSTER_PUBLISHED, "Words this node published on the cluster's bus");
    describe_counter!(CLUSTER_RECEIVED, "Commits of other nodes received from the bus");
    describe_counter!(CLUSTER_DROPPED, "Words not published because the bus was too slow or down");
    describe_counter!(CLUSTER_RESYNCS, "Ranges of the stream read back from the database (committed elsewhere with no word on the bus)");
    describe_histogram!(CLUSTER_BUS_LAG_SECONDS, Unit::Seconds, "From another node's commit to its word arriving here");
    describe_gauge!(CLUSTER_NODES, "Nodes of the cluster heard from lately, this one included");
    describe_histogram!(HTTP_SECONDS, Unit::Seconds, "HTTP request duration");
    describe_counter!(SIGN_INS, "Sign-in attempts by result");
    describe_counter!(RATE_LIMITED, "Requests and frames refused by a rate limit");
}
