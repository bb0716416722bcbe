//! One WebSocket connection: authenticate, register for live delivery, then turn client frames
//! into domain calls while a writer task drains this socket's queue.
use std::{collections::VecDeque, sync::Arc, time::Duration};

use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use poem::web::websocket::{CloseCode, Message as WsMessage, WebSocketStream};
use tokio::sync::Notify;

use super::{
    hub::{SocketHandle, SocketId},
    outbox::{Outbound, Outbox},
    protocol::{ClientFrame, ServerFrame, parse_client_frame},
};
use crate::{app::App, domain::CurrentUser, domain::MessageId, error::Error};

/// Close codes of our own (4000–4999 are for applications).
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_TOO_MANY_SOCKETS: u16 = 4429;

type Sink = SplitSink<WebSocketStream, WsMessage>;
type Source = SplitStream<WebSocketStream>;

pub async fn serve_connection(socket: WebSocketStream, app: App) {
    let (mut sink, mut source) = socket.split();
    let deadline = Duration::from_secs(app.config.websocket.auth_timeout_secs);
    // The one-off steps are boxed so that the long-lived connection future stays small: an
    // idle socket should cost as little memory as possible.
    let user = match tokio::time::timeout(deadline, Box::pin(authenticate(&mut source, &app))).await {
        Ok(Ok(user)) => user,
        Ok(Err(reason)) => return close(&mut sink, CLOSE_UNAUTHORIZED, reason).await,
        Err(_) => return close(&mut sink, CLOSE_UNAUTHORIZED, "no auth frame in time").await,
    };

    let max_sockets = app.limits.sockets_per_user;
    if max_sockets > 0 && app.hub.sockets_of(user.id) >= max_sockets {
        metrics::counter!(crate::monitoring::RATE_LIMITED).increment(1);
        return close(&mut sink, CLOSE_TOO_MANY_SOCKETS, "too many open sockets for this user").await;
    }
    let outbox = Outbox::new();
    let stop = Arc::new(Notify::new());
    let socket_id = app.hub.next_socket_id();
    let handle = SocketHandle::new(socket_id, user.id, &user.session_id, outbox.clone(), stop.clone());
    let (registered_at, last_id, registration) = match Box::pin(app.chat.connect_socket(&user, handle)).await {
        Ok(registered) => registered,
        Err(error) => {
            tracing::error!(error = ?error, "could not register socket");
            return close(&mut sink, 1011, "server error").await;
        }
    };
    // `ready` and `online_users` go out first; live frames wait in the queue until the writer starts.
    let greeting = [
        ServerFrame::Ready { username: &user.username, last_id }.to_text(),
        ServerFrame::OnlineUsers { users: registration.online_contacts }.to_text(),
    ];
    let mut greeted = true;
    for frame in greeting {
        greeted &= sink.feed(WsMessage::Text(frame.to_string())).await.is_ok();
    }
    if greeted && sink.flush().await.is_ok() {
        let writer = tokio::spawn(write_frames(sink, outbox.clone(), stop.clone()));
        let mut connection = Connection { app: &app, user: &user, socket_id, outbox: &outbox, registered_at, last_id };
        connection.read_frames(&mut source, &stop).await;
        app.chat.disconnect_socket(&user, socket_id);
        outbox.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    } else {
        app.chat.disconnect_socket(&user, socket_id);
    }
}

/// Waits for the first frame, which must be a valid `auth` frame.
async fn authenticate(source: &mut Source, app: &App) -> Result<CurrentUser, &'static str> {
    loop {
        let text = match source.next().await {
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

async fn close(sink: &mut Sink, code: u16, reason: &str) {
    let _ = sink.send(WsMessage::Close(Some((CloseCode::from(code), reason.to_owned())))).await;
    let _ = sink.close().await;
}

/// Drains the outbox, writing everything that is ready and flushing once per wake-up. When it
/// stops early (a close frame, a failed write) it closes the outbox and tells the reader to stop.
async fn write_frames(mut sink: Sink, outbox: Arc<Outbox>, stop: Arc<Notify>) {
    let finished = drain_outbox(&mut sink, &outbox).await;
    outbox.close();
    if finished {
        let _ = sink.close().await;
    } else {
        stop.notify_one();
    }
}

/// True when the outbox was closed and everything in it sent; false when writing stopped early.
async fn drain_outbox(sink: &mut Sink, outbox: &Outbox) -> bool {
    let mut pending = VecDeque::new();
    while outbox.take_all(&mut pending).await {
        for item in pending.drain(..) {
            let written = match item {
                Outbound::Text(frame) => sink.feed(WsMessage::Text(frame.to_string())).await,
                Outbound::Ping => sink.feed(WsMessage::Ping(Vec::new())).await,
                Outbound::Close(code, reason) => {
                    close(sink, code, reason).await;
                    return false;
                }
            };
            if written.is_err() {
                return false;
            }
        }
        if sink.flush().await.is_err() {
            return false;
        }
        if pending.capacity() > 256 {
            pending = VecDeque::new(); // an idle socket should not keep a burst's buffer
        }
    }
    true
}

struct Connection<'a> {
    app: &'a App,
    user: &'a CurrentUser,
    socket_id: SocketId,
    outbox: &'a Outbox,
    registered_at: MessageId,
    last_id: MessageId,
}

impl Connection<'_> {
    /// Reads until the client leaves, the writer stops, or the client has been silent for two
    /// ping intervals (a connection that died without closing: its presence must not linger).
    async fn read_frames(&mut self, source: &mut Source, stop: &Notify) {
        let interval = Duration::from_secs(self.app.config.websocket.ping_interval_secs);
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let mut last_heard = tokio::time::Instant::now();
        loop {
            let frame = tokio::select! {
                frame = source.next() => frame,
                _ = stop.notified() => return,
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() >= interval * 2 {
                        self.outbox.push(Outbound::Close(CLOSE_GOING_AWAY, "no answer to pings"));
                        return;
                    }
                    self.outbox.push(Outbound::Ping);
                    continue;
                }
            };
            last_heard = tokio::time::Instant::now();
            match frame {
                Some(Ok(WsMessage::Text(text))) => Box::pin(self.handle_text(&text)).await,
                Some(Ok(WsMessage::Binary(_))) => {
                    self.reply_error("invalid_frame", "frames must be JSON text", None).await
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                Some(Ok(WsMessage::Close(_))) | None => return,
                Some(Err(error)) => {
                    if error.to_string().contains("Space limit exceeded") {
                        let _ = self.outbox.push_waiting(Outbound::Close(CLOSE_TOO_BIG, "frame too large")).await;
                    }
                    return;
                }
            }
        }
    }

    async fn handle_text(&mut self, text: &str) {
        let frame = match parse_client_frame(text) {
            Ok(frame) => frame,
            Err(error) => return self.reply_error(error.code, &error.message, None).await,
        };
        let result = match frame {
            ClientFrame::SendMessage { to, body, client_id } => {
                let sent = self.app.chat.send_from_socket(self.user, self.socket_id, &to, &body, &client_id).await;
                if let Err(error) = sent {
                    return self.reply_error(error.code(), &error.to_string(), Some(&client_id)).await;
                }
                Ok(())
            }
            ClientFrame::Typing { to } => self.app.chat.typing(self.user, &to).await,
            ClientFrame::Read { peer, up_to } => {
                self.app.chat.mark_read(self.user, &peer, up_to, Some(self.socket_id)).await.map(|_| ())
            }
            ClientFrame::Sync { after } => self.sync(after).await,
            ClientFrame::Ping => {
                self.reply(ServerFrame::Pong.to_text()).await;
                Ok(())
            }
            ClientFrame::Auth { .. } => {
                return self.reply_error("already_authenticated", "this socket is already authenticated", None).await;
            }
        };
        if let Err(error) = result {
            if let Error::Internal(cause) = &error {
                tracing::error!(error = ?cause, "frame failed");
            }
            self.reply_error(error.code(), &error.to_string(), None).await;
        }
    }

    /// Sends what this socket missed before it registered; later messages arrive live.
    async fn sync(&mut self, after: MessageId) -> Result<(), Error> {
        let outbox = self.outbox;
        let covered = self
            .app
            .chat
            .sync(self.user, after, self.registered_at, |page| async move {
                for message in &page {
                    let frame = ServerFrame::ReceiveMessage { message }.to_text();
                    if outbox.push_waiting(Outbound::Text(frame)).await.is_err() {
                        return;
                    }
                }
            })
            .await?;
        let last_id = covered.max(self.last_id).max(after);
        self.reply(ServerFrame::SyncDone { last_id }.to_text()).await;
        Ok(())
    }

    async fn reply(&self, frame: Arc<str>) {
        let _ = self.outbox.push_waiting(Outbound::Text(frame)).await;
    }

    async fn reply_error(&self, code: &str, message: &str, client_id: Option<&str>) {
        self.reply(ServerFrame::Error { code, message, client_id }.to_text()).await;
    }
}
