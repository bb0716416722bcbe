//! Finding people to start a conversation with.
use poem::web::Data;
use poem_openapi::{Object, OpenApi, param::Query, payload::Json};

use super::ApiTags;
use crate::{
    App,
    error::Error,
    http::{auth::BearerAuth, error::ApiError},
};

const MAX_USERS_PAGE: u64 = 100;

fn default_limit() -> u64 {
    20
}

#[derive(Debug, Object)]
pub struct UserDto {
    pub username: String,
    /// Online, as far as the caller may know: false for people who have not written to them.
    pub online: bool,
}

pub struct UsersApi;

#[OpenApi(tag = "ApiTags::Users")]
impl UsersApi {
    /// Find people by name.
    ///
    /// Users whose name contains `q` (all users when empty), online or not, best matches first;
    /// the caller is not listed. `online` is true only for people whose presence the caller may
    /// see (who have written to them); for everyone else it is false.
    #[oai(path = "/users", method = "get", operation_id = "searchUsers")]
    async fn search(
        &self,
        app: Data<&App>,
        auth: BearerAuth,
        /// Part of a username; case-insensitive.
        #[oai(validator(max_length = 32))]
        q: Query<Option<String>>,
        /// How many to return at most.
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u64>,
    ) -> Result<Json<Vec<UserDto>>, ApiError> {
        let limit = limit.0;
        if limit == 0 || limit > MAX_USERS_PAGE {
            return Err(Error::InvalidParameter(format!("limit must be between 1 and {MAX_USERS_PAGE}")).into());
        }
        let query = q.0.unwrap_or_default();
        if query.chars().count() > 32 {
            return Err(Error::InvalidParameter("q can be at most 32 characters long".into()).into());
        }
        let found = app.accounts.search(&query, &auth.0, limit).await?;
        let ids: Vec<_> = found.iter().map(|u| u.id).collect();
        let online = app.chat.online_as_seen_by(&auth.0, &ids).await?;
        Ok(Json(found.into_iter().zip(online).map(|(u, online)| UserDto { online, username: u.username }).collect()))
    }
}
