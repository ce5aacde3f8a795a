//! `/api/v1/tokens` (admin): list, create (the secret is in this answer only)
//! and revoke API tokens.

use super::{actor, audited, ApiError, Json, Path};
use crate::auth::{create_token, Actor, Role};
use crate::service::{blocking, Service};
use axum::extract::State;
use axum::Extension;
use dualsync_state::ApiToken;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    name: String,
    role: String,
    created_at: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    last_used: Option<String>,
}

impl From<ApiToken> for TokenInfo {
    fn from(t: ApiToken) -> TokenInfo {
        TokenInfo {
            name: t.name,
            role: t.role,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used: t.last_used,
        }
    }
}

/// Every token (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, body = Vec<TokenInfo>), (status = 403, body = super::ErrorBody)))]
pub async fn list(State(service): State<Arc<Service>>) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    blocking(&service, |s| Ok(Json(s.store.tokens()?.into_iter().map(TokenInfo::from).collect()))).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    name: String,
    role: Role,
    /// Days until it expires (1 to 3650); never, if absent.
    expires_days: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NewTokenResponse {
    /// The token itself: shown here once, stored only as its SHA-256.
    token: String,
    #[serde(flatten)]
    info: TokenInfo,
}

/// Makes a token.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewTokenRequest, responses(
    (status = 201, body = NewTokenResponse), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn create(
    State(service): State<Arc<Service>>,
    who: Option<Extension<Actor>>,
    Json(request): Json<NewTokenRequest>,
) -> Result<(axum::http::StatusCode, Json<NewTokenResponse>), ApiError> {
    let expires_at = match request.expires_days {
        None => None,
        Some(d @ 1..=3650) => Some(dualsync_state::days_from_now(d)),
        Some(d) => return Err(ApiError::bad_request(format!("expires_days={d}: 1 to 3650 days, or leave it out"))),
    };
    let target = format!("token {} ({})", request.name, request.role.as_str());
    audited(&service, actor(&who), "create token", target, move |s| {
        let (secret, token) = create_token(&s.store, &request.name, request.role, expires_at)?;
        Ok((NewTokenResponse { token: secret, info: token.into() }, "created".into()))
    })
    .await
    .map(|r| (axum::http::StatusCode::CREATED, Json(r)))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", params(("name" = String, Path)), responses(
    (status = 200, body = TokenInfo), (status = 404, body = super::ErrorBody)))]
pub async fn revoke(
    State(service): State<Arc<Service>>,
    who: Option<Extension<Actor>>,
    Path(name): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    audited(&service, actor(&who), "revoke token", format!("token {name}"), move |s| {
        if !s.store.revoke_token(&name)? {
            return Err(ApiError::not_found(format!("no usable token is named {name:?}")));
        }
        let token = s.store.tokens()?.into_iter().find(|t| t.name == name).expect("just revoked");
        Ok((token.into(), "revoked".into()))
    })
    .await
    .map(Json)
}
