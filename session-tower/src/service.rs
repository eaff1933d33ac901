//! The `Service`: cookie in, session in the extensions, cookie out.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{COOKIE, HeaderMap, HeaderValue, SET_COOKIE, VARY};
use http::{Request, Response};
use session_core::{Session, SessionManager};
use tower_service::Service;

use crate::{Error, ErrorResponder, SessionLayer};

/// The service produced by [`SessionLayer`]; see there.
#[derive(Debug, Clone)]
pub struct SessionService<S, E> {
    pub(crate) inner: S,
    pub(crate) layer: SessionLayer<E>,
}

/// The future of [`SessionService::call`].
pub type ResponseFuture<B, Err> = Pin<Box<dyn Future<Output = Result<Response<B>, Err>> + Send>>;

impl<S, E, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S, E>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    E: ErrorResponder<ResBody>,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let session = session_for(&self.layer.manager, request.headers());
        request.extensions_mut().insert(session.clone());

        // The clone that was polled ready is the one to call; keep a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let mut response = inner.call(request).await?;
            // A server error is not saved unless the layer is told to.
            let save = !response.status().is_server_error() || layer.save_on_server_error;
            if save {
                match set_cookie(&layer.manager, &session).await {
                    Ok(Some(value)) => {
                        response.headers_mut().append(SET_COOKIE, value);
                    }
                    Ok(None) => {}
                    Err(error) => response = layer.on_error.respond(&error),
                }
            }
            if session.is_accessed() {
                vary_on_cookie(response.headers_mut());
            }
            Ok(response)
        })
    }
}

/// The request's session, from every `Cookie` header it carries (HTTP/2 may split
/// them). A header that is not valid UTF-8 is read lossily: the other cookies in it
/// still count, and a mangled session cookie is just no session.
fn session_for(manager: &SessionManager, headers: &HeaderMap) -> Session {
    let values: Vec<_> = headers
        .get_all(COOKIE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .collect();
    manager.session_from_cookie_headers(values.iter().map(|v| v.as_ref()))
}

/// Finishes the session; the `Set-Cookie` value to send, if any.
async fn set_cookie(
    manager: &SessionManager,
    session: &Session,
) -> Result<Option<HeaderValue>, Error> {
    let decision = manager.finish(session).await?;
    Ok(match decision.set_cookie_header() {
        Some(header) => Some(HeaderValue::try_from(header)?),
        None => None,
    })
}

/// Adds `Cookie` to the response's `Vary` (unless it is there already, or `*`): the
/// response was made with the request's session, so a shared cache must not hand it
/// to a client with another cookie.
fn vary_on_cookie(headers: &mut HeaderMap) {
    let covered = headers.get_all(VARY).iter().any(|value| {
        value.to_str().is_ok_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|name| name == "*" || name.eq_ignore_ascii_case(COOKIE.as_str()))
        })
    });
    if !covered {
        headers.append(VARY, HeaderValue::from_static("Cookie"));
    }
}
