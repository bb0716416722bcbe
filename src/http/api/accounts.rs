//! Sign up, sign in, sign out, and the signed-in user.
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::{
    ApiTags,
    fields::{PasswordRule, Text, UsernameRule},
};
use crate::{
    App, domain,
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

#[derive(Debug, Object)]
pub struct Token {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    pub username: String,
}

#[derive(Debug, Object)]
pub struct Me {
    pub username: String,
    pub is_admin: bool,
    /// RFC 3339, UTC.
    pub created_at: String,
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
    #[oai(path = "/signup", method = "post", operation_id = "signup")]
    async fn signup(&self, app: Data<&App>, client: Data<&ClientAddress>, body: Json<Credentials>) -> Result<SignUpResponse, ApiError> {
        let user = app.accounts.sign_up(&body.username, &body.password, client.0.0).await?;
        Ok(SignUpResponse::Created(Json(SignedUp { username: user.username })))
    }

    /// Sign in and receive a bearer token. Unknown users and wrong passwords get the same answer.
    #[oai(path = "/signin", method = "post", operation_id = "signin")]
    async fn signin(&self, app: Data<&App>, client: Data<&ClientAddress>, body: Json<Credentials>) -> Result<Json<Token>, ApiError> {
        let issued = app.accounts.sign_in(&body.username, &body.password, client.0.0).await?;
        Ok(Json(Token {
            access_token: issued.access_token,
            token_type: "Bearer".into(),
            expires_in: issued.expires_in,
            username: issued.username,
        }))
    }

    /// Revoke this token and close the sockets opened with it.
    #[oai(path = "/signout", method = "post", operation_id = "signout")]
    async fn signout(&self, app: Data<&App>, auth: BearerAuth) -> Result<SignOutResponse, ApiError> {
        app.accounts.sign_out(&auth.0).await?;
        app.hub.close_session(auth.0.id, &auth.0.session_id, crate::realtime::protocol::CLOSE_UNAUTHORIZED, "signed out");
        Ok(SignOutResponse::SignedOut)
    }

    /// The signed-in user.
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(&self, auth: BearerAuth) -> Result<Json<Me>, ApiError> {
        let me = auth.0;
        Ok(Json(Me { username: me.username, is_admin: me.is_admin, created_at: domain::format_time(me.created_at) }))
    }
}
