//! What can go wrong after the handler ran, and how it becomes a response.

use http::{Response, StatusCode};

/// Why the layer could not complete a request's session.
///
/// When this happens the handler's response is discarded and the layer's
/// [`ErrorResponder`] answers instead: the client never sees a success whose session
/// changes were not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manager could not store the session (the store failed, a save kept
    /// conflicting, the payload was too large, …). Nothing of the request's changes
    /// is half-written: the store holds the old session or the new one.
    #[error("the session could not be saved: {0}")]
    Session(#[from] session_core::Error),
    /// The manager's cookie is not a valid header value. The configuration and the
    /// token alphabet make this unreachable in practice; it is an error, not a panic.
    #[error("the session cookie is not a valid Set-Cookie header value")]
    SetCookieHeader(#[from] http::header::InvalidHeaderValue),
}

/// Turns an [`Error`] into the response the client gets.
///
/// Implemented by [`StatusResponse`] (the default: an empty 500) and by every
/// `Fn(&Error) -> http::Response<B>` closure that is `Clone + Send + Sync`, which is
/// the place to log the error and render a page.
pub trait ErrorResponder<B>: Clone + Send + Sync + 'static {
    /// The response for `error`.
    fn respond(&self, error: &Error) -> Response<B>;
}

/// An empty-bodied response with a fixed status (the default is
/// `500 Internal Server Error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusResponse(pub StatusCode);

impl Default for StatusResponse {
    fn default() -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl<B: Default> ErrorResponder<B> for StatusResponse {
    fn respond(&self, _error: &Error) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = self.0;
        response
    }
}

impl<B, F> ErrorResponder<B> for F
where
    F: Fn(&Error) -> Response<B> + Clone + Send + Sync + 'static,
{
    fn respond(&self, error: &Error) -> Response<B> {
        self(error)
    }
}
