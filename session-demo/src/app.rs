//! The routes and their handlers.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Response, StatusCode};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::{get, post};
use session_core::time::format_description::well_known::Rfc3339;
use session_core::{SessionConfig, SessionManager};
use session_tower::{CurrentSession, SessionLayer};

use crate::forms::{self, Checked};
use crate::{csrf, html};

/// Longest user name or cart item, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// The session key of the logged-in user's name.
const USER: &str = "user";
/// The session key of the visit counter.
const VISITS: &str = "visits";
/// Cart items live under `cart:<item>`, one key each, so that concurrent additions
/// of different items merge instead of overwriting one another.
const CART_PREFIX: &str = "cart:";

#[derive(Clone)]
struct AppState {
    backend: &'static str,
    config: SessionConfig,
}

/// The demo's router over `manager`, with the session layer installed.
pub fn router(manager: SessionManager, backend: &'static str) -> Router {
    let state = AppState {
        backend,
        config: manager.config().clone(),
    };
    let layer = SessionLayer::new(manager).error_response(|error: &session_tower::Error| {
        eprintln!("session-demo: session not saved: {error}");
        error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The session could not be saved. Please try again.",
        )
    });
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/cart", get(cart_page).post(cart_add))
        .route("/cart/remove", post(cart_remove))
        .route("/counter", get(counter))
        .route("/session", get(session_page))
        .fallback(not_found)
        .layer(layer)
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
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
async fn render(
    state: &AppState,
    session: &CurrentSession,
    title: &str,
    status: StatusCode,
    content: impl FnOnce(&str) -> String,
    needs_token: bool,
) -> Page {
    let user = session.get::<String>(USER).await?;
    // A token is drawn only for pages with a form, so browsing does not create
    // sessions; the logout button is a form too.
    let token = if needs_token || user.is_some() {
        csrf::token(session).await?
    } else {
        String::new()
    };
    let frame = html::Frame {
        title,
        user: user.as_deref(),
        csrf: &token,
        backend: state.backend,
    };
    Ok((status, Html(html::page(&frame, &content(&token)))).into_response())
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

async fn home(State(state): State<AppState>, session: CurrentSession) -> Page {
    let user = session.get::<String>(USER).await?;
    let content = html::home(user.as_deref());
    render(&state, &session, "Home", StatusCode::OK, |_| content, false).await
}

async fn login_page(State(state): State<AppState>, session: CurrentSession) -> Page {
    render(
        &state,
        &session,
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
    Checked(body): Checked<forms::Login>,
) -> Page {
    let Some(user) = clean_name(&body.username) else {
        let error = format!("A user name has 1 to {MAX_NAME_CHARS} characters.");
        return render(
            &state,
            &session,
            "Log in",
            StatusCode::BAD_REQUEST,
            |t| html::login_form(t, Some(&error)),
            true,
        )
        .await;
    };
    session.insert(USER, user).await?;
    if body.remember.is_some() {
        session.set_permanent(Some(true)).await?;
    }
    // New privileges, new id: a session id planted before login is worthless after.
    session.cycle_id().await?;
    // And a new CSRF token (drawn by the next page): someone who planted the
    // pre-login session knows its token, which must not work for the logged-in user.
    session.remove(csrf::SESSION_KEY).await?;
    Ok(Redirect::to("/").into_response())
}

async fn logout(session: CurrentSession, _: Checked<forms::TokenOnly>) -> Page {
    session.destroy();
    Ok(Redirect::to("/").into_response())
}

async fn cart_page(State(state): State<AppState>, session: CurrentSession) -> Page {
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

async fn counter(State(state): State<AppState>, session: CurrentSession) -> Page {
    let visits = session
        .get::<u64>(VISITS)
        .await?
        .unwrap_or(0)
        .saturating_add(1);
    session.insert(VISITS, &visits).await?;
    render(
        &state,
        &session,
        "Visits",
        StatusCode::OK,
        |_| html::counter(visits),
        false,
    )
    .await
}

async fn session_page(State(state): State<AppState>, session: CurrentSession) -> Page {
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
