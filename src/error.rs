//! The domain's errors. Each has a stable snake_case `code` that clients can match on;
//! `http::error` is the one place that turns them into HTTP responses.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidUsername(&'static str),
    #[error("{0}")]
    InvalidPassword(&'static str),
    #[error("that username is already taken")]
    UsernameTaken,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("this account is disabled")]
    AccountDisabled,
    #[error("missing, invalid, expired or revoked token")]
    Unauthorized,
    #[error("no user with that name")]
    UserNotFound,
    #[error("no such user: {}", .0.join(", "))]
    UsersNotFound(Vec<String>),
    #[error("{0}")]
    InvalidName(&'static str),
    #[error("a topic can be at most 250 characters long, without control characters")]
    InvalidTopic,
    #[error("a role is `owner`, `admin` or `member`")]
    InvalidRole,
    #[error("a conversation has at most {0} members")]
    TooManyMembers(usize),
    #[error("a group needs at least 3 people; write to one person directly")]
    TooFewMembers,
    #[error("no such conversation")]
    ConversationNotFound,
    #[error("that person is not a member of this conversation")]
    NotAMember,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("the last owner cannot leave or step down; make someone else owner first")]
    LastOwner,
    #[error("this room is archived: it can be read but not written to")]
    Archived,
    #[error("a room with that name already exists")]
    NameTaken,
    #[error("a message cannot be empty")]
    EmptyMessage,
    #[error("a message can be at most {0} characters long")]
    MessageTooLong(usize),
    #[error("client_id must be 1 to 64 printable characters, not starting with `event-`")]
    InvalidClientId,
    #[error("this client_id was already used for a message to someone else")]
    ClientIdConflict,
    #[error("you cannot send a message to yourself")]
    CannotMessageSelf,
    #[error("{0}")]
    InvalidParameter(String),
    #[error("too many attempts; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the database is not available")]
    Unavailable,
    #[error("the server is busy; try again in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    /// The stable identifier clients match on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidUsername(_) => ErrorCode::InvalidUsername,
            Error::InvalidPassword(_) => ErrorCode::InvalidPassword,
            Error::UsernameTaken => ErrorCode::UsernameTaken,
            Error::InvalidCredentials => ErrorCode::InvalidCredentials,
            Error::AccountDisabled => ErrorCode::AccountDisabled,
            Error::Unauthorized => ErrorCode::Unauthorized,
            Error::UserNotFound | Error::UsersNotFound(_) => ErrorCode::UserNotFound,
            Error::InvalidName(_) => ErrorCode::InvalidName,
            Error::InvalidTopic => ErrorCode::InvalidTopic,
            Error::InvalidRole => ErrorCode::InvalidRole,
            Error::TooManyMembers(_) => ErrorCode::TooManyMembers,
            Error::TooFewMembers => ErrorCode::TooFewMembers,
            Error::ConversationNotFound => ErrorCode::ConversationNotFound,
            Error::NotAMember => ErrorCode::NotAMember,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::LastOwner => ErrorCode::LastOwner,
            Error::Archived => ErrorCode::Archived,
            Error::NameTaken => ErrorCode::NameTaken,
            Error::EmptyMessage => ErrorCode::EmptyMessage,
            Error::MessageTooLong(_) => ErrorCode::MessageTooLong,
            Error::InvalidClientId => ErrorCode::InvalidClientId,
            Error::ClientIdConflict => ErrorCode::ClientIdConflict,
            Error::CannotMessageSelf => ErrorCode::CannotMessageSelf,
            Error::InvalidParameter(_) => ErrorCode::InvalidParameter,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Unavailable => ErrorCode::Unavailable,
            Error::Busy { .. } => ErrorCode::ServerBusy,
            Error::Internal(_) => ErrorCode::InternalError,
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Error::Internal(error.into())
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(error: sea_orm::DbErr) -> Self {
        Error::Internal(error.into())
    }
}

/// Every `code` an error body or error frame can carry: the domain's, and those of the HTTP and
/// WebSocket boundaries (a path that does not exist, a frame that is not JSON). Released codes
/// never change; the OpenAPI and AsyncAPI documents list them from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidUsername,
    InvalidPassword,
    UsernameTaken,
    InvalidCredentials,
    AccountDisabled,
    Unauthorized,
    UserNotFound,
    InvalidName,
    InvalidTopic,
    InvalidRole,
    TooManyMembers,
    TooFewMembers,
    ConversationNotFound,
    NotAMember,
    Forbidden,
    LastOwner,
    Archived,
    NameTaken,
    EmptyMessage,
    MessageTooLong,
    InvalidClientId,
    ClientIdConflict,
    CannotMessageSelf,
    InvalidParameter,
    RateLimited,
    Unavailable,
    ServerBusy,
    InternalError,
    /// HTTP: no such endpoint.
    NotFound,
    /// HTTP: the body is not JSON of the documented shape.
    InvalidBody,
    /// HTTP: any other malformed request.
    BadRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    RequestTimeout,
    /// HTTP: a WebSocket upgrade from a page of another origin.
    ForbiddenOrigin,
    /// WebSocket: a frame that is not JSON.
    InvalidJson,
    /// WebSocket: a JSON frame of the wrong shape.
    InvalidFrame,
    /// WebSocket: a frame whose `type` the server does not know.
    UnknownType,
    /// WebSocket: a second `auth` frame.
    AlreadyAuthenticated,
}
