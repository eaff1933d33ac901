//! The `Layer`: configuration shared by every service it wraps.

use session_core::SessionManager;
use tower_layer::Layer;

use crate::{SessionService, StatusResponse};

/// Adds sessions to a service: reads the session cookie, puts a lazy
/// [`Session`](session_core::Session) into the request's extensions, and after the
/// inner service answered, finishes the session and appends `Set-Cookie` as the
/// manager decides.
///
/// Built from a [`SessionManager`] (which owns the store and every cookie and expiry
/// option) and adjusted builder-style:
///
/// ```
/// use std::sync::Arc;
/// use http::StatusCode;
/// use session_core::{SessionConfig, SessionManager};
/// use session_memory::MemoryStore;
/// use session_tower::{SessionLayer, StatusResponse};
///
/// let manager = SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default());
/// let layer = SessionLayer::new(manager)
///     .save_on_server_error(false)
///     .error_response(StatusResponse(StatusCode::SERVICE_UNAVAILABLE));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct SessionLayer<E = StatusResponse> {
    pub(crate) manager: SessionManager,
    pub(crate) on_error: E,
    pub(crate) save_on_server_error: bool,
}

impl SessionLayer {
    /// A layer over `manager`: store errors answer `500` with an empty body, and a
    /// `5xx` response from the inner service does not save the session.
    pub fn new(manager: SessionManager) -> Self {
        Self {
            manager,
            on_error: StatusResponse::default(),
            save_on_server_error: false,
        }
    }
}

impl<E> SessionLayer<E> {
    /// Sets what answers the request when its session cannot be finished (see
    /// [`ErrorResponder`](crate::ErrorResponder)); the handler's response is
    /// discarded then.
    pub fn error_response<E2>(self, on_error: E2) -> SessionLayer<E2> {
        SessionLayer {
            manager: self.manager,
            on_error,
            save_on_server_error: self.save_on_server_error,
        }
    }

    /// Whether a `5xx` response from the inner service still saves the session
    /// (default `false`: a failed request leaves the session as it was, so a
    /// half-done operation is not persisted, and its cookie is left alone).
    #[must_use]
    pub fn save_on_server_error(mut self, save: bool) -> Self {
        self.save_on_server_error = save;
        self
    }

    /// The manager behind the layer.
    pub fn manager(&self) -> &SessionManager {
        &self.manager
    }
}

impl<S, E: Clone> Layer<S> for SessionLayer<E> {
    type Service = SessionService<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            layer: self.clone(),
        }
    }
}
