//! Error classification, latency percentiles and process memory.

use std::collections::BTreeMap;

use session_core::Error;

/// A stable name for each kind of [`Error`] (the enum is non-exhaustive).
pub fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Collision => "collision",
        Error::Conflict => "conflict",
        Error::NotFound => "not_found",
        Error::Unsupported { .. } => "unsupported",
        Error::Backend {
            retryable: true, ..
        } => "backend_retryable",
        Error::Backend {
            retryable: false, ..
        } => "backend_permanent",
        Error::Decode(_) => "decode",
        Error::PayloadTooLarge { .. } => "payload_too_large",
        Error::CookieTooLarge { .. } => "cookie_too_large",
        Error::Value { .. } => "value",
        Error::TooManyConflicts { .. } => "too_many_conflicts",
        Error::Randomness(_) => "randomness",
        Error::Config(_) => "config",
        _ => "other",
    }
}

/// The error and its `source()` chain on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Counts of errors by kind, with the first message seen of each.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ErrorCounts {
    /// kind → count.
    pub counts: BTreeMap<String, u64>,
    /// kind → first message (with its source chain).
    pub examples: BTreeMap<String, String>,
}

impl ErrorCounts {
    /// Records one occurrence of `kind` with a message.
    pub fn add(&mut self, kind: &str, message: impl FnOnce() -> String) {
        *self.counts.entry(kind.to_owned()).or_default() += 1;
        if !self.examples.contains_key(kind) {
            self.examples.insert(kind.to_owned(), message());
        }
    }

    /// Records a store or manager error.
    pub fn add_error(&mut self, e: &Error) {
        self.add(error_kind(e), || error_chain(e));
    }

    /// Adds all of `other`.
    pub fn merge(&mut self, other: &ErrorCounts) {
        for (k, v) in &other.counts {
            *self.counts.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.examples {
            self.examples.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    /// Sum of all counts.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// The `q`-quantile (0..=1) of `sorted`, nearest rank; 0 when empty.
pub fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Resident set size of this process in KiB (`VmRSS` of /proc/self/status).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[7], 0.99), 7);
    }

    #[test]
    fn rss_parse() {
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t  12345 kB\nVmSwap: 0 kB\n"),
            Some(12345)
        );
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(rss_kib().is_some());
    }

    #[test]
    fn kinds_and_retryable() {
        let e = Error::retryable(std::io::Error::other("reset"));
        assert_eq!(error_kind(&e), "backend_retryable");
        assert!(e.is_retryable());
        let e = Error::backend(std::io::Error::other("auth"));
        assert_eq!(error_kind(&e), "backend_permanent");
        let mut c = ErrorCounts::default();
        c.add_error(&e);
        c.add_error(&Error::Conflict);
        c.add_error(&Error::Conflict);
        assert_eq!(c.total(), 3);
        assert!(c.examples["backend_permanent"].contains("auth"));
    }
}
