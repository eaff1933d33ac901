//! [`RoundTripProxy`], a TCP proxy that counts the round trips a client makes to its
//! server.
//!
//! The wire protocols the stores speak (Redis's, MySQL's, PostgreSQL's) are request
//! and response on a connection: a client that sends one request, or one pipeline or
//! batch, waits for the whole answer before it sends the next. So a round trip is a
//! *turn*: a stretch of client bytes that follows server bytes (or opens the
//! connection). The proxy counts turns without parsing any protocol, which is what a
//! test of "one round trip" needs: a batch of statements or a pipeline of commands sent
//! in one write is one turn, a request followed by another after its answer is two.
//! (A client that sends its next request before the answer to the previous one — a
//! multiplexed connection under concurrent use — makes fewer turns than requests; the
//! tests that count use one request at a time.)

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use session_core::time::{Duration, OffsetDateTime};
use session_core::{Bytes, NewRecord, SaveMode, SessionInterface};

use crate::contract::key;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards every connection to one server and counts the turns of all of them.
/// Stops forwarding when dropped.
#[derive(Debug)]
pub struct RoundTripProxy {
    url: String,
    port: u16,
    turns: Arc<AtomicU64>,
    acceptor: JoinHandle<()>,
}

impl RoundTripProxy {
    /// Starts a proxy on a free local port in front of the server `url` names (a URL
    /// of the form `scheme://[user[:password]@]host:port/…`).
    ///
    /// # Panics
    /// When the URL has no `host:port` or the proxy cannot listen (a test failure).
    pub async fn start(url: &str) -> Self {
        let (before, upstream, after) = split_host_port(url)
            .unwrap_or_else(|| panic!("the server URL has no host:port after its user info"));
        let upstream = upstream.to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let port = listener.local_addr().expect("local address").port();
        let turns = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&turns);
        let acceptor = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(forward(client, server, Arc::clone(&counted)));
            }
        });
        Self {
            url: format!("{before}127.0.0.1:{port}{after}"),
            port,
            turns,
            acceptor,
        }
    }

    /// The server URL with the proxy in place of the server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The local port the proxy listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Turns counted so far, over every connection.
    pub fn turns(&self) -> u64 {
        self.turns.load(Ordering::SeqCst)
    }
}

impl Drop for RoundTripProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

/// Runs `op` and returns its output with the round trips it made through `proxy`.
pub async fn counted<T>(proxy: &RoundTripProxy, op: impl Future<Output = T>) -> (T, u64) {
    let before = proxy.turns();
    let out = op.await;
    (out, proxy.turns() - before)
}

/// A record holding `a` until `expires_at`.
fn record(expires_at: OffsetDateTime) -> NewRecord {
    NewRecord {
        payload: Bytes::from_static(b"a"),
        expires_at,
    }
}

/// What a store with the one-step `load_and_touch` costs on the wire, `store` reaching
/// its server through `proxy` and no other caller using the proxy meanwhile; `now` is
/// the store's clock. A `load` is one round trip and a `load` and a `touch` two.
/// `load_and_touch` with the bound at the new deadline (a refresh threshold of 0) is
/// one, due or not, and for an absent key; with the bound before the new deadline (the
/// manager's default threshold) it is a plain load, one, plus a `touch` only when due.
///
/// # Panics
/// On any other count or answer (a test failure).
pub async fn load_and_touch_round_trips(
    store: &dyn SessionInterface,
    proxy: &RoundTripProxy,
    now: OffsetDateTime,
) {
    let (k, absent) = (key(), key());
    let hour = Duration::hours(1);
    store
        .save(&k, &record(now + hour), SaveMode::Create)
        .await
        .unwrap();
    // Every operation runs once before it is counted: its first run on a connection
    // may prepare a statement or load a script, one more round trip.
    let mut trips = Vec::new();
    for _ in 0..2 {
        let (found, n) = counted(proxy, store.load(&k)).await;
        assert!(found.unwrap().is_some());
        trips.push(n);
    }
    assert_eq!(
        trips[1], 1,
        "a load (the first run's round trips: {trips:?})"
    );
    trips.clear();
    for _ in 0..2 {
        let (_, n) = counted(proxy, async {
            store.load(&k).await.unwrap().unwrap();
            assert!(store.touch(&k, now + hour).await.unwrap());
        })
        .await;
        trips.push(n);
    }
    assert_eq!(trips[1], 2, "a load and a touch (the proxy counts each)");
    // (new deadline, due_before, whether due, round trips), in pairs: the first call
    // of a pair prepares what it runs, the second is counted and sees the deadline
    // the first one left.
    let calls = [
        // The bound at the new deadline (refresh on every request), due.
        (now + hour * 2, now + hour * 2, true, 1),
        (now + hour * 3, now + hour * 3, true, 1),
        // The same, not due: the deadline (3 h away) is after the bound.
        (now + hour / 2, now + hour / 2, false, 1),
        (now + hour, now + hour, false, 1),
        // The bound before the new deadline (a threshold above 0), due.
        (now + hour * 5, now + hour * 4, true, 2),
        (now + hour * 7, now + hour * 6, true, 2),
        // The same, not due.
        (now + hour * 24, now + hour * 6, false, 1),
        (now + hour * 25, now + hour * 5, false, 1),
    ];
    for (i, (new, due_before, due, expected)) in calls.into_iter().enumerate() {
        let what = format!("load_and_touch #{i} (due: {due})");
        let (answer, trips) = counted(proxy, store.load_and_touch(&k, new, due_before)).await;
        let answer = answer.unwrap().unwrap_or_else(|| panic!("{what}: None"));
        assert_eq!(answer.touched, due, "{what}");
        assert_eq!(&answer.record.payload[..], b"a", "{what}");
        if i % 2 == 1 {
            assert_eq!(trips, expected, "{what}: round trips");
        }
    }
    for i in 0..2 {
        let (answer, trips) =
            counted(proxy, store.load_and_touch(&absent, now + hour, now + hour)).await;
        assert_eq!(answer.unwrap(), None);
        if i == 1 {
            assert_eq!(trips, 1, "load_and_touch of an absent key: round trips");
        }
    }
}

/// `url` split around its `host:port`: what comes before it, it, and what follows.
fn split_host_port(url: &str) -> Option<(&str, &str, &str)> {
    let authority_start = url.find("://")? + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let host_start = authority_start + rest[..authority_len].rfind('@').map_or(0, |at| at + 1);
    let host_end = authority_start + authority_len;
    let host_port = &url[host_start..host_end];
    host_port
        .contains(':')
        .then(|| (&url[..host_start], host_port, &url[host_end..]))
}

/// Copies both ways until either side closes, counting a turn each time the client
/// sends after the server did (or first).
async fn forward(client: TcpStream, server: TcpStream, turns: Arc<AtomicU64>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // Whether the client's bytes are the latest to have passed.
    let client_spoke_last = Arc::new(AtomicBool::new(false));
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let spoke = Arc::clone(&client_spoke_last);
    let upstream = async move {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !spoke.swap(true, Ordering::SeqCst) {
                turns.fetch_add(1, Ordering::SeqCst);
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Before the client can see these bytes, so its answer to them is a new
            // turn.
            client_spoke_last.store(false, Ordering::SeqCst);
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_and_port_are_found_after_the_user_info() {
        assert_eq!(
            split_host_port("mysql://u:p@127.0.0.1:13306/db"),
            Some(("mysql://u:p@", "127.0.0.1:13306", "/db"))
        );
        assert_eq!(
            split_host_port("postgres://u:p%40x@db.example:5432?sslmode=disable"),
            Some(("postgres://u:p%40x@", "db.example:5432", "?sslmode=disable"))
        );
        assert_eq!(
            split_host_port("postgres://localhost:5432"),
            Some(("postgres://", "localhost:5432", ""))
        );
        assert_eq!(split_host_port("postgres://u@localhost/db"), None);
        assert_eq!(split_host_port("no scheme"), None);
    }

    /// Against an echo server: a client that writes and reads the answer twice makes
    /// two turns; a third write makes a third, whatever it holds.
    #[tokio::test]
    async fn a_turn_is_client_bytes_after_server_bytes() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0; 1024];
                    while let Ok(n @ 1..) = s.read(&mut buf).await {
                        let _ = s.write_all(&buf[..n]).await;
                    }
                });
            }
        });
        let proxy = RoundTripProxy::start(&format!("tcp://127.0.0.1:{port}/")).await;
        let addr = split_host_port(proxy.url()).unwrap().1.to_owned();
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0; 16];
        for _ in 0..2 {
            c.write_all(b"ab").await.unwrap();
            c.read_exact(&mut buf[..2]).await.unwrap();
        }
        assert_eq!(proxy.turns(), 2);
        c.write_all(b"cdef").await.unwrap();
        c.read_exact(&mut buf[..4]).await.unwrap();
        assert_eq!(proxy.turns(), 3);
    }
}
