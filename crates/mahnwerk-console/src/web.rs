//! HTTP plumbing: the router, sign-in, sessions and CSRF checks, errors as pages, and the gRPC
//! calls made with the signed-in user's key.

use crate::i18n::Lang;
use crate::session::{self, COOKIE, LANG_COOKIE, LOGIN_COOKIE, Session, Sessions};
use crate::{case_page, letterhead_page, pages, policy_page};
use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use mahnwerk_auth::KeyStore;
use mahnwerk_clock::SharedClock;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// What every handler needs.
pub struct App {
    pub pool: sqlx::AnyPool,
    pub keys: KeyStore,
    pub clock: SharedClock,
    /// The services' gRPC endpoint.
    pub channel: tonic::transport::Channel,
    pub sessions: Sessions,
}

pub type Shared = Arc<App>;

/// A handler's failure, shown as a page with the right status.
#[derive(Debug)]
pub enum WebError {
    /// Not signed in: to the sign-in page.
    Login,
    /// Unknown, or another tenant's: the same answer either way.
    NotFound,
    /// A form or filter field the user can correct; the message names the field.
    Bad(String),
    /// Missing or wrong CSRF token.
    Csrf,
    Internal(String),
}

impl From<sqlx::Error> for WebError {
    fn from(e: sqlx::Error) -> Self {
        WebError::Internal(e.to_string())
    }
}

impl From<tonic::Status> for WebError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        match s.code() {
            // A key never reaches another tenant's case: permission or not-found, both 404.
            Code::NotFound | Code::PermissionDenied => WebError::NotFound,
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::AlreadyExists
            | Code::OutOfRange => WebError::Bad(s.message().to_owned()),
            Code::Unauthenticated => WebError::Login,
            _ => WebError::Internal(format!("{}: {}", s.code(), s.message())),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            WebError::Login => return Redirect::to("/login").into_response(),
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                "Nicht gefunden / Not found".to_owned(),
            ),
            WebError::Bad(m) => (StatusCode::BAD_REQUEST, m),
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "CSRF token missing or wrong: reload the page".to_owned(),
            ),
            WebError::Internal(m) => {
                tracing::warn!(error = %m, "console request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        (status, html(pages::error_page(status.as_u16(), &msg))).into_response()
    }
}

pub type WebResult = Result<Response, WebError>;

/// A rendered page as a response.
pub fn html(m: maud::Markup) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        m.into_string(),
    )
        .into_response()
}

fn cookie_header(headers: &HeaderMap) -> &str {
    headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub fn lang(headers: &HeaderMap) -> Lang {
    Lang::parse(session::cookie(cookie_header(headers), LANG_COOKIE))
}

/// The signed-in session, or a redirect to the sign-in page.
pub fn session(app: &App, headers: &HeaderMap) -> Result<Session, WebError> {
    let id = session::cookie(cookie_header(headers), COOKIE).ok_or(WebError::Login)?;
    app.sessions.get(id).ok_or(WebError::Login)
}

/// The session of a form submission whose CSRF token matches.
pub fn session_checked(
    app: &App,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Session, WebError> {
    let s = session(app, headers)?;
    match form.get("csrf") {
        Some(t) if session::same(t, &s.csrf) => Ok(s),
        _ => Err(WebError::Csrf),
    }
}

/// A case of the signed-in tenant. Tenant scope comes first: another tenant's case id (or an
/// unknown one) is not found, before any service is asked.
pub async fn own_case(
    app: &App,
    s: &Session,
    case_id: &str,
) -> Result<crate::stage::CaseView, WebError> {
    crate::projection::case(&app.pool, &s.tenant, case_id)
        .await?
        .ok_or(WebError::NotFound)
}

/// A gRPC request authenticated as the signed-in user.
pub fn authed<T>(s: &Session, body: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(body);
    if let Ok(v) = format!("Bearer {}", s.token).parse() {
        req.metadata_mut().insert("authorization", v);
    }
    req
}

pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/lang/{code}", get(set_lang))
        .route("/invoices", get(pages::invoices))
        .route("/debtors", get(pages::debtors))
        .route("/offers/{case_id}", post(pages::offer_action))
        .route("/policies", get(policy_page::page))
        .route("/policies/preview", post(policy_page::preview))
        .route("/policies/save", post(policy_page::save))
        .route(
            "/letterhead",
            get(letterhead_page::page).post(letterhead_page::save),
        )
        .route(
            "/letterhead/templates",
            post(letterhead_page::save_template),
        )
        .route("/letterhead/preview", get(letterhead_page::preview))
        .route("/payments/review", get(pages::review))
        .route("/payments/review/{entry_id}", post(pages::review_action))
        .route("/cases/{case_id}", get(case_page::case))
        .route("/cases/{case_id}/actions", post(case_page::action))
        .route("/cases/{case_id}/documents/{sha}", get(case_page::document))
        .route("/assets/console.css", get(css))
        .with_state(app)
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../assets/console.css"),
    )
        .into_response()
}

async fn set_lang(Path(code): Path<String>, headers: HeaderMap) -> Response {
    let lang = Lang::parse(Some(&code));
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| {
            r.find("://")
                .and_then(|i| r[i + 3..].find('/').map(|j| r[i + 3 + j..].to_owned()))
        })
        .unwrap_or_else(|| "/".into());
    let mut resp = Redirect::to(&back).into_response();
    if let Ok(v) = session::set_cookie(LANG_COOKIE, lang.code(), Some(365 * 86400)).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn login_page(headers: HeaderMap) -> Response {
    login_form(lang(&headers), None, StatusCode::OK)
}

fn login_form(lang: Lang, error: Option<&str>, status: StatusCode) -> Response {
    let token = session::random_token();
    let mut resp = (status, html(pages::login_page(lang, &token, error))).into_response();
    if let Ok(v) = session::set_cookie(LOGIN_COOKIE, &token, Some(1800)).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn login(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let lang = lang(&headers);
    let expected = session::cookie(cookie_header(&headers), LOGIN_COOKIE).unwrap_or("");
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    if expected.is_empty() || !session::same(expected, sent) {
        return Err(WebError::Csrf);
    }
    let token = form.get("api_key").map(|s| s.trim()).unwrap_or("");
    let mut md = tonic::metadata::MetadataMap::new();
    let Ok(v) = format!("Bearer {token}").parse() else {
        return Ok(login_form(
            lang,
            Some(lang.t("API-Schlüssel ungültig", "invalid API key")),
            StatusCode::UNAUTHORIZED,
        ));
    };
    md.insert("authorization", v);
    let caller = match app.keys.authenticate_from(&md, Some(peer)).await {
        Ok(c) => c,
        Err(s) if s.code() == tonic::Code::ResourceExhausted => {
            return Ok(login_form(
                lang,
                Some(s.message()),
                StatusCode::TOO_MANY_REQUESTS,
            ));
        }
        Err(_) => {
            return Ok(login_form(
                lang,
                Some(lang.t("API-Schlüssel ungültig", "invalid API key")),
                StatusCode::UNAUTHORIZED,
            ));
        }
    };
    let tenant = match caller.tenant(form.get("tenant").map(|s| s.trim()).unwrap_or("")) {
        Ok(t) => t,
        Err(s) => return Ok(login_form(lang, Some(s.message()), StatusCode::BAD_REQUEST)),
    };
    let id = app.sessions.create(
        token.to_owned(),
        caller.key_id.clone(),
        tenant.as_str().to_owned(),
    );
    tracing::info!(key_id = %caller.key_id, tenant = %tenant, "console sign-in");
    let mut resp = Redirect::to("/").into_response();
    let h = resp.headers_mut();
    for c in [
        session::set_cookie(COOKIE, &id, None),
        session::set_cookie(LOGIN_COOKIE, "", Some(0)),
    ] {
        if let Ok(v) = c.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

async fn logout(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let s = session_checked(&app, &headers, &form)?;
    if let Some(id) = session::cookie(cookie_header(&headers), COOKIE) {
        app.sessions.remove(id);
    }
    tracing::info!(key_id = %s.key_id, "console sign-out");
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = session::set_cookie(COOKIE, "", Some(0)).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}
