//! One WebSocket connection: authenticate, register for live delivery, then one task that turns
//! client frames into domain calls and writes out whatever the hub queued in this socket's
//! outbox. One task per socket, not a reader and a writer, because idle sockets are most sockets
//! and each task and split stream costs memory.
use std::{collections::VecDeque, sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use poem::web::websocket::{CloseCode, Message as WsMessage, WebSocketStream};

use super::{
    hub::{SocketHandle, SocketSlot},
    outbox::{Interrupt, Outbound, Outbox, Taken},
    protocol::{
        CLOSE_GOING_AWAY, CLOSE_INVALID_DATA, CLOSE_PROTOCOL_ERROR, CLOSE_SERVER_ERROR, CLOSE_TOO_BIG, CLOSE_TOO_MANY_SOCKETS,
        CLOSE_UNAUTHORIZED, ClientFrame, ServerFrame, entry_frame, parse_client_frame,
    },
};
use crate::{
    app::App,
    domain::{CurrentUser, MessageId, SocketId, chat::To},
    error::{Error, ErrorCode},
};


/// How long a closing connection may take to send what is still queued (a close frame, say).
const FINAL_WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// How long a write in progress may go on once a close is asked for (sign-out promises 4401
/// within about a second).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

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
        Ok(Err((code, reason))) => return close(&mut socket, code, reason).await,
        Err(_) => return close(&mut socket, CLOSE_UNAUTHORIZED, "no auth frame in time").await,
    };
    let Some(slot) = app.hub.reserve_socket(user.id, app.limits.sockets_per_user) else {
        crate::domain::rate_limits::count_refusal();
        return close(&mut socket, CLOSE_TOO_MANY_SOCKETS, "too many open sockets for this user").await;
    };
    let outbox = Outbox::new(app.config.websocket.max_queued_bytes);
    let socket_id = app.hub.next_socket_id();
    let handle = SocketHandle::new(socket_id, user.id, &user.session_id, outbox.clone());
    let registered = async {
        let circle = app.chat.presence_circle(&user).await?;
        let registration = app.hub.register(handle, &user.username, &circle);
        let last_id = app.chat.latest_id_for(&user, registration.registered_at).await;
        Ok::<_, Error>((registration, last_id))
    };
    let (registration, last_id) = match registered.await {
        Ok((registration, Ok(last_id))) => (registration, last_id),
        Ok((_, Err(error))) | Err(error) => {
            tracing::error!(error = ?error, "could not register socket");
            leave_hub(&app, &user, socket_id).await;
            return close(&mut socket, CLOSE_SERVER_ERROR, "server error").await;
        }
    };
    let registered_at = registration.registered_at;
    let write_timeout = Duration::from_secs(app.config.websocket.write_timeout_secs);
    let mut connection =
        Connection { app, user, socket, socket_id, outbox, pending: VecDeque::new(), registered_at, last_id, write_timeout, _slot: slot };
    // `ready` and `online_users` go out first; live frames wait in the outbox meanwhile.
    connection.pending.extend([
        Outbound::Text(ServerFrame::Ready { username: &connection.user.username, last_id }.to_text()),
        Outbound::Text(ServerFrame::OnlineUsers { users: registration.online_contacts }.to_text()),
    ]);
    if connection.write_pending().await == Written::Open {
        Some(connection)
    } else {
        connection.end(Ending::Drop).await;
        None
    }
}

/// Waits for the first frame, which must be a valid `auth` frame; on failure, the close to send.
async fn authenticate(socket: &mut WebSocketStream, app: &App) -> Result<CurrentUser, (u16, &'static str)> {
    const NOT_AUTH: (u16, &str) = (CLOSE_UNAUTHORIZED, "the first frame must be an auth frame");
    loop {
        let text = match socket.next().await {
            Some(Ok(WsMessage::Text(text))) => text,
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            Some(Err(error)) => return Err(close_for_read_error(&error).unwrap_or(NOT_AUTH)),
            _ => return Err(NOT_AUTH),
        };
        let Ok(ClientFrame::Auth { token }) = parse_client_frame(&text) else { return Err(NOT_AUTH) };
        return app.accounts.authenticate(&token).await.map_err(|_| (CLOSE_UNAUTHORIZED, "invalid or expired token"));
    }
}

/// Sends a close frame and closes; `None` is for the callers that give up on the connection.
async fn close<T>(socket: &mut WebSocketStream, code: u16, reason: &str) -> Option<T> {
    let closing = async {
        let _ = socket.send(WsMessage::Close(Some((CloseCode::from(code), reason.to_owned())))).await;
        let _ = socket.close().await;
    };
    let _ = tokio::time::timeout(FINAL_WRITE_DEADLINE, closing).await;
    None
}

/// How a connection's loop ended.
#[derive(PartialEq, Eq)]
enum Ending {
    /// Send what is still queued (a close frame, for one), then close.
    Drain,
    /// The socket is broken, already closed, too far behind or not reading: just drop it.
    Drop,
}

/// Whether writing out the outbox can go on.
#[derive(PartialEq, Eq, Debug)]
enum Written {
    Open,
    /// A close frame went out, or a write failed.
    Finished,
    /// The client did not take the frames in time, or the outbox overflowed or was closed
    /// meanwhile: a socket that is not read is dropped.
    Stalled,
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
    write_timeout: Duration,
    _slot: SocketSlot,
}

impl Connection {
    /// Reads and writes until the client leaves, the socket falls too far behind or stops reading,
    /// or the client has been silent for two ping intervals (a connection that died without
    /// closing: its presence must not linger).
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
                    if Box::pin(self.write_pending()).await != Written::Open {
                        return Ending::Drop;
                    }
                    continue;
                }
                frame = self.socket.next() => frame,
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() >= interval * 2 {
                        self.outbox.close_with(CLOSE_GOING_AWAY, "no answer to pings");
                        return Ending::Drain;
                    }
                    self.outbox.push(Outbound::Ping);
                    continue;
                }
            };
            last_heard = tokio::time::Instant::now();
            match frame {
                Some(Ok(WsMessage::Text(text))) => Box::pin(self.handle_text(&text)).await,
                Some(Ok(WsMessage::Binary(_))) => self.reply_error(ErrorCode::InvalidFrame, "frames must be JSON text", None),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                Some(Ok(WsMessage::Close(_))) | None => return Ending::Drain,
                Some(Err(error)) => {
                    let Some((code, reason)) = close_for_read_error(&error) else { return Ending::Drop };
                    self.outbox.close_with(code, reason);
                    return Ending::Drain;
                }
            }
        }
    }

    /// Writes `pending` and flushes, racing the write against the write deadline and against an
    /// overflow or a close of the outbox: a client that stops reading must not hold the task,
    /// so that its heartbeat, its close on sign-out and its memory bound still hold.
    async fn write_pending(&mut self) -> Written {
        let outbox = self.outbox.clone();
        let interrupted = async move {
            if outbox.interrupted().await == Interrupt::Closing {
                tokio::time::sleep(CLOSE_GRACE).await;
            }
        };
        let written = tokio::select! {
            written = write_frames(&mut self.socket, &mut self.pending) => written,
            _ = tokio::time::sleep(self.write_timeout) => Written::Stalled,
            _ = interrupted => Written::Stalled,
        };
        if self.pending.capacity() > 256 {
            self.pending = VecDeque::new(); // an idle socket should not keep a burst's buffer
        }
        written
    }

    /// Writes whatever is queued right now, without waiting for more.
    async fn write_queued(&mut self) -> Written {
        match self.outbox.take_now(&mut self.pending) {
            Some(Taken::Frames) => self.write_pending().await,
            Some(Taken::Overflowed) => Written::Stalled,
            Some(Taken::Closed) | None => Written::Open,
        }
    }

    /// Leaves the hub; on [`Ending::Drain`] first sends what is still queued (briefly).
    async fn end(mut self, ending: Ending) {
        leave_hub(&self.app, &self.user, self.socket_id).await;
        self.outbox.close();
        if ending == Ending::Drain {
            let _ = tokio::time::timeout(FINAL_WRITE_DEADLINE, self.write_rest()).await;
        }
    }

    /// After the loop: sends what is left in the (closed) outbox, then closes the socket.
    async fn write_rest(&mut self) {
        while self.outbox.take_all(&mut self.pending).await == Taken::Frames {
            if write_frames(&mut self.socket, &mut self.pending).await != Written::Open {
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
            ClientFrame::SendMessage { to, conversation_id, body, client_id } => {
                let to = named(to, conversation_id);
                let sent = self.app.chat.send_from_socket(&self.user, self.socket_id, &to, &body, &client_id).await;
                if let Err(error) = sent {
                    return self.reply_error(error.code(), &error.to_string(), Some(&client_id));
                }
                Ok(())
            }
            ClientFrame::Typing { to, conversation_id } => self.app.chat.typing(&self.user, &named(to, conversation_id)).await,
            ClientFrame::Read { peer, conversation_id, up_to } => {
                let to = named(peer, conversation_id);
                self.app.chat.mark_read(&self.user, &to, up_to, Some(self.socket_id)).await.map(|_| ())
            }
            ClientFrame::Sync { after } => self.sync(after).await,
            ClientFrame::Ping => {
                self.reply(ServerFrame::Pong.to_text());
                Ok(())
            }
            ClientFrame::Auth { .. } => {
                return self.reply_error(ErrorCode::AlreadyAuthenticated, "this socket is already authenticated", None);
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
    /// queued before it, under the same write deadline as everything else.
    async fn sync(&mut self, after: MessageId) -> Result<(), Error> {
        let mut pages = self.app.chat.sync_from(&self.user, after, self.registered_at)?;
        while let Some(page) = self.app.chat.next_sync_page(&mut pages).await? {
            if self.write_queued().await != Written::Open {
                self.outbox.close();
                return Ok(());
            }
            self.pending.extend(page.iter().map(|message| Outbound::Text(entry_frame(message))));
            if self.write_pending().await != Written::Open {
                self.outbox.close();
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

    fn reply_error(&self, code: ErrorCode, message: &str, client_id: Option<&str>) {
        self.reply(ServerFrame::Error { code, message, client_id }.to_text());
    }
}

/// Which conversation a frame names (the parser has checked that it names exactly one).
fn named(peer: Option<String>, conversation: Option<crate::domain::ConversationId>) -> To {
    match (peer, conversation) {
        (_, Some(id)) => To::Conversation(id),
        (Some(peer), None) => To::Peer(peer),
        (None, None) => To::Peer(String::new()),
    }
}

/// Takes a socket out of the hub; with the user's last one gone, the people who may see them learn
/// they are offline.
async fn leave_hub(app: &App, user: &CurrentUser, socket: SocketId) {
    if !app.hub.remove_socket(user.id, socket) {
        return;
    }
    match app.chat.presence_audience(user).await {
        Ok(audience) => app.hub.announce_offline(user.id, &user.username, &audience),
        Err(error) => tracing::warn!(?error, "cannot tell contacts that a user went offline"),
    }
}

/// Feeds every frame in `pending` to the socket and flushes them in one go.
async fn write_frames(socket: &mut WebSocketStream, pending: &mut VecDeque<Outbound>) -> Written {
    while let Some(item) = pending.pop_front() {
        let written = match item {
            Outbound::Text(frame) => socket.feed(WsMessage::Text(frame.to_string())).await,
            Outbound::Ping => socket.feed(WsMessage::Ping(Vec::new())).await,
            Outbound::Close(code, reason) => {
                let _ = socket.send(WsMessage::Close(Some((CloseCode::from(code), reason.to_owned())))).await;
                let _ = socket.close().await;
                return Written::Finished;
            }
        };
        if written.is_err() {
            return Written::Finished;
        }
    }
    if socket.flush().await.is_err() { Written::Finished } else { Written::Open }
}

/// The close a broken frame earns (RFC 6455 §7.4.1), or `None` when the connection is simply gone.
fn close_for_read_error(error: &std::io::Error) -> Option<(u16, &'static str)> {
    // poem hands tungstenite's errors over as text.
    let text = error.to_string();
    if text.starts_with("Space limit exceeded") {
        Some((CLOSE_TOO_BIG, "frame too large"))
    } else if text.starts_with("UTF-8 encoding error") {
        Some((CLOSE_INVALID_DATA, "text frames must be valid UTF-8"))
    } else if text.starts_with("WebSocket protocol error") && !text.contains("Connection reset without closing handshake") {
        Some((CLOSE_PROTOCOL_ERROR, "WebSocket protocol error"))
    } else {
        None
    }
}
