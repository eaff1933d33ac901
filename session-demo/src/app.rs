//! The routes and their handlers.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Response, StatusCode, header::SET_COOKIE};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::{get, post};
use session_core::time::format_description::well_known::Rfc3339;
use session_core::{SessionConfig, SessionManager};
use session_tower::{CurrentSession, SessionLayer};

use crate::csrf::Csrf;
use crate::forms::{self, Checked};
use crate::options::to_std;
use crate::{DemoError, Options, api, csrf, html};

/// Longest user name or cart item, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// The session key of the logged-in user's name.
pub(crate) const USER: &str = "user";
/// The session key of the logged-in user's role.
pub(crate) const ROLE: &str = "role";
/// The role of the users named by `--admin-users`.
pub(crate) const ADMIN: &str = "admin";
/// Everyone else's role.
pub(crate) const USER_ROLE: &str = "user";
/// The session key of the visit counter.
const VISITS: &str = "visits";
/// Cart items live under `cart:<item>`, one key each, so that concurrent additions
/// of different items merge instead of overwriting one another.
const CART_PREFIX: &str = "cart:";

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct AppState {
    pub backend: &'static str,
    pub config: SessionConfig,
    pub csrf: Csrf,
    /// User names that get the admin role.
    pub admins: Arc<[String]>,
    /// The rate-limited API.
    pub api: Arc<api::Api>,
    /// How long a form's body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
}

/// The demo's router over `manager` (built with `options`' session configuration:
/// anything else is [`DemoError::ManagerConfig`]), with the session layer installed;
/// `csrf` signs the anonymous forms' tokens (see [`Csrf::new`]).
pub fn router(manager: SessionManager, options: &Options, csrf: Csrf) -> Result<Router, DemoError> {
    // The rate-limited API opens sessions with a copy of this configuration.
    if options.session_config()? != *manager.config() {
        return Err(DemoError::ManagerConfig);
    }
    let state = AppState {
        backend: options.backend.name(),
        config: manager.config().clone(),
        csrf,
        admins: options
            .admin_users
            .iter()
            .map(|u| u.trim().to_owned())
            .collect(),
        api: Arc::new(api::Api::new(
            &manager,
            options.strict_session_config()?,
            options.api_rate_limit,
            to_std(options.api_rate_window),
        )),
        body_timeout: to_std(options.body_read_timeout),
        max_body_bytes: options.max_body_bytes,
    };
    let layer =
        SessionLayer::new(manager).error_response(|error: &session_tower::Error| match error {
            session_tower::Error::Session(error) => session_error_page(error),
            error => {
                eprintln!("session-demo: session not saved: {error}");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The session could not be saved. Please try again.",
                )
            }
        });
    Ok(Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/cart", get(cart_page).post(cart_add))
        .route("/cart/remove", post(cart_remove))
        .route("/counter", get(counter))
        .route("/session", get(session_page))
        .route("/admin", get(admin_page))
        .route("/role", post(change_role))
        .route("/api/ping", get(api::ping))
        .fallback(not_found)
        .layer(layer)
        // Every body extractor stops at this many bytes with a 413 (forms.rs turns
        // it into a page).
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(axum::middleware::map_response(no_store))
        .with_state(state))
}

/// The page for a session that could not be finished. Hitting a size limit is
/// the client's doing and says so (413); anything else is a 500. Either way the
/// store and the browser keep the session as it was before the request.
pub(crate) fn session_error_page(error: &session_core::Error) -> Response<Body> {
    let text = match error {
        session_core::Error::PayloadTooLarge { size, limit } => format!(
            "This change was not saved: the session would hold {size} bytes, more than \
             the server's limit of {limit} bytes. Your session is as it was before; \
             remove something (for example from the cart) and try again."
        ),
        session_core::Error::CookieTooLarge { size, limit } => format!(
            "This change was not saved: the session cookie would be {size} bytes, more \
             than the {limit} bytes browsers keep. Your session is as it was before; \
             remove something (for example from the cart) and try again."
        ),
        error => {
            eprintln!("session-demo: session not saved: {error}");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The session could not be saved. Please try again.",
            );
        }
    };
    error_page(StatusCode::PAYLOAD_TOO_LARGE, &text)
}

/// Every page is per-session (a CSRF token, the cart, a `Set-Cookie`): no cache,
/// shared or private, may keep or replay one.
async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    response
}

/// A handler failure: a session error becomes a 500 page (and, through the layer's
/// 5xx rule, nothing of the request is saved).
pub(crate) struct AppError(session_core::Error);

impl From<session_core::Error> for AppError {
    fn from(error: session_core::Error) -> Self {
        Self(error)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        if matches!(
            self.0,
            session_core::Error::PayloadTooLarge { .. }
                | session_core::Error::CookieTooLarge { .. }
        ) {
            return session_error_page(&self.0);
        }
        eprintln!("session-demo: request failed: {}", self.0);
        error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.")
    }
}

type Page = Result<axum::response::Response, AppError>;

pub(crate) fn error_page(status: StatusCode, text: &str) -> Response<Body> {
    let frame = html::Frame {
        title: status.canonical_reason().unwrap_or("Error"),
        user: None,
        csrf: "",
        backend: "",
    };
    (status, Html(html::page(&frame, &html::message(text)))).into_response()
}

/// Renders `content` in the frame of `session`'s page.
///
/// A page with a form (`needs_token`, and every page of a logged-in user: the
/// logout button is a form) gets a CSRF token: the session's own when logged in,
/// else a signed double-submit token, which stores nothing (see `csrf.rs`).
async fn render(
    state: &AppState,
    session: &CurrentSession,
    headers: &HeaderMap,
    title: &str,
    status: StatusCode,
    content: impl FnOnce(&str) -> String,
    needs_token: bool,
) -> Page {
    let user = session.get::<String>(USER).await?;
    let (token, set_cookie) = if user.is_some() {
        (csrf::session_token(session).await?, None)
    } else if needs_token {
        state.csrf.anonymous_token(headers)?
    } else {
        (String::new(), None)
    };
    let frame = html::Frame {
        title,
        user: user.as_deref(),
        csrf: &token,
        backend: state.backend,
    };
    let mut response = (status, Html(html::page(&frame, &content(&token)))).into_response();
    if let Some(cookie) = set_cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// A user name or item: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control
/// characters.
fn clean_name(text: &str) -> Option<&str> {
    let text = text.trim();
    let ok = !text.is_empty()
        && text.chars().count() <= MAX_NAME_CHARS
        && !text.chars().any(char::is_control);
    ok.then_some(text)
}

async fn home(State(state): State<AppState>, session: CurrentSession, headers: HeaderMap) -> Page {
    let user = session.get::<String>(USER).await?;
    let role = session.get::<String>(ROLE).await?;
    let may_be_admin = user.as_deref().is_some_and(|u| is_admin_user(&state, u));
    render(
        &state,
        &session,
        &headers,
        "Home",
        StatusCode::OK,
        |t| html::home(t, user.as_deref(), role.as_deref(), may_be_admin),
        false,
    )
    .await
}

/// Whether `user` is one of the `--admin-users`.
fn is_admin_user(state: &AppState, user: &str) -> bool {
    state.admins.iter().any(|admin| admin == user)
}

async fn login_page(
    State(state): State<AppState>,
    session: CurrentSession,
    headers: HeaderMap,
) -> Page {
    render(
        &state,
        &session,
        &headers,
        "Log in",
        StatusCode::OK,
        |t| html::login_form(t, None),
        true,
    )
    .await
}

async fn login(
    State(state): State<AppState>,
    session: CurrentSession,
    headers: HeaderMap,
    Checked(body): Checked<forms::Login>,
) -> Page {
    let Some(user) = clean_name(&body.username) else {
        let error = format!("A user name has 1 to {MAX_NAME_CHARS} characters.");
        return render(
            &state,
            &session,
            &headers,
            "Log in",
            StatusCode::BAD_REQUEST,
            |t| html::login_form(t, Some(&error)),
            true,
        )
        .await;
    };
    let role = if is_admin_user(&state, user) {
        ADMIN
    } else {
        USER_ROLE
    };
    session.insert(USER, user).await?;
    session.insert(ROLE, role).await?;
    if body.remember.is_some() {
        session.set_permanent(Some(true)).await?;
    }
    new_privileges(&session).await?;
    Ok(Redirect::to("/").into_response())
}

/// After a change of privileges (login, a role change): a new session id, so an
/// id planted or seen before is worthless after, and a new CSRF token (drawn by
/// the next page), so a token known before does not work for the new privileges.
async fn new_privileges(session: &CurrentSession) -> Result<(), AppError> {
    session.cycle_id().await?;
    session.remove(csrf::SESSION_KEY).await?;
    Ok(())
}

async fn logout(session: CurrentSession, _: Checked<forms::TokenOnly>) -> Page {
    session.destroy();
    Ok(Redirect::to("/").into_response())
}

async fn admin_page(
    State(state): State<AppState>,
    session: CurrentSession,
    headers: HeaderMap,
) -> Page {
    let user = session.get::<String>(USER).await?;
    let role = session.get::<String>(ROLE).await?;
    if role.as_deref() != Some(ADMIN) {
        let text = match user {
            Some(_) => "This page is for administrators; your role is not admin.",
            None => "This page is for administrators. Log in first.",
        };
        return Ok(error_page(StatusCode::FORBIDDEN, text));
    }
    let admins = state.admins.join(", ");
    render(
        &state,
        &session,
        &headers,
        "Admin",
        StatusCode::OK,
        |t| html::admin(t, &admins),
        false,
    )
    .await
}

/// Switches the logged-in user's role: anyone may drop to `user`; only the
/// `--admin-users` may take `admin`. A change rotates the session id.
async fn change_role(
    State(state): State<AppState>,
    session: CurrentSession,
    Checked(body): Checked<forms::Role>,
) -> Page {
    let Some(user) = session.get::<String>(USER).await? else {
        return Ok(error_page(StatusCode::FORBIDDEN, "Log in first."));
    };
    let role = match body.role.as_str() {
        ADMIN if is_admin_user(&state, &user) => ADMIN,
        ADMIN => {
            return Ok(error_page(
                StatusCode::FORBIDDEN,
                "You are not one of the administrators.",
            ));
        }
        USER_ROLE => USER_ROLE,
        _ => return Ok(error_page(StatusCode::BAD_REQUEST, "No such role.")),
    };
    if session.get::<String>(ROLE).await?.as_deref() != Some(role) {
        session.insert(ROLE, role).await?;
        new_privileges(&session).await?;
    }
    Ok(Redirect::to("/").into_response())
}

async fn cart_page(
    State(state): State<AppState>,
    session: CurrentSession,
    headers: HeaderMap,
) -> Page {
    let mut items = Vec::new();
    for key in session.keys().await? {
        if let Some(item) = key.strip_prefix(CART_PREFIX) {
            let quantity = session.get::<u32>(&key).await?.unwrap_or(0);
            items.push((item.to_owned(), quantity));
        }
    }
    render(
        &state,
        &session,
        &headers,
        "Cart",
        StatusCode::OK,
        |t| html::cart(t, &items),
        true,
    )
    .await
}

async fn cart_add(session: CurrentSession, Checked(body): Checked<forms::Item>) -> Page {
    cart_change(session, body, true).await
}

async fn cart_remove(session: CurrentSession, Checked(body): Checked<forms::Item>) -> Page {
    cart_change(session, body, false).await
}

async fn cart_change(session: CurrentSession, body: forms::Item, add: bool) -> Page {
    let Some(item) = clean_name(&body.item) else {
        let text = format!("An item name has 1 to {MAX_NAME_CHARS} characters.");
        return Ok(error_page(StatusCode::BAD_REQUEST, &text));
    };
    let key = format!("{CART_PREFIX}{item}");
    if add {
        let quantity = session.get::<u32>(&key).await?.unwrap_or(0);
        session.insert(&key, &quantity.saturating_add(1)).await?;
    } else {
        session.remove(&key).await?;
    }
    Ok(Redirect::to("/cart").into_response())
}

async fn counter(
    State(state): State<AppState>,
    session: CurrentSession,
    headers: HeaderMap,
) -> Page {
    let visits = session
        .get::<u64>(VISITS)
        .await?
        .unwrap_or(0)
        .saturating_add(1);
    session.insert(VISITS, &visits).await?;
    render(
        &state,
        &session,
        &headers,
        "Visits",
        StatusCode::OK,
        |_| html::counter(visits),
        false,
    )
    .await
}

async fn session_page(
    State(state): State<AppState>,
    session: CurrentSession,
    headers: HeaderMap,
) -> Page {
    let expires_at = session.expires_at().await?;
    let expires_at = expires_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| expires_at.to_string());
    let has_expired = session.has_expired().await?;
    let exists = session.exists().await?;
    let entries: Vec<(String, String)> = session
        .entries()
        .await?
        .into_iter()
        .map(|(key, value)| {
            // The token is a secret of this session's forms; the page shows it exists.
            let shown = if key == csrf::SESSION_KEY {
                "\"(hidden)\"".to_owned()
            } else {
                value.to_string()
            };
            (key, shown)
        })
        .collect();
    let c = &state.config;
    let options = [
        ("cookie name", c.cookie_name().to_owned()),
        ("secure", c.secure().to_string()),
        ("http only", c.http_only().to_string()),
        ("same site", format!("{:?}", c.same_site())),
        ("path", c.path().to_owned()),
        ("domain", c.domain().unwrap_or("(none)").to_owned()),
        ("partitioned", c.partitioned().to_string()),
        ("idle lifetime", c.idle_lifetime().to_string()),
        ("absolute lifetime", c.absolute_lifetime().to_string()),
        ("permanent", c.permanent().to_string()),
        ("refresh each request", c.refresh_each_request().to_string()),
        ("refresh threshold", c.refresh_threshold().to_string()),
    ];
    let view = html::SessionView {
        expires_at: &expires_at,
        has_expired,
        exists,
        entries: &entries,
        options: &options,
    };
    render(
        &state,
        &session,
        &headers,
        "Session",
        StatusCode::OK,
        |_| html::session(&view),
        false,
    )
    .await
}

async fn not_found() -> Response<Body> {
    error_page(StatusCode::NOT_FOUND, "There is no such page.")
}
