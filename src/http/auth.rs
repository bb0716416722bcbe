//! Bearer-token authentication for REST operations.
use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};

use super::error::ApiError;
use crate::{App, domain::CurrentUser};

/// `Authorization: Bearer <access_token>` from `POST /api/signin`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_token")]
pub struct BearerAuth(pub CurrentUser);

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<CurrentUser> {
    let app = req.data::<App>().expect("the App is attached to every request");
    app.accounts.authenticate(&bearer.token).await.map_err(|error| poem::Error::from(ApiError::from(error)))
}
