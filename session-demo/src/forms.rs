//! The POST forms, and the extractor that checks their CSRF token before any
//! handler sees them: a handler that takes [`Checked`] cannot forget the check.

use axum::extract::{Form, FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use session_core::Session;

use crate::app::{AppError, error_page};
use crate::csrf;

/// A form that carries the CSRF field.
pub(crate) trait WithCsrf {
    /// The submitted token (empty when the field was missing).
    fn csrf(&self) -> &str;
}

/// The logout form: only the token.
#[derive(Deserialize)]
pub(crate) struct TokenOnly {
    #[serde(default)]
    csrf: String,
}

/// The login form. Missing fields are empty, so they are rejected by the checks
/// (403 for the token, 400 for the name) rather than by the form parser.
#[derive(Deserialize)]
pub(crate) struct Login {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub remember: Option<String>,
}

/// A cart form: one item.
#[derive(Deserialize)]
pub(crate) struct Item {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub item: String,
}

impl WithCsrf for TokenOnly {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
impl WithCsrf for Login {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
impl WithCsrf for Item {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// A urlencoded form whose CSRF token matched the session's. Rejections are pages:
/// 400 for a body that is not such a form, 403 for a missing or wrong token.
pub(crate) struct Checked<T>(pub T);

impl<S, T> FromRequest<S> for Checked<T>
where
    S: Send + Sync,
    T: DeserializeOwned + WithCsrf + Send,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Some(session) = request.extensions().get::<Session>().cloned() else {
            return Err(error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The session layer is missing.",
            ));
        };
        let Form(body) = Form::<T>::from_request(request, state)
            .await
            .map_err(|rejection| error_page(StatusCode::BAD_REQUEST, &rejection.body_text()))?;
        match csrf::verify(&session, body.csrf()).await {
            Ok(true) => Ok(Checked(body)),
            Ok(false) => Err(error_page(
                StatusCode::FORBIDDEN,
                "This form was not accepted: its CSRF token is missing or wrong. \
                 Reload the page and try again.",
            )),
            Err(error) => Err(AppError::from(error).into_response()),
        }
    }
}
