//! The request mix (issue 22): whole requests through the tower layers, as users
//! with cookie jars make them — 80% read-only, 15% small changes, 2.5% logouts
//! and 2.5% logins — ours (session-tower's `SessionLayer` over `SessionManager`
//! with refresh on) against tower-sessions (`SessionManagerLayer` with
//! `Expiry::OnInactivity` and `always_save`), counting every call into the store.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::header::{COOKIE, HeaderMap, HeaderValue, SET_COOKIE};
use http::{Request, Response, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;

use std::time::Duration;

use crate::Args;
use crate::backends::Backend;
use crate::harness::{BoxError, Contestant, Op, Rng, RunSpec, Sample};
use crate::workload::Workload;
use setup::Pair;

mod counting;
pub mod report;
pub mod setup;

pub use counting::{Calls, Counts, Method};

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Reads one key of the session.
    Read,
    /// Reads one key and changes another (a small counter).
    Change,
    /// Signs in: a user without a session gets a new, authenticated one holding
    /// the workload's data and a user id.
    Login,
    /// Signs out: the session is destroyed and the cookie removed.
    Logout,
}

/// Every kind, in report order.
pub const KINDS: [Kind; 4] = [Kind::Read, Kind::Change, Kind::Login, Kind::Logout];

impl Kind {
    /// Position in [`KINDS`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name in the report.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Change => "change",
            Kind::Login => "login",
            Kind::Logout => "logout",
        }
    }
}

/// A signed-in user draws the next request from these weights (out of their sum,
/// 39): read 32, change 6, logout 1. A signed-out user's next request is always a
/// login. Every logout is thus followed by exactly one login, and in the long run
/// requests are 32 : 6 : 1 : 1 out of 40 — 80% reads, 15% changes, 2.5% logouts and
/// 2.5% logins — while every read and change finds a session.
const WEIGHTS: [u64; 3] = [32, 6, 1];

/// The fewest store calls per request this mix allows a server-side store that
/// keeps the no-lost-update promise: a read is one call (the load, with the refresh
/// in it where due), a change two (its handler reads the session, and the
/// compare-and-set needs the version that load returned), a login one (a create)
/// and a logout one (an expire). Weighted by the long-run shares of [`WEIGHTS`]:
/// (32 + 2 × 6 + 1 + 1) / 40 = 1.15.
pub fn calls_floor() -> f64 {
    let [read, change, logout] = WEIGHTS.map(|w| w as f64);
    let login = logout;
    (read + 2.0 * change + logout + login) / (read + change + logout + login)
}

/// The next request of a user who is signed in or not.
pub fn next_kind(rng: &mut Rng, signed_in: bool) -> Kind {
    if !signed_in {
        return Kind::Login;
    }
    let total: u64 = WEIGHTS.iter().sum();
    let x = rng.below(total as usize) as u64;
    if x < WEIGHTS[0] {
        Kind::Read
    } else if x < WEIGHTS[0] + WEIGHTS[1] {
        Kind::Change
    } else {
        Kind::Logout
    }
}

/// The key every read request reads (a string in every workload).
const READ_KEY: &str = "k00";
/// The key every change writes.
const WRITE_KEY: &str = "visits";
/// The key a login writes.
const USER_KEY: &str = "user";

/// What the handlers share: the data a login stores and a counter for values.
#[derive(Debug)]
pub struct AppState {
    data: Vec<(String, Value)>,
    counter: AtomicU64,
}

impl AppState {
    /// A login stores `data` (and a user id).
    pub fn new(data: Vec<(String, Value)>) -> Arc<Self> {
        Arc::new(Self {
            data,
            counter: AtomicU64::new(0),
        })
    }

    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

fn status(ok: bool) -> Result<Response<()>, Infallible> {
    let mut r = Response::new(());
    if !ok {
        // Not a server error: the layers would then skip the save and hide the
        // mistake as a mere slowdown. The contestant turns it into an error.
        *r.status_mut() = StatusCode::CONFLICT;
    }
    Ok(r)
}

/// Ours: the handler behind session-tower's layer.
pub async fn ours_handler(
    app: Arc<AppState>,
    req: Request<()>,
) -> Result<Response<()>, Infallible> {
    let (Some(session), Some(kind)) = (
        req.extensions().get::<session_core::Session>(),
        req.extensions().get::<Kind>(),
    ) else {
        return status(false);
    };
    let ok = match kind {
        Kind::Read => matches!(session.get::<String>(READ_KEY).await, Ok(Some(_))),
        Kind::Change => {
            matches!(session.get::<String>(READ_KEY).await, Ok(Some(_)))
                && session.insert(WRITE_KEY, &app.next()).await.is_ok()
        }
        Kind::Login => {
            let mut ok = true;
            for (k, v) in &app.data {
                ok &= session.insert(k, v).await.is_ok();
            }
            ok && session.insert(USER_KEY, &app.next()).await.is_ok()
        }
        Kind::Logout => {
            session.destroy();
            true
        }
    };
    status(ok)
}

/// tower-sessions: the same handler behind its layer.
pub async fn tower_handler(
    app: Arc<AppState>,
    req: Request<()>,
) -> Result<Response<()>, Infallible> {
    let (Some(session), Some(kind)) = (
        req.extensions().get::<tower_sessions::Session>(),
        req.extensions().get::<Kind>(),
    ) else {
        return status(false);
    };
    let ok = match kind {
        Kind::Read => matches!(session.get::<String>(READ_KEY).await, Ok(Some(_))),
        Kind::Change => {
            matches!(session.get::<String>(READ_KEY).await, Ok(Some(_)))
                && session.insert(WRITE_KEY, app.next()).await.is_ok()
        }
        Kind::Login => {
            let mut ok = true;
            for (k, v) in &app.data {
                ok &= session.insert(k, v).await.is_ok();
            }
            ok && session.insert(USER_KEY, app.next()).await.is_ok()
        }
        Kind::Logout => session.flush().await.is_ok(),
    };
    status(ok)
}

/// The cookie a browser keeps after a response: the `Set-Cookie` named `name`
/// replaces it, a removal (empty value or `Max-Age=0`) clears it.
pub fn next_jar(name: &str, current: Option<String>, headers: &HeaderMap) -> Option<String> {
    let mut jar = current;
    for header in headers.get_all(SET_COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        let mut parts = text.split(';');
        let Some((n, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
            continue;
        };
        if n != name {
            continue;
        }
        let removed = value.is_empty() || parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
        jar = (!removed).then(|| value.to_owned());
    }
    jar
}

/// One user: its request stream and its cookie jar.
#[derive(Debug)]
struct User {
    rng: Rng,
    cookie: Option<String>,
}

/// A service under test, driven by users (one per harness task).
pub struct Mix<S> {
    service: S,
    cookie_name: String,
    users: Vec<Mutex<User>>,
    calls: Arc<Calls>,
}

impl<S> Mix<S> {
    /// `users` users (none signed in yet) of `service`, whose cookie is
    /// `cookie_name`; requests are counted in `calls`.
    pub fn new(
        service: S,
        cookie_name: &str,
        users: usize,
        calls: Arc<Calls>,
        seed: u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            service,
            cookie_name: cookie_name.to_owned(),
            users: (0..users)
                .map(|i| {
                    Mutex::new(User {
                        rng: Rng::new(seed.wrapping_add(i as u64)),
                        cookie: None,
                    })
                })
                .collect(),
            calls,
        })
    }
}

impl<S: setup::App> Mix<S> {
    /// Sends one request of `kind` for `user`, with its cookie; checks the answer
    /// and keeps the cookie the response leaves.
    async fn request(&self, user: usize, kind: Kind) -> Result<(), BoxError> {
        let lock = || self.users[user].lock().map_err(|_| "poisoned");
        let cookie = lock()?.cookie.clone();
        let mut req = Request::new(());
        req.extensions_mut().insert(kind);
        if let Some(c) = &cookie {
            let value = HeaderValue::try_from(format!("{}={c}", self.cookie_name))?;
            req.headers_mut().insert(COOKIE, value);
        }
        self.calls.request(kind);
        let response = counting::as_kind(kind, self.service.clone().oneshot(req)).await?;
        if !response.status().is_success() {
            return Err(
                format!("a {} request answered {}", kind.label(), response.status()).into(),
            );
        }
        let jar = next_jar(&self.cookie_name, cookie, response.headers());
        match kind {
            Kind::Login if jar.is_none() => return Err("a login set no cookie".into()),
            Kind::Logout if jar.is_some() => return Err("a logout left the cookie".into()),
            _ => {}
        }
        lock()?.cookie = jar;
        Ok(())
    }

    /// Signs every signed-in user out (removes what the runs left in the store).
    pub async fn sign_out_all(&self) -> Result<(), BoxError> {
        for user in 0..self.users.len() {
            let signed_in = self.users[user]
                .lock()
                .map_err(|_| "poisoned")?
                .cookie
                .is_some();
            if signed_in {
                self.request(user, Kind::Logout).await?;
            }
        }
        Ok(())
    }
}

impl<S: setup::App> Contestant for Mix<S> {
    /// One request of the user `task`; `op` and `slot` do not apply.
    async fn op(&self, _op: Op, _slot: usize, task: usize) -> Result<(), BoxError> {
        let kind = {
            let mut u = self.users[task].lock().map_err(|_| "poisoned")?;
            let signed_in = u.cookie.is_some();
            next_kind(&mut u.rng, signed_in)
        };
        self.request(task, kind).await
    }

    async fn remove_created(&self, _n: usize) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Everything measured in one cell (backend, payload, tasks).
#[derive(Debug, Clone)]
pub struct Row {
    /// The backend.
    pub backend: Backend,
    /// The nominal payload size a login stores.
    pub size: usize,
    /// Concurrent users.
    pub tasks: usize,
    /// Ours, run by run.
    pub ours: Vec<Sample>,
    /// tower-sessions, run by run (same rounds as `ours`); empty without a store.
    pub tower: Vec<Sample>,
    /// Ours' store calls and requests over every run (warm-ups included).
    pub ours_counts: Counts,
    /// tower-sessions' store calls and requests.
    pub tower_counts: Counts,
}

/// Measures the mix on `backend` with logins storing about `kib` KiB, at every
/// `--tasks` count, and appends a [`Row`] per count to `rows`.
pub async fn measure(
    args: &Args,
    backend: Backend,
    url: &str,
    kib: usize,
    rng: &mut Rng,
    rows: &mut Vec<Row>,
) -> Result<(), BoxError> {
    let size = kib * 1024;
    let workload = Workload::new(size, args.strings_only, rng);
    let mut data: Vec<(String, Value)> = workload.data.into_iter().collect();
    data.sort_by(|a, b| a.0.cmp(&b.0));
    let app = AppState::new(data);
    let users = args.tasks.iter().copied().max().unwrap_or(1).max(1);
    let dir = args.file_dir.clone().unwrap_or_else(std::env::temp_dir);
    let pair = setup::build(
        backend,
        url,
        &dir,
        args.sql_pool,
        &app,
        users,
        setup::OursSettings {
            two_step: args.mix_two_step,
            refresh_threshold: args.mix_refresh_threshold,
        },
        rng,
    )
    .await?;
    let mut sides: Vec<&setup::Side> = vec![&pair.ours];
    sides.extend(pair.tower.as_ref());
    let outcome = async {
        for &tasks in &args.tasks {
            let spec = RunSpec {
                tasks,
                sessions: tasks,
                fresh: 0,
                warmup: Duration::from_secs_f64(args.warmup),
                duration: Duration::from_secs_f64(args.duration),
            };
            let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); sides.len()];
            let mut counts = vec![Counts::default(); sides.len()];
            for rep in 0..args.repeats.max(1) {
                // Alternate the order, so a busy spell hurts both sides alike.
                for i in 0..sides.len() {
                    let j = (i + rep) % sides.len();
                    let before = sides[j].calls.snapshot();
                    samples[j].push((sides[j].run)(Op::Load, spec, rng.next_u64()).await?);
                    counts[j].add(&sides[j].calls.snapshot().since(&before));
                }
            }
            let row = Row {
                backend,
                size,
                tasks,
                ours: samples[0].clone(),
                tower: samples.get(1).cloned().unwrap_or_default(),
                ours_counts: counts[0],
                tower_counts: counts.get(1).copied().unwrap_or_default(),
            };
            eprintln!("[bench]   {}", report::summary(&row));
            rows.push(row);
        }
        Ok::<(), BoxError>(())
    }
    .await;
    let Pair {
        ours,
        tower,
        teardown,
    } = pair;
    let signed_out = ours.sign_out.await;
    let theirs = match tower {
        Some(t) => t.sign_out.await,
        None => Ok(()),
    };
    let removed = teardown.await;
    outcome.and(signed_out).and(theirs).and(removed)
}

#[cfg(test)]
mod tests;
