//! Follows the revocation log so that sessions revoked anywhere — by sign-out here, or by the
//! admin CLI in another process (password change, disable, removal) — lose their sockets within
//! about a second.
use std::time::Duration;

use super::{hub::Hub, protocol::CLOSE_UNAUTHORIZED};
use crate::store::{Store, users};

const POLL_EVERY: Duration = Duration::from_secs(1);

pub async fn watch(store: Store, hub: std::sync::Arc<Hub>) {
    let mut seen = match users::latest_revocation(&store.read).await {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(?error, "cannot read the revocation log; revoked sockets stay open until they reconnect");
            return;
        }
    };
    let mut ticker = tokio::time::interval(POLL_EVERY);
    loop {
        ticker.tick().await;
        let revoked = match users::revocations_after(&store.read, seen).await {
            Ok(revoked) => revoked,
            Err(error) => {
                tracing::warn!(?error, "cannot read the revocation log");
                continue;
            }
        };
        for revocation in revoked {
            seen = revocation.id;
            match &revocation.session_id {
                Some(session) => hub.close_session(revocation.user_id, session, CLOSE_UNAUTHORIZED, "session revoked"),
                None => hub.close_user(revocation.user_id, CLOSE_UNAUTHORIZED, "signed out everywhere"),
            }
        }
    }
}
