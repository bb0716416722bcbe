//! After a commit: ack each sender and deliver each new message to every other socket of both
//! members, in commit order.
//!
//! This runs in its own task so that the writer can commit the next batch meanwhile. Socket
//! registrations arrive here in the same order as the batches around them, which keeps the
//! promise the writer makes: a socket registered at id R gets every message after R live and none
//! before it.
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{
    MessageId,
    pipeline::{Origin, Outcome, SendRequest, Sent},
};
use crate::{
    error::{Error, Result},
    monitoring,
    realtime::{
        hub::{Hub, PresenceCircle, Registration, SocketHandle},
        outbox::PendingWakes,
        protocol::ServerFrame,
    },
};

/// What the writer hands over, in commit order.
pub(super) enum Delivery {
    /// A committed (or failed) batch: each send with what became of it.
    Committed(Vec<(SendRequest, Result<Outcome>)>),
    Register(SocketRegistration),
    /// Everything before this has been committed and delivered.
    Flush(oneshot::Sender<()>),
}

/// A new socket, to be added to the hub between two batches; the reply is the id it registered at.
pub(super) struct SocketRegistration {
    pub socket: SocketHandle,
    pub username: String,
    pub circle: PresenceCircle,
    pub reply: oneshot::Sender<(MessageId, Registration)>,
}

pub(super) struct Deliverer {
    hub: Arc<Hub>,
    /// The newest message delivered so far: where a socket registering now starts live delivery.
    last_committed: MessageId,
}

impl Deliverer {
    pub(super) fn new(hub: Arc<Hub>, last_committed: MessageId) -> Self {
        Self { hub, last_committed }
    }

    pub(super) async fn run(mut self, mut deliveries: mpsc::Receiver<Delivery>) {
        while let Some(delivery) = deliveries.recv().await {
            match delivery {
                Delivery::Committed(settled) => {
                    // Every frame of the batch is queued first; each socket then wakes once.
                    let mut wakes = PendingWakes::default();
                    for (request, outcome) in settled {
                        self.acknowledge_and_deliver(request, outcome, &mut wakes);
                    }
                    wakes.wake_all();
                }
                Delivery::Register(SocketRegistration { socket, username, circle, reply }) => {
                    let registration = self.hub.add_socket(socket, &username, &circle);
                    let _ = reply.send((self.last_committed, registration));
                }
                Delivery::Flush(reply) => {
                    let _ = reply.send(());
                }
            }
        }
    }

    fn acknowledge_and_deliver(&mut self, request: SendRequest, outcome: Result<Outcome>, wakes: &mut PendingWakes) {
        let (message, created, first_post) = match outcome {
            Ok(Outcome::Created { message, first_post }) => (message, true, first_post),
            Ok(Outcome::Resent(message)) => (message, false, false),
            Err(error) => return self.reject(request, error, wakes),
        };
        let origin_socket = match request.origin {
            Origin::Socket(socket) => {
                let ack = ServerFrame::Ack { client_id: &message.client_id, message: &message }.to_text();
                self.hub.queue_for_socket(request.sender, socket, &ack, wakes);
                Some(socket)
            }
            Origin::Request(reply) => {
                let _ = reply.send(Ok(Sent { message: message.clone(), created }));
                None
            }
        };
        metrics::histogram!(monitoring::SEND_TO_ACK_SECONDS).record(request.queued_at.elapsed().as_secs_f64());
        if !created {
            return; // a resend: everyone already has it
        }
        metrics::counter!(monitoring::MESSAGES_STORED).increment(1);
        self.last_committed = self.last_committed.max(message.id);
        if first_post {
            self.hub.reveal_presence(request.sender, request.recipient);
        }
        let frame = ServerFrame::ReceiveMessage { message: &message }.to_text();
        let delivered = self.hub.queue_for_user(request.recipient, &frame, None, wakes)
            + self.hub.queue_for_user(request.sender, &frame, origin_socket, wakes);
        metrics::counter!(monitoring::MESSAGES_DELIVERED).increment(delivered as u64);
    }

    fn reject(&self, request: SendRequest, error: Error, wakes: &mut PendingWakes) {
        match request.origin {
            Origin::Socket(socket) => {
                let frame = ServerFrame::Error {
                    code: error.code(),
                    message: &error.to_string(),
                    client_id: Some(&request.client_id),
                }
                .to_text();
                self.hub.queue_for_socket(request.sender, socket, &frame, wakes);
            }
            Origin::Request(reply) => {
                let _ = reply.send(Err(error));
            }
        }
    }
}
