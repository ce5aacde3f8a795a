//! The web dashboard at `/`: server-rendered pages, a stylesheet and one
//! small script, all in the binary (nothing is fetched from elsewhere).
//!
//! Logging in turns a token into an `HttpOnly`, `SameSite=Strict` cookie;
//! pages need any usable token, and their buttons call the API, whose role
//! checks and activity log apply as to any other caller.

mod layout;
mod pages;

use crate::auth::{authenticate, check_secret, Actor, Asked, COOKIE};
use crate::service::{blocking, Service};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// The pages (behind a session) and what needs none: login and the assets.
pub fn routes(service: Arc<Service>) -> Router<Arc<Service>> {
    let pages = Router::new()
        .route("/", get(overview))
        .route("/maps/{map}", get(map))
        .route("/errors", get(errors))
        .route("/conflicts", get(conflicts))
        .route("/activity", get(activity))
        .route("/plan", get(plan))
        .route_layer(from_fn_with_state(service, require_session));
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/assets/dashboard.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }))
        .route("/assets/dashboard.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS) }))
        .merge(pages)
        .layer(axum::middleware::from_fn(page_headers))
}

/// A page needs a usable token in the cookie; without one, the login page.
async fn require_session(State(service): State<Arc<Service>>, mut request: Request, next: Next) -> Response {
    match authenticate(&service, Asked::of(&request)).await {
        Ok(actor) => {
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => Redirect::to("/login").into_response(),
        Err(e) => e.into_response(),
    }
}

/// No framing by other sites, no scripts or styles but our own.
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

fn who(actor: &Extension<Actor>) -> String {
    format!("{} ({})", actor.name, actor.role.as_str())
}

async fn render(
    service: &Arc<Service>,
    title: &str,
    here: &'static str,
    actor: &Extension<Actor>,
    refresh: Option<u32>,
    body: impl FnOnce(&Service) -> Result<String, crate::api::ApiError> + Send + 'static,
) -> Response {
    let actor = who(actor);
    match blocking(service, body).await {
        Ok(main) => layout::page(title, here, &actor, refresh, &main).into_response(),
        Err(e) => {
            let status = e.status;
            let main = format!(r#"<p class="bad" role="alert">{}</p>"#, layout::esc(&e.message));
            (status, layout::page(title, here, &actor, None, &main)).into_response()
        }
    }
}

async fn overview(State(s): State<Arc<Service>>, actor: Extension<Actor>) -> Response {
    let figures = crate::service::map_figures(&s).await;
    render(&s, "Maps", "/", &actor, Some(5), move |_| pages::overview(&figures?)).await
}

async fn map(State(s): State<Arc<Service>>, actor: Extension<Actor>, Path(name): Path<String>) -> Response {
    let title = format!("Map {name}");
    render(&s, &title, "/", &actor, Some(5), move |s| pages::map(s, &name)).await
}

async fn errors(
    State(s): State<Arc<Service>>,
    actor: Extension<Actor>,
    filter: Result<Query<pages::ErrorFilter>, QueryRejection>,
) -> Response {
    let filter = filter.map(|q| q.0).unwrap_or_default();
    render(&s, "Errors", "/errors", &actor, None, move |s| pages::errors(s, &filter)).await
}

async fn conflicts(
    State(s): State<Arc<Service>>,
    actor: Extension<Actor>,
    filter: Result<Query<pages::ConflictFilter>, QueryRejection>,
) -> Response {
    let filter = filter.map(|q| q.0).unwrap_or_default();
    render(&s, "Conflicts", "/conflicts", &actor, None, move |s| pages::conflicts(s, &filter)).await
}

async fn activity(
    State(s): State<Arc<Service>>,
    actor: Extension<Actor>,
    filter: Result<Query<pages::ActivityFilter>, QueryRejection>,
) -> Response {
    let filter = filter.map(|q| q.0).unwrap_or_default();
    render(&s, "Activity", "/activity", &actor, None, move |s| pages::activity(s, &filter)).await
}

async fn plan(State(s): State<Arc<Service>>, actor: Extension<Actor>) -> Response {
    render(&s, "Plan and check", "/plan", &actor, Some(3), pages::plan).await
}

fn login_form(message: Option<&str>) -> Html<String> {
    let message = message.map(|m| format!(r#"<p class="bad" role="alert">{}</p>"#, layout::esc(m))).unwrap_or_default();
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · dualsync</title><link rel="stylesheet" href="/assets/dashboard.css"></head>
<body class="login"><main><h1>dualsync</h1>{message}
<form method="post" action="/login"><label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button></form>
<p class="hint">Make a token with <code>dualsync token create --name NAME --role viewer|operator|admin</code>.</p></main></body></html>"#
    ))
}

async fn login_page() -> Html<String> {
    login_form(None)
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// A usable token becomes the session cookie (for a day at most, and no
/// longer than the token lives); a bad one shows the form again.
async fn login(
    State(service): State<Arc<Service>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    form: Result<Form<Login>, FormRejection>,
) -> Response {
    let Ok(Form(Login { token })) = form else {
        return (StatusCode::BAD_REQUEST, login_form(Some("Give a token."))).into_response();
    };
    if let Some(seconds) = service.limiter.held_back(peer.ip()) {
        let message = format!("Too many failed attempts from this address: try again in {seconds} s.");
        return (StatusCode::TOO_MANY_REQUESTS, login_form(Some(&message))).into_response();
    }
    let token = token.trim().to_string();
    match check_secret(&service, peer.ip(), token.clone()).await {
        Ok(_) => {
            let secure = if service.https { "; Secure" } else { "" };
            let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=86400{secure}");
            let mut response = Redirect::to("/").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(e) => (e.status, login_form(Some(&e.message))).into_response(),
    }
}

async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
