//! `GET /api/ping`: an API route with a per-session budget of `--api-rate-limit`
//! calls per `--api-rate-window`, kept in the session itself.
//!
//! The budget must hold across instances sharing a store, so a call is admitted only
//! once its increment is *stored*, by compare-and-set against the version the call
//! read. The session layer cannot give that guarantee: it saves after the handler
//! answered, and on a conflicting save it replays this request's values onto the
//! other request's version (right for a cart, where each item is its own key; wrong
//! for a counter, where two requests that both read 4 would both store 5 and both be
//! admitted). So this handler does not use the layer's session. It opens the
//! request's session through a second manager over the same store whose
//! `save_attempts` is 1, calls [`SessionManager::finish_if_unchanged`] itself (which
//! never merges: within the instance the manager's per-session queue would otherwise
//! replay the increment onto the previous call's version), and answers 200 only when
//! that save succeeded. A conflict means another call (or another request
//! of this session) saved first: the handler starts over from a fresh read, and
//! decides again. Each conflict is one successful save of someone else, so after
//! `limit + save_attempts` attempts the call gives up with a 503 (not admitted).
//!
//! Only logged-in sessions may call it (401 otherwise), so the route never creates
//! a session. On the cookie backend the budget is only as good as the cookie: a
//! client can replay an older cookie (the documented limit of client-side sessions).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header::{COOKIE, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use session_core::time::OffsetDateTime;
use session_core::time::format_description::well_known::Rfc3339;
use session_core::{CookieDecision, Error, Session, SessionConfig, SessionManager};

use crate::app::{AppError, AppState, USER};

/// The session key of the budget.
pub(crate) const BUDGET_KEY: &str = "api_budget";

/// How far [`attempts`](Api::attempts) may grow with the limit.
const MAX_ATTEMPTS: u32 = 512;

/// The rate-limited API's settings and its strict manager.
pub(crate) struct Api {
    /// A manager over the layer's store that never merges a conflicting save.
    strict: SessionManager,
    limit: u32,
    window: Duration,
    /// Most attempts of one call (see the module documentation).
    attempts: u32,
}

/// What the session keeps: the current window and the calls admitted in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Budget {
    /// Start of the window, Unix milliseconds.
    window_start_ms: i64,
    /// Calls admitted (and stored) in this window.
    used: u32,
}

/// The outcome of one attempt.
enum Attempt {
    Admitted {
        call: u32,
        resets_at_ms: i64,
        decision: CookieDecision,
    },
    Refused {
        resets_at_ms: i64,
    },
    NotLoggedIn,
    Conflict,
}

impl Api {
    /// The API over `manager`'s store with `strict` (its configuration with
    /// `save_attempts` 1), or, for cookie sessions, over `manager` itself: a sealed
    /// cookie never conflicts.
    pub(crate) fn new(
        manager: &SessionManager,
        strict: SessionConfig,
        limit: u32,
        window: Duration,
    ) -> Self {
        let config = manager.config();
        let strict = match manager.store() {
            Some(store) => SessionManager::new(store.clone(), strict),
            None => manager.clone(),
        };
        Self {
            strict,
            limit,
            window,
            attempts: limit
                .min(MAX_ATTEMPTS)
                .saturating_add(config.save_attempts()),
        }
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX)
    }

    /// Reads the budget, and if there is room, stores the increment by
    /// compare-and-set.
    async fn attempt(&self, session: &Session) -> Result<Attempt, Error> {
        if session.get::<String>(USER).await?.is_none() {
            return Ok(Attempt::NotLoggedIn);
        }
        let now = now_ms();
        let window = self.window_ms();
        let current = session
            .get::<Budget>(BUDGET_KEY)
            .await
            // A value this build cannot read is an expired budget, not an outage.
            .unwrap_or(None)
            .filter(|b| {
                now < b.window_start_ms.saturating_add(window)
                    && b.window_start_ms <= now.saturating_add(window)
            });
        let (window_start_ms, used) = current.map_or((now, 0), |b| (b.window_start_ms, b.used));
        let resets_at_ms = window_start_ms.saturating_add(window);
        if used >= self.limit {
            return Ok(Attempt::Refused { resets_at_ms });
        }
        let next = Budget {
            window_start_ms,
            used: used + 1,
        };
        session.insert(BUDGET_KEY, &next).await?;
        let decision = match self.strict.finish_if_unchanged(session).await {
            Ok(decision) => decision,
            Err(Error::Conflict | Error::TooManyConflicts { .. }) => return Ok(Attempt::Conflict),
            Err(error) => return Err(error),
        };
        // `finish` also succeeds when the session was destroyed meanwhile: it then
        // drops the change (never resurrects a session). Admit only what is stored.
        if !session.exists().await? || session.get::<Budget>(BUDGET_KEY).await? != Some(next) {
            return Ok(Attempt::NotLoggedIn);
        }
        Ok(Attempt::Admitted {
            call: next.used,
            resets_at_ms,
            decision,
        })
    }
}

fn now_ms() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

/// Whole seconds from now until `at_ms`, rounded up, at least 1.
fn seconds_until(at_ms: i64) -> i64 {
    let ms = at_ms.saturating_sub(now_ms()).max(0);
    (ms.saturating_add(999) / 1000).max(1)
}

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// `GET /api/ping`.
pub(crate) async fn ping(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let api = &state.api;
    let cookies: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let window_seconds = api.window.as_secs_f64();
    for attempt in 0..api.attempts {
        let session = api
            .strict
            .session_from_cookie_headers(cookies.iter().map(String::as_str));
        match api.attempt(&session).await {
            Ok(Attempt::Admitted {
                call,
                resets_at_ms,
                decision,
            }) => {
                let body = json!({
                    "call": call,
                    "limit": api.limit,
                    "remaining": api.limit - call,
                    "window_seconds": window_seconds,
                    "window_resets_at": rfc3339(resets_at_ms),
                });
                let mut response = Json(body).into_response();
                if let Some(Ok(cookie)) = decision.set_cookie_header().map(HeaderValue::try_from) {
                    response.headers_mut().append(SET_COOKIE, cookie);
                }
                return response;
            }
            Ok(Attempt::Refused { resets_at_ms }) => {
                let retry_after = seconds_until(resets_at_ms);
                let retry_at = rfc3339(resets_at_ms);
                let body = json!({
                    "error": "rate limit exceeded",
                    "message": format!(
                        "This session has used all {} calls of its {window_seconds} s window. \
                         Retry in {retry_after} s (at {retry_at}).",
                        api.limit
                    ),
                    "limit": api.limit,
                    "window_seconds": window_seconds,
                    "retry_after_seconds": retry_after,
                    "retry_at": retry_at,
                });
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(RETRY_AFTER, retry_after.to_string())],
                    Json(body),
                )
                    .into_response();
            }
            Ok(Attempt::NotLoggedIn) => {
                let body = json!({
                    "error": "not logged in",
                    "message": "The API is for logged-in sessions: log in at /login first.",
                });
                return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
            }
            Ok(Attempt::Conflict) => jitter(attempt).await,
            Err(error) => return AppError::from(error).into_response(),
        }
    }
    let body = json!({
        "error": "busy",
        "message": "This session is changing too fast; the call was not counted. Retry in 1 s.",
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(RETRY_AFTER, "1")],
        Json(body),
    )
        .into_response()
}

/// A short random pause before the next attempt, so that the calls that lost a
/// race do not all come back at the same instant.
async fn jitter(attempt: u32) {
    let cap_micros: u64 = (250u64 << attempt.min(6)).min(20_000);
    let mut bytes = [0u8; 8];
    let micros = match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes) % cap_micros,
        Err(_) => cap_micros,
    };
    tokio::time::sleep(Duration::from_micros(micros)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_times_round_up() {
        assert_eq!(seconds_until(now_ms() - 5_000), 1);
        let s = seconds_until(now_ms() + 1_500);
        assert!((1..=2).contains(&s), "{s}");
        assert!(rfc3339(0).starts_with("1970-01-01T00:00:00"));
    }
}
