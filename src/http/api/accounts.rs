//! Sign up, sign in, sign out, and the signed-in user.
use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, payload::Json};

use super::{
    ApiTags,
    fields::{PasswordRule, Text, Timestamp, UsernameRule},
};
use crate::{
    App,
    http::{auth::BearerAuth, client_address::ClientAddress, error::ApiError},
};

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct Credentials {
    /// 3–32 characters of a-z, 0-9, `_`, `.`, `-`; case-insensitive.
    pub username: Text<UsernameRule>,
    /// 8–128 characters.
    #[oai(write_only)]
    pub password: Text<PasswordRule>,
}

#[derive(Debug, Object)]
pub struct SignedUp {
    pub username: String,
}

#[derive(Debug, Clone, Copy, Enum)]
pub enum TokenType {
    /// Send it as `Authorization: Bearer <access_token>`.
    Bearer,
}

#[derive(Debug, Object)]
pub struct Token {
    pub access_token: String,
    pub token_type: TokenType,
    /// Seconds until the token expires.
    pub expires_in: u64,
    pub username: String,
}

#[derive(Debug, Object)]
pub struct Me {
    pub username: String,
    pub is_admin: bool,
    pub created_at: Timestamp,
}

#[derive(ApiResponse)]
pub enum SignUpResponse {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<SignedUp>),
}

#[derive(ApiResponse)]
pub enum SignOutResponse {
    /// This token no longer works; the user's other sessions are untouched.
    #[oai(status = 204)]
    SignedOut,
}

pub struct AccountsApi;

#[OpenApi(tag = "ApiTags::Accounts")]
impl AccountsApi {
    /// Create an account.
    ///
    /// Usernames are case-insensitive and stored in lowercase. Sign-ups are limited per address
    /// (`rate_limited`, 429 with `Retry-After`); a server busy hashing passwords answers 503
    /// `server_busy` with `Retry-After`. The new account is not signed in: call `signin` next.
    #[oai(path = "/signup", method = "post", operation_id = "signup")]
    async fn signup(&self, app: Data<&App>, client: Data<&ClientAddress>, body: Json<Credentials>) -> Result<SignUpResponse, ApiError> {
        let user = app.accounts.sign_up(&body.username, &body.password, client.0.0).await?;
        Ok(SignUpResponse::Created(Json(SignedUp { username: user.username })))
    }

    /// Sign in and receive a bearer token.
    ///
    /// Unknown users and wrong passwords get the same answer (401 `invalid_credentials`). The
    /// token is sent as `Authorization: Bearer <access_token>` and on the WebSocket's `auth` frame;
    /// it expires after `expires_in` seconds, and each sign-in is a session of its own that
    /// `signout` ends. Repeated failures are limited per account and per address (429).
    #[oai(path = "/signin", method = "post", operation_id = "signin")]
    async fn signin(&self, app: Data<&App>, client: Data<&ClientAddress>, body: Json<Credentials>) -> Result<Json<Token>, ApiError> {
        let issued = app.accounts.sign_in(&body.username, &body.password, client.0.0).await?;
        Ok(Json(Token {
            access_token: issued.access_token,
            token_type: TokenType::Bearer,
            expires_in: issued.expires_in,
            username: issued.username,
        }))
    }

    /// Sign out: revoke this token.
    ///
    /// The sockets opened with this token are closed (close code 4401); the user's other sessions
    /// are untouched.
    #[oai(path = "/signout", method = "post", operation_id = "signout")]
    async fn signout(&self, app: Data<&App>, auth: BearerAuth) -> Result<SignOutResponse, ApiError> {
        app.accounts.sign_out(&auth.0).await?;
        app.hub.close_session(auth.0.id, &auth.0.session_id, crate::realtime::protocol::CLOSE_UNAUTHORIZED, "signed out");
        Ok(SignOutResponse::SignedOut)
    }

    /// The signed-in user.
    ///
    /// A cheap way to check that a token still works.
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(&self, auth: BearerAuth) -> Result<Json<Me>, ApiError> {
        let me = auth.0;
        Ok(Json(Me { username: me.username, is_admin: me.is_admin, created_at: Timestamp::from_millis(me.created_at) }))
    }
}
