//! Who may do what: API tokens (random, shown once, stored as SHA-256),
//! roles, the check every request under `/api/v1` and `/metrics` passes, and
//! a limit on failed attempts per client address.

use crate::api::ApiError;
use crate::service::Service;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use dualsync_state::{ApiToken, NewToken, StateStore};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a token may do; each role may do what the ones before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads (GET).
    Viewer,
    /// Reads, and acts on maps, errors and conflicts.
    Operator,
    /// All of that, and manages tokens.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role a request needs: tokens are the admin's, other changes the
    /// operator's, reads the viewer's.
    fn needed(method: &Method, path: &str) -> Role {
        if path.starts_with("/api/v1/tokens") {
            Role::Admin
        } else if method == Method::GET || method == Method::HEAD {
            Role::Viewer
        } else {
            Role::Operator
        }
    }
}

/// The caller of a request that passed the check (a request extension).
#[derive(Clone, Debug)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

/// The secret, as shown once: `dst_` and 64 hex digits (256 random bits).
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("dst_{}", hex(&bytes)))
}

pub fn sha256_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token's name is 1 to 100 characters, none of them control characters")]
    BadName,
    #[error("no random bytes from the system: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    State(#[from] dualsync_state::StateError),
}

/// Creates a token: the secret to show once, and what is stored of it.
pub fn create_token(store: &StateStore, name: &str, role: Role, expires_at: Option<String>) -> Result<(String, ApiToken), TokenError> {
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(TokenError::BadName);
    }
    let secret = new_secret().map_err(TokenError::Random)?;
    let token = store.create_token(&NewToken { name: name.into(), role: role.as_str().into(), sha256: sha256_hex(&secret), expires_at })?;
    Ok((secret, token))
}

/// Unknown tokens presented per client address: past the limit in a
/// minute, that address is refused until the minute ends, right or wrong
/// token. (A missing, revoked or expired token is no guess: not counted.)
pub struct Limiter {
    per_minute: u32,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most (the oldest windows go first).
const REMEMBERED: usize = 10_000;

impl Limiter {
    pub fn new(per_minute: u32) -> Limiter {
        Limiter { per_minute, failures: Mutex::default() }
    }

    /// Seconds until the address may try again, if it is held back now.
    pub fn held_back(&self, ip: IpAddr) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (since, n) = failures.get(&ip)?;
        let left = WINDOW.checked_sub(since.elapsed())?;
        (*n >= self.per_minute).then_some(left.as_secs().max(1))
    }

    fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= REMEMBERED {
            failures.retain(|_, (since, _)| since.elapsed() < WINDOW);
        }
        let entry = failures.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

/// The dashboard's session cookie: the token itself, which scripts cannot read
/// (`HttpOnly`) and other sites cannot make the browser send (`SameSite=Strict`).
pub const COOKIE: &str = "dualsync_token";

/// How a request presented its token.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Presented {
    Header,
    Cookie,
}

/// The token from `Authorization: Bearer …`, or from the dashboard's cookie.
fn presented(request: &Request) -> Option<(String, Presented)> {
    let headers = request.headers();
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return v.strip_prefix("Bearer ").map(|t| (t.trim().to_string(), Presented::Header));
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE).and_then(|v| v.strip_prefix('=')).map(|t| (t.to_string(), Presented::Cookie)))
}

/// A change made with the cookie must come from a page of this service: its
/// `Origin` (or `Referer`) names this host. `SameSite=Strict` already keeps
/// other sites' requests from carrying the cookie; this is the second lock.
fn same_origin(request: &Request) -> bool {
    let headers = request.headers();
    let Some(host) = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    let from = headers.get(axum::http::header::ORIGIN).or_else(|| headers.get(axum::http::header::REFERER)).and_then(|v| v.to_str().ok());
    from.and_then(|f| f.split_once("://")).map(|(_, rest)| rest.split('/').next() == Some(host)).unwrap_or(false)
}

/// What the check needs of a request, read before any wait (a request cannot
/// be held across one: its body is not `Sync`).
pub struct Asked {
    ip: IpAddr,
    presented: Option<(String, Presented)>,
    needed: Role,
    reads: bool,
    same_origin: bool,
}

impl Asked {
    pub fn of(request: &Request) -> Asked {
        Asked {
            ip: request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0])),
            presented: presented(request),
            needed: Role::needed(request.method(), request.uri().path()),
            reads: request.method() == Method::GET || request.method() == Method::HEAD,
            same_origin: same_origin(request),
        }
    }
}

/// The caller of a request, checked: a usable token of a role high enough.
pub async fn authenticate(service: &Arc<Service>, asked: Asked) -> Result<Actor, ApiError> {
    if let Some(seconds) = service.limiter.held_back(asked.ip) {
        service.metrics.auth_failed();
        return Err(ApiError::too_many(seconds));
    }
    let Some((secret, how)) = asked.presented else {
        service.metrics.auth_failed();
        return Err(ApiError::unauthorized(
            "this needs a token: send `Authorization: Bearer TOKEN` (make one with `dualsync token create`)",
        ));
    };
    let token = check_secret(service, asked.ip, secret).await?;
    let role = Role::parse(&token.role).unwrap_or(Role::Viewer);
    if role < asked.needed {
        return Err(ApiError::forbidden(format!(
            "token {:?} is a {} token; this needs the {} role",
            token.name,
            role.as_str(),
            asked.needed.as_str()
        )));
    }
    if how == Presented::Cookie && !asked.reads && !asked.same_origin {
        return Err(ApiError::forbidden("a change made with the dashboard's cookie must come from the dashboard's own pages"));
    }
    Ok(Actor { name: token.name, role })
}

/// The stored token a secret belongs to, if it is usable; unknown secrets count against the address.
pub async fn check_secret(service: &Arc<Service>, ip: IpAddr, secret: String) -> Result<ApiToken, ApiError> {
    let hash = sha256_hex(&secret);
    let token = crate::service::blocking(service, move |s| Ok(s.store.token_by_hash(&hash)?)).await?;
    match token {
        Some(t) if t.usable() => Ok(t),
        found => {
            if found.is_none() {
                service.limiter.failed(ip);
            }
            service.metrics.auth_failed();
            let why = match found {
                Some(t) if t.revoked_at.is_some() => "this token was revoked",
                Some(_) => "this token has expired",
                None => "this token is not known here",
            };
            Err(ApiError::unauthorized(format!("{why}: ask an admin for a token (`dualsync token create`)")))
        }
    }
}

/// The API's check: 401/403/429 with a JSON body.
pub async fn require_token(State(service): State<Arc<Service>>, mut request: Request, next: Next) -> Result<Response, ApiError> {
    let actor = authenticate(&service, Asked::of(&request)).await?;
    request.extensions_mut().insert(actor);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn roles_need_what_they_should() {
        assert_eq!(Role::needed(&Method::GET, "/api/v1/maps"), Role::Viewer);
        assert_eq!(Role::needed(&Method::POST, "/api/v1/maps/x/pause"), Role::Operator);
        assert_eq!(Role::needed(&Method::GET, "/api/v1/tokens"), Role::Admin);
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }

    #[test]
    fn an_address_is_held_back_after_the_limit() {
        let limiter = Limiter::new(10);
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..10 {
            assert_eq!(limiter.held_back(ip), None);
            limiter.failed(ip);
        }
        assert!(limiter.held_back(ip).is_some());
        assert_eq!(limiter.held_back(IpAddr::from([10, 0, 0, 2])), None);
    }
}
