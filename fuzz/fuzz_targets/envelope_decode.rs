//! Session-envelope decoding (session-core's JSON envelope), through the public
//! API: a client-side manager whose sealer hands the fuzzer's bytes to the core
//! as an authentic payload. Every access must return a value or a typed error,
//! never panic.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use session_core::time::OffsetDateTime;
use session_core::{CookieSealer, Error, SessionConfig, SessionManager};

/// "Opens" a cookie value by returning its bytes, so they reach the envelope
/// decoder as if they had been authenticated.
struct PassThrough;

impl CookieSealer for PassThrough {
    fn seal(&self, _: &str, payload: &[u8], _: OffsetDateTime) -> Result<String, Error> {
        Ok(String::from_utf8_lossy(payload).into_owned())
    }

    fn open(&self, _: &str, value: &str, _: OffsetDateTime) -> Option<Vec<u8>> {
        Some(value.as_bytes().to_vec())
    }
}

static RUNTIME: LazyLock<(tokio::runtime::Runtime, SessionManager)> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let manager = SessionManager::client_side(Arc::new(PassThrough), SessionConfig::default());
    (rt, manager)
});

fuzz_target!(|data: &[u8]| {
    let (rt, manager) = &*RUNTIME;
    // Cookie values are strings; the core caps them at 4,096 bytes.
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    rt.block_on(async {
        // Decode every value, then change one so `finish` re-encodes the rest.
        let session = manager.session(Some(value));
        let _ = session.entries().await;
        let _ = session.expires_at().await;
        let _ = session.insert("fuzz", &1u8).await;
        let _ = manager.finish(&session).await;
    });
});
