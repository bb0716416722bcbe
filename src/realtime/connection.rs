//! One WebSocket connection: authenticate, register for live delivery, then one task that turns
//! client frames into domain calls and writes out whatever the hub queued in this socket's
//! outbox. One task per socket, not a reader and a writer, because idle sockets are most sockets
//! and each task and split stream costs memory.
use std::{collections::VecDeque, sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use poem::web::websocket::{CloseCode, Message as WsMessage, WebSocketStream};

use super::{
    hub::{SocketHandle, SocketId},
    outbox::{Outbound, Outbox, Taken},
    protocol::{ClientFrame, ServerFrame, parse_client_frame},
};
use crate::{app::App, domain::CurrentUser, domain::MessageId, error::Error};

/// Close codes of our own (4000–4999 are for applications).
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_TOO_MANY_SOCKETS: u16 = 4429;

/// How long a closing connection may take to send what is still queued (a close frame, say).
const FINAL_WRITE_DEADLINE: Duration = Duration::from_secs(5);

pub async fn serve_connection(socket: WebSocketStream, app: App) {
    // Opening is boxed, and freed once done, so that the future living as long as the socket
    // holds little more than the connection itself: idle sockets are most sockets.
    let Some(mut connection) = Box::pin(open(socket, app)).await else { return };
    let ending = connection.run().await;
    Box::pin(connection.end(ending)).await;
}

/// Authenticates, registers the socket for live delivery and greets it; `None` if any step
/// failed (the socket has then been told why and closed).
async fn open(mut socket: WebSocketStream, app: App) -> Option<Connection> {
    let deadline = Duration::from_secs(app.config.websocket.auth_timeout_secs);
    let user = match tokio::time::timeout(deadline, authenticate(&mut socket, &app)).await {
        Ok(Ok(user)) => user,
        Ok(Err(reason)) => return close(&mut socket, CLOSE_UNAUTHORIZED, reason).await,
        Err(_) => return close(&mut socket, CLOSE_UNAUTHORIZED, "no auth frame in time").await,
    };

    let max_sockets = app.limits.sockets_per_user;
    if max_sockets > 0 && app.hub.sockets_of(user.id) >= max_sockets {
        metrics::counter!(crate::monitoring::RATE_LIMITED).increment(1);
        return close(&mut socket, CLOSE_TOO_MANY_SOCKETS, "too many open sockets for this user").await;
    }
    let outbox = Outbox::new();
    let socket_id = app.hub.next_socket_id();
    let handle = SocketHandle::new(socket_id, user.id, &user.session_id, outbox.clone());
    let (registered_at, last_id, registration) = match app.chat.connect_socket(&user, handle).await {
        Ok(registered) => registered,
        Err(error) => {
            tracing::error!(error = ?error, "could not register socket");
            return close(&mut socket, 1011, "server error").await;
        }
    };
    // `ready` and `online_users` go out first; live frames wait in the outbox meanwhile.
    let greeting = [
        ServerFrame::Ready { username: &user.username, last_id }.to_text(),
        ServerFrame::OnlineUsers { users: registration.online_contacts }.to_text(),
    ];
    let mut greeted = true;
    for frame in greeting {
        greeted &= socket.feed(WsMessage::Text(frame.to_string())).await.is_ok();
    }
    let mut connection = Connection { app, user, socket, socket_id, outbox, pending: VecDeque::new(), registered_at, last_id };
    if greeted && connection.socket.flush().await.is_ok() {
        Some(connection)
    } else {
        connection.end(Ending::Drop).await;
        None
    }
}

/// Waits for the first frame, which must be a valid `auth` frame.
async fn authenticate(socket: &mut WebSocketStream, app: &App) -> Result<CurrentUser, &'static str> {
    loop {
        let text = match socket.next().await {
            Some(Ok(WsMessage::Text(text))) => text,
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            _ => return Err("the first frame must be an auth frame"),
        };
        let Ok(ClientFrame::Auth { token }) = parse_client_frame(&text) else {
            return Err("the first frame must be an auth frame");
        };
        return app.accounts.authenticate(&token).await.map_err(|_| "invalid or expired token");
    }
}

/// Sends a close frame and closes; `None` is for the callers that give up on the connection.
async fn close<T>(socket: &mut WebSocketStream, code: u16, reason: &str) -> Option<T> {
    let _ = socket.send(WsMessage::Close(Some((CloseCode::from(code), reason.to_owned())))).await;
    let _ = socket.close().await;
    None
}

/// How a connection's loop ended.
#[derive(PartialEq, Eq)]
enum Ending {
    /// Send what is still queued (a close frame, for one), then close.
    Drain,
    /// The socket is broken, already closed, or too far behind: just drop it.
    Drop,
}

/// Whether writing out the outbox can go on.
#[derive(PartialEq, Eq)]
enum Written {
    Open,
    /// A close frame went out, or a write failed.
    Finished,
}

struct Connection {
    app: App,
    user: CurrentUser,
    socket: WebSocketStream,
    socket_id: SocketId,
    outbox: Arc<Outbox>,
    /// Frames taken from the outbox, being written (kept to reuse its buffer).
    pending: VecDeque<Outbound>,
    registered_at: MessageId,
    last_id: MessageId,
}

impl Connection {
    /// Reads and writes until the client leaves, the socket falls too far behind, or the client
    /// has been silent for two ping intervals (a connection that died without closing: its
    /// presence must not linger).
    async fn run(&mut self) -> Ending {
        let interval = Duration::from_secs(self.app.config.websocket.ping_interval_secs);
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let mut last_heard = tokio::time::Instant::now();
        loop {
            let frame = tokio::select! {
                taken = self.outbox.take_all(&mut self.pending) => {
                    match taken {
                        Taken::Frames => {}
                        Taken::Overflowed => return Ending::Drop,
                        Taken::Closed => return Ending::Drain,
                    }
                    if Box::pin(self.write_taken()).await == Written::Finished {
                        return Ending::Drop;
                    }
                    continue;
                }
                frame = self.socket.next() => frame,
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() >= interval * 2 {
                        self.outbox.push(Outbound::Close(CLOSE_GOING_AWAY, "no answer to pings"));
                        return Ending::Drain;
                    }
                    self.outbox.push(Outbound::Ping);
                    continue;
                }
            };
            last_heard = tokio::time::Instant::now();
            match frame {
                Some(Ok(WsMessage::Text(text))) => Box::pin(self.handle_text(&text)).await,
                Some(Ok(WsMessage::Binary(_))) => self.reply_error("invalid_frame", "frames must be JSON text", None),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                Some(Ok(WsMessage::Close(_))) | None => return Ending::Drain,
                Some(Err(error)) => {
                    if error.to_string().contains("Space limit exceeded") {
                        self.outbox.push(Outbound::Close(CLOSE_TOO_BIG, "frame too large"));
                        return Ending::Drain;
                    }
                    return Ending::Drop;
                }
            }
        }
    }

    /// Writes the frames just taken from the outbox and flushes them in one go.
    async fn write_taken(&mut self) -> Written {
        for item in self.pending.drain(..) {
            let written = match item {
                Outbound::Text(frame) => self.socket.feed(WsMessage::Text(frame.to_string())).await,
                Outbound::Ping => self.socket.feed(WsMessage::Ping(Vec::new())).await,
                Outbound::Close(code, reason) => {
                    close::<()>(&mut self.socket, code, reason).await;
                    return Written::Finished;
                }
            };
            if written.is_err() {
                return Written::Finished;
            }
        }
        if self.socket.flush().await.is_err() {
            return Written::Finished;
        }
        if self.pending.capacity() > 256 {
            self.pending = VecDeque::new(); // an idle socket should not keep a burst's buffer
        }
        Written::Open
    }

    /// Writes whatever is queued right now, without waiting for more.
    async fn write_queued(&mut self) -> Written {
        match self.outbox.take_now(&mut self.pending) {
            Some(Taken::Frames) => self.write_taken().await,
            Some(Taken::Overflowed) => Written::Finished,
            Some(Taken::Closed) | None => Written::Open,
        }
    }

    /// Leaves the hub; on [`Ending::Drain`] first sends what is still queued (briefly).
    async fn end(mut self, ending: Ending) {
        self.app.chat.disconnect_socket(&self.user, self.socket_id);
        self.outbox.close();
        if ending == Ending::Drain {
            let _ = tokio::time::timeout(FINAL_WRITE_DEADLINE, self.write_rest()).await;
        }
    }

    /// After the loop: sends what is left in the (closed) outbox, then closes the socket.
    async fn write_rest(&mut self) {
        while self.outbox.take_all(&mut self.pending).await == Taken::Frames {
            if self.write_taken().await == Written::Finished {
                return;
            }
        }
        let _ = self.socket.close().await;
    }

    async fn handle_text(&mut self, text: &str) {
        let frame = match parse_client_frame(text) {
            Ok(frame) => frame,
            Err(error) => return self.reply_error(error.code, &error.message, None),
        };
        let result = match frame {
            ClientFrame::SendMessage { to, body, client_id } => {
                let sent = self.app.chat.send_from_socket(&self.user, self.socket_id, &to, &body, &client_id).await;
                if let Err(error) = sent {
                    return self.reply_error(error.code(), &error.to_string(), Some(&client_id));
                }
                Ok(())
            }
            ClientFrame::Typing { to } => self.app.chat.typing(&self.user, &to).await,
            ClientFrame::Read { peer, up_to } => {
                self.app.chat.mark_read(&self.user, &peer, up_to, Some(self.socket_id)).await.map(|_| ())
            }
            ClientFrame::Sync { after } => self.sync(after).await,
            ClientFrame::Ping => {
                self.reply(ServerFrame::Pong.to_text());
                Ok(())
            }
            ClientFrame::Auth { .. } => {
                return self.reply_error("already_authenticated", "this socket is already authenticated", None);
            }
        };
        if let Err(error) = result {
            if let Error::Internal(cause) = &error {
                tracing::error!(error = ?cause, "frame failed");
            }
            self.reply_error(error.code(), &error.to_string(), None);
        }
    }

    /// Sends what this socket missed before it registered; later messages arrive live. Pages go
    /// straight to the socket (a long backlog would not fit the outbox), each after whatever was
    /// queued before it.
    async fn sync(&mut self, after: MessageId) -> Result<(), Error> {
        let mut pages = self.app.chat.sync_from(&self.user, after, self.registered_at)?;
        while let Some(page) = self.app.chat.next_sync_page(&mut pages).await? {
            if self.write_queued().await == Written::Finished {
                return Ok(());
            }
            for message in &page {
                let frame = ServerFrame::ReceiveMessage { message }.to_text();
                if self.socket.feed(WsMessage::Text(frame.to_string())).await.is_err() {
                    return Ok(());
                }
            }
            if self.socket.flush().await.is_err() {
                return Ok(());
            }
        }
        let last_id = pages.covered().max(self.last_id).max(after);
        self.reply(ServerFrame::SyncDone { last_id }.to_text());
        Ok(())
    }

    fn reply(&self, frame: Arc<str>) {
        self.outbox.push(Outbound::Text(frame));
    }

    fn reply_error(&self, code: &str, message: &str, client_id: Option<&str>) {
        self.reply(ServerFrame::Error { code, message, client_id }.to_text());
    }
}
