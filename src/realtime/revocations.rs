//! Follows the revocation log so that sessions revoked anywhere — by sign-out on this node or
//! another, or by the admin CLI (password change, disable, removal) — lose their sockets within
//! about a second.
//!
//! The log is read by time with a margin, not past the highest id seen: with several nodes
//! writing, a revocation with a lower id may commit after one with a higher id.
use std::{collections::HashMap, time::Duration};

use super::{hub::Hub, protocol::CLOSE_UNAUTHORIZED};
use crate::{
    domain::now_millis,
    store::{Store, users},
};

const POLL_EVERY: Duration = Duration::from_secs(1);
/// How far back each look reaches: commits in flight, and clocks of nodes a little apart.
const MARGIN_MS: i64 = 30_000;

pub async fn watch(store: Store, hub: std::sync::Arc<Hub>) {
    let started = now_millis();
    // Revocations from before this process started concern sockets it never had.
    let mut handled: HashMap<i64, i64> = match users::revocations_since(&store.read, started - MARGIN_MS).await {
        Ok(old) => old.into_iter().map(|r| (r.id, started)).collect(),
        Err(error) => {
            tracing::warn!(?error, "cannot read the revocation log yet");
            HashMap::new()
        }
    };
    let mut ticker = tokio::time::interval(POLL_EVERY);
    loop {
        ticker.tick().await;
        let now = now_millis();
        let revoked = match users::revocations_since(&store.read, now - MARGIN_MS).await {
            Ok(revoked) => revoked,
            Err(error) => {
                tracing::warn!(?error, "cannot read the revocation log");
                continue;
            }
        };
        for revocation in revoked {
            if handled.insert(revocation.id, now).is_some() {
                continue;
            }
            match &revocation.session_id {
                Some(session) => hub.close_session(revocation.user_id, session, CLOSE_UNAUTHORIZED, "session revoked"),
                None => hub.close_user(revocation.user_id, CLOSE_UNAUTHORIZED, "signed out everywhere"),
            }
        }
        handled.retain(|_, seen| *seen > now - 2 * MARGIN_MS);
    }
}
