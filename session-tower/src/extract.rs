//! The axum extractor (feature `axum`).

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use session_core::Session;

/// The request's [`Session`] as an axum extractor; dereferences to it.
///
/// A newtype because neither `Session` nor axum's extractor traits belong to this
/// crate. Extracting it does no I/O: the session loads when first used.
///
/// ```
/// use axum::{Router, routing::get};
/// use session_tower::CurrentSession;
///
/// async fn visits(session: CurrentSession) -> Result<String, http::StatusCode> {
///     let n = session.get::<u64>("visits").await.ok().flatten().unwrap_or(0) + 1;
///     session.insert("visits", &n).await.map_err(|_| http::StatusCode::INTERNAL_SERVER_ERROR)?;
///     Ok(format!("visit number {n}"))
/// }
///
/// let app: Router = Router::new().route("/", get(visits));
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
pub struct CurrentSession(pub Session);

impl std::ops::Deref for CurrentSession {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.0
    }
}

impl From<CurrentSession> for Session {
    fn from(current: CurrentSession) -> Self {
        current.0
    }
}

/// The rejection of [`CurrentSession`] when no [`SessionLayer`](crate::SessionLayer)
/// wraps the route: a server misconfiguration, answered with `500`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no SessionLayer wraps this route")]
pub struct MissingSessionLayer;

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentSession {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .map(CurrentSession)
            .ok_or(MissingSessionLayer)
    }
}

/// `Option<CurrentSession>`: `None` on routes without the layer.
impl<S: Send + Sync> OptionalFromRequestParts<S> for CurrentSession {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Session>()
            .cloned()
            .map(CurrentSession))
    }
}
