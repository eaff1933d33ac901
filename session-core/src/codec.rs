//! The versioned session envelope: the bytes a store keeps for a session.
//!
//! ```json
//! {"v":1,"created":1767225600000,"abs":1767830400000,"idle":3600,"perm":true,"data":{"cart":[1,2]}}
//! ```
//!
//! `created` and `abs` (the absolute deadline) are Unix milliseconds; `idle` (seconds)
//! and `perm` are per-session overrides, absent when unset; `iat` (milliseconds) is
//! when the current id was issued, absent when it equals `created`.
//!
//! A rotated session's old record becomes a forward pointer for a grace window:
//! `{"v":1,"fwd":"<43 characters>"}`, the new token masked with a pad derived from
//! the old one (see `rotation`), so only the old cookie's holder can follow it.
//!
//! Decoding is lazy: each value in `data` is kept as its raw JSON text (a
//! [`RawValue`]), checked for well-formedness but not turned into a tree, and only
//! deserialized into a Rust type when a handler asks for that key. Encoding writes
//! unchanged values back byte for byte. A request that reads one key of a 16 KiB
//! session, or only refreshes it, never pays for building and re-serializing all of it.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::{Duration, OffsetDateTime};

use crate::DecodeError;

/// The envelope format this build writes and reads.
pub(crate) const ENVELOPE_VERSION: u64 = 1;

/// Session values by key, each as raw JSON. A `BTreeMap` so encoding is deterministic.
pub(crate) type Data = BTreeMap<String, Box<RawValue>>;

/// Everything in a session record besides its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub created_at: OffsetDateTime,
    pub absolute_deadline: OffsetDateTime,
    /// Per-session idle lifetime, overriding the configured one.
    pub idle: Option<Duration>,
    /// Per-session permanence, overriding the configured one.
    pub permanent: Option<bool>,
    /// When the current id (token) was issued: creation, `cycle_id` or rotation.
    pub id_issued_at: OffsetDateTime,
}

/// A decoded envelope.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    pub meta: Meta,
    pub data: Data,
}

/// What a stored record holds: a session, or a forward pointer left by rotation.
#[derive(Debug, Clone)]
pub(crate) enum Stored {
    Session(Envelope),
    /// The new token, masked with a pad derived from the old token.
    Forward([u8; 32]),
}

/// The wire shape. Every field but `v` is optional here so that an envelope of an
/// unknown version is reported as such instead of as malformed JSON.
#[derive(Deserialize)]
struct WireIn {
    v: u64,
    fwd: Option<String>,
    iat: Option<i64>,
    created: Option<i64>,
    abs: Option<i64>,
    idle: Option<i64>,
    perm: Option<bool>,
    data: Option<Data>,
}

#[derive(Serialize)]
struct WireOut<'a> {
    v: u64,
    created: i64,
    abs: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    perm: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    data: &'a Data,
}

#[derive(Serialize)]
struct WireForward<'a> {
    v: u64,
    fwd: &'a str,
}

fn to_millis(t: OffsetDateTime) -> i64 {
    // i128 nanoseconds → i64 milliseconds: fits for ±292 million years.
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_millis(ms: i64) -> Result<OffsetDateTime, DecodeError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(|_| {
        DecodeError::Malformed {
            reason: "timestamp out of range",
        }
    })
}

impl Stored {
    /// Decodes a stored record. Never panics; any defect is a typed [`DecodeError`].
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire: WireIn =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.into()))?;
        if wire.v != ENVELOPE_VERSION {
            return Err(DecodeError::UnknownVersion(wire.v));
        }
        match &wire.fwd {
            Some(fwd) => {
                let mut masked = [0u8; 32];
                match URL_SAFE_NO_PAD.decode_slice(fwd.as_bytes(), &mut masked) {
                    Ok(32) if fwd.len() == 43 => Ok(Stored::Forward(masked)),
                    _ => Err(DecodeError::Malformed {
                        reason: "bad forward pointer",
                    }),
                }
            }
            None => Envelope::from_wire(wire).map(Stored::Session),
        }
    }

    /// Encodes a forward pointer.
    pub(crate) fn encode_forward(masked: &[u8; 32]) -> Vec<u8> {
        let fwd = URL_SAFE_NO_PAD.encode(masked);
        serde_json::to_vec(&WireForward {
            v: ENVELOPE_VERSION,
            fwd: &fwd,
        })
        .unwrap_or_default()
    }
}

impl Envelope {
    /// Decodes a session envelope (a forward pointer is malformed here). Never
    /// panics; any defect is a typed [`DecodeError`].
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match Stored::decode(bytes)? {
            Stored::Session(e) => Ok(e),
            Stored::Forward(_) => Err(DecodeError::Malformed {
                reason: "unexpected forward pointer",
            }),
        }
    }

    fn from_wire(wire: WireIn) -> Result<Self, DecodeError> {
        let missing = |reason| DecodeError::Malformed { reason };
        let created_at = from_millis(wire.created.ok_or(missing("missing created"))?)?;
        let absolute_deadline = from_millis(wire.abs.ok_or(missing("missing abs"))?)?;
        let idle = match wire.idle {
            Some(s) if s > 0 => Some(Duration::seconds(s)),
            Some(_) => return Err(missing("non-positive idle lifetime")),
            None => None,
        };
        let id_issued_at = match wire.iat {
            Some(ms) => from_millis(ms)?,
            None => created_at,
        };
        Ok(Self {
            meta: Meta {
                created_at,
                absolute_deadline,
                idle,
                permanent: wire.perm,
                id_issued_at,
            },
            data: wire.data.ok_or(missing("missing data"))?,
        })
    }

    /// Encodes the envelope. Raw values are copied through unchanged.
    pub(crate) fn encode(meta: &Meta, data: &Data) -> Vec<u8> {
        let wire = WireOut {
            v: ENVELOPE_VERSION,
            created: to_millis(meta.created_at),
            abs: to_millis(meta.absolute_deadline),
            idle: meta.idle.map(|d| d.whole_seconds()),
            perm: meta.permanent,
            iat: (meta.id_issued_at != meta.created_at).then(|| to_millis(meta.id_issued_at)),
            data,
        };
        // Serializing plain integers, bools, strings and already-valid raw JSON into
        // a Vec cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{JsonError, JsonErrorKind};
    use time::macros::datetime;

    fn meta() -> Meta {
        Meta {
            created_at: datetime!(2030-01-01 0:00 UTC),
            absolute_deadline: datetime!(2030-01-08 0:00 UTC),
            idle: None,
            permanent: None,
            id_issued_at: datetime!(2030-01-01 0:00 UTC),
        }
    }

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    /// serde_json quotes offending input in its messages; the decode error and its
    /// sources must not (stored bytes may hold tokens or personal data).
    #[test]
    fn envelope_errors_never_quote_the_stored_data() {
        for bytes in [
            &br#"{"v":1,"data":"secret-4711"}"#[..],
            br#"{"v":"secret-4711"}"#,
            br#"{"v":1,"fwd":["secret-4711"]}"#,
            br#"{"v":1,"created":"secret-4711"}"#,
        ] {
            let err = Envelope::decode(bytes).unwrap_err();
            let mut chain = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(s) = source {
                chain.push_str(&format!(": {s} / {s:?}"));
                source = s.source();
            }
            chain.push_str(&format!(" / {err:?}"));
            assert!(!chain.contains("secret"), "{chain}");
            assert!(
                matches!(
                    err,
                    DecodeError::Json(JsonError {
                        kind: JsonErrorKind::Data,
                        line: 1,
                        ..
                    })
                ),
                "{chain}"
            );
        }
    }

    #[test]
    fn known_answer_encoding() {
        let mut data = Data::new();
        data.insert("b".into(), raw(r#"{"x": [1, 2]}"#));
        data.insert("a".into(), raw("1"));
        let bytes = Envelope::encode(&meta(), &data);
        // Keys sorted; raw values kept byte for byte, whitespace included.
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"v":1,"created":1893456000000,"abs":1894060800000,"data":{"a":1,"b":{"x": [1, 2]}}}"#
        );
    }

    #[test]
    fn round_trip_with_overrides() {
        let mut m = meta();
        m.idle = Some(Duration::seconds(90));
        m.permanent = Some(true);
        m.id_issued_at = datetime!(2030-01-02 0:00 UTC);
        let mut data = Data::new();
        data.insert("k\"ey\u{e9}".into(), raw(r#""v\u00e9""#));
        let env = Envelope::decode(&Envelope::encode(&m, &data)).unwrap();
        assert_eq!(env.meta, m);
        assert_eq!(env.data.len(), 1);
        assert_eq!(env.data["k\"ey\u{e9}"].get(), r#""v\u00e9""#);
    }

    #[test]
    fn forward_pointers_round_trip_and_are_not_sessions() {
        let masked = [7u8; 32];
        let bytes = Stored::encode_forward(&masked);
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"v":1,"fwd":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc"}"#
        );
        assert!(matches!(Stored::decode(&bytes), Ok(Stored::Forward(m)) if m == masked));
        assert!(Envelope::decode(&bytes).is_err());
        assert!(Stored::decode(br#"{"v":1,"fwd":"short"}"#).is_err());
    }

    #[test]
    fn unknown_version_is_typed() {
        let e = Envelope::decode(br#"{"v":2,"whatever":[]}"#).unwrap_err();
        assert!(matches!(e, DecodeError::UnknownVersion(2)), "{e:?}");
    }

    #[test]
    fn malformed_inputs_are_typed_errors() {
        let cases: &[&[u8]] = &[
            b"",
            b"\xff\xfe",
            b"null",
            b"[]",
            br#"{"v":1}"#,
            br#"{"v":1,"created":0,"abs":0}"#,
            br#"{"v":1,"created":0,"abs":0,"data":[]}"#,
            br#"{"v":1,"created":9223372036854775807,"abs":0,"data":{}}"#,
            br#"{"v":1,"created":0,"abs":0,"idle":0,"data":{}}"#,
            br#"{"v":1,"created":0,"abs":0,"data":{"a":}}"#,
            br#"{"v":"1","created":0,"abs":0,"data":{}}"#,
            br#"{"v":1,"created":0,"abs":0,"data":{"a":1}"#,
        ];
        for c in cases {
            assert!(
                Envelope::decode(c).is_err(),
                "{:?}",
                String::from_utf8_lossy(c)
            );
        }
    }
}
