//! The POST forms, and the extractor that reads them (bounded in size and time)
//! and checks their CSRF token before any handler sees them: a handler that takes
//! [`Checked`] cannot forget the check. It is the only reader of request bodies.

use axum::extract::{Form, FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use session_core::Session;

use crate::app::{AppError, AppState, USER, error_page};
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

/// The role switch: the role wanted.
#[derive(Deserialize)]
pub(crate) struct Role {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub role: String,
}

impl WithCsrf for Role {
    fn csrf(&self) -> &str {
        &self.csrf
    }
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

/// A urlencoded form whose CSRF token matched. Rejections are pages: 408 for a
/// body that did not arrive within `--body-read-timeout`, 413 for one larger than
/// `--max-body-bytes`, 400 for a body that is not such a form, 403 for a missing
/// or wrong token.
///
/// A logged-in session's forms carry the session's token; an anonymous visitor's
/// carry a signed double-submit token (see `csrf.rs`).
pub(crate) struct Checked<T>(pub T);

impl<T> FromRequest<AppState> for Checked<T>
where
    T: DeserializeOwned + WithCsrf + Send,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(session) = request.extensions().get::<Session>().cloned() else {
            return Err(error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The session layer is missing.",
            ));
        };
        let headers = request.headers().clone();
        let read =
            tokio::time::timeout(state.body_timeout, Form::<T>::from_request(request, state));
        let Form(body) = match read.await {
            Err(_elapsed) => {
                return Err(error_page(
                    StatusCode::REQUEST_TIMEOUT,
                    "The form did not arrive in time. Please try again.",
                ));
            }
            Ok(Err(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                let text = format!(
                    "The form is larger than this server accepts ({} bytes).",
                    state.max_body_bytes
                );
                return Err(error_page(StatusCode::PAYLOAD_TOO_LARGE, &text));
            }
            Ok(Err(rejection)) => {
                return Err(error_page(StatusCode::BAD_REQUEST, &rejection.body_text()));
            }
            Ok(Ok(form)) => form,
        };
        let verified = match session.get::<String>(USER).await {
            Ok(Some(_)) => csrf::verify_session(&session, body.csrf()).await,
            Ok(None) => Ok(state.csrf.verify_anonymous(&headers, body.csrf())),
            Err(error) => Err(error),
        };
        match verified {
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
