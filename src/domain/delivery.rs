//! After a commit: answer each REST sender and hand the commit to the fan-out, in commit order.
//!
//! This runs in its own task so that the writer can commit the next batch meanwhile.
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{
    ConversationId, Kind, MessageId, UserId,
    fanout::{Commit, Entry, Fanout, Notice},
    writes::{Origin, Outcome, SendRequest, Sent},
};
use crate::{error::Result, monitoring};

/// What the writer hands over, in commit order.
pub(super) enum Delivery {
    /// A committed (or failed) batch of sends, each with what became of it.
    Sends { settled: Vec<(SendRequest, Result<Outcome>)>, up_to: MessageId },
    /// Committed entries (a change, or what another process committed), and the answer to give
    /// once they are published.
    Entries { entries: Vec<Entry>, up_to: MessageId, reply: Option<(oneshot::Sender<Result<ConversationId>>, Result<ConversationId>)> },
    /// Everything before this has been committed and delivered.
    Flush(oneshot::Sender<()>),
}

pub(super) async fn run(fanout: Arc<dyn Fanout>, mut deliveries: mpsc::Receiver<Delivery>) {
    while let Some(delivery) = deliveries.recv().await {
        match delivery {
            Delivery::Sends { settled, up_to } => deliver_sends(fanout.as_ref(), settled, up_to),
            Delivery::Entries { entries, up_to, reply } => {
                fanout.publish(Commit { entries, up_to });
                if let Some((reply, answer)) = reply {
                    let _ = reply.send(answer);
                }
            }
            Delivery::Flush(reply) => {
                let _ = reply.send(());
            }
        }
    }
}

fn deliver_sends(fanout: &dyn Fanout, settled: Vec<(SendRequest, Result<Outcome>)>, up_to: MessageId) {
    let mut entries = Vec::with_capacity(settled.len());
    let mut replies = Vec::new();
    for (request, outcome) in settled {
        metrics::histogram!(monitoring::SEND_TO_ACK_SECONDS).record(request.queued_at.elapsed().as_secs_f64());
        let (sender, client_id) = (request.sender, request.client_id);
        match (outcome, request.origin) {
            (Ok(Outcome::Created { message, audience, first_post }), origin) => {
                metrics::counter!(monitoring::MESSAGES_STORED).increment(1);
                if first_post && audience.kind == Kind::Direct {
                    let watchers: Vec<UserId> = audience.members.iter().copied().filter(|m| *m != sender).collect();
                    fanout.notify(Notice::PresenceRevealed { user: sender, watchers });
                }
                let message = Arc::new(message);
                let ack = match origin {
                    Origin::Socket(socket) => Some((sender, socket)),
                    Origin::Request(reply) => {
                        replies.push((reply, Ok(Sent { message: (*message).clone(), created: true })));
                        None
                    }
                };
                entries.push(Entry::Message { message, audience: audience.members.clone(), ack, created: true });
            }
            (Ok(Outcome::Resent(message)), Origin::Socket(socket)) => {
                let message = Arc::new(message);
                entries.push(Entry::Message { message, audience: Arc::from([]), ack: Some((sender, socket)), created: false });
            }
            (Ok(Outcome::Resent(message)), Origin::Request(reply)) => replies.push((reply, Ok(Sent { message, created: false }))),
            (Err(error), Origin::Socket(socket)) => entries.push(Entry::Refused { sender, socket, client_id, error }),
            (Err(error), Origin::Request(reply)) => replies.push((reply, Err(error))),
        }
    }
    fanout.publish(Commit { entries, up_to });
    for (reply, answer) in replies {
        let _ = reply.send(answer);
    }
}
