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
    #[error("client_id must be 1 to 64 printable characters")]
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
    /// The stable identifier clients match on; never changes once released.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidUsername(_) => "invalid_username",
            Error::InvalidPassword(_) => "invalid_password",
            Error::UsernameTaken => "username_taken",
            Error::InvalidCredentials => "invalid_credentials",
            Error::AccountDisabled => "account_disabled",
            Error::Unauthorized => "unauthorized",
            Error::UserNotFound | Error::UsersNotFound(_) => "user_not_found",
            Error::InvalidName(_) => "invalid_name",
            Error::InvalidTopic => "invalid_topic",
            Error::InvalidRole => "invalid_role",
            Error::TooManyMembers(_) => "too_many_members",
            Error::TooFewMembers => "too_few_members",
            Error::ConversationNotFound => "conversation_not_found",
            Error::NotAMember => "not_a_member",
            Error::Forbidden(_) => "forbidden",
            Error::LastOwner => "last_owner",
            Error::Archived => "archived",
            Error::NameTaken => "name_taken",
            Error::EmptyMessage => "empty_message",
            Error::MessageTooLong(_) => "message_too_long",
            Error::InvalidClientId => "invalid_client_id",
            Error::ClientIdConflict => "client_id_conflict",
            Error::CannotMessageSelf => "cannot_message_self",
            Error::InvalidParameter(_) => "invalid_parameter",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unavailable => "unavailable",
            Error::Busy { .. } => "server_busy",
            Error::Internal(_) => "internal_error",
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
