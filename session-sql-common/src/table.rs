//! Table names: validated once, then quoted into SQL text.
//!
//! SQL cannot bind an identifier as a parameter, so the table name is the one piece of
//! configuration that ends up inside statement text. It is therefore restricted to a
//! conservative alphabet that needs no escaping in either dialect, and rejected with a
//! typed error otherwise — never "escaped and hoped for".

use std::fmt;

use session_core::{ConfigError, Error};

/// Longest accepted table name. PostgreSQL truncates identifiers at 63 bytes and MySQL
/// rejects more than 64; the stores derive names such as `<table>_bucket_idx` and
/// `<table>_migrations` from the table name, which must fit too.
pub const MAX_TABLE_NAME_LEN: usize = 48;

/// A validated SQL table name: 1 to [`MAX_TABLE_NAME_LEN`] characters of
/// `[a-z0-9_]`, not starting with a digit.
///
/// Lower case only, because PostgreSQL folds unquoted names to lower case and MySQL's
/// case sensitivity of table names depends on the server's file system
/// (`lower_case_table_names`); a lower-case name means the same table everywhere.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TableName(Box<str>);

impl TableName {
    /// Validates `name`. A name outside the alphabet above is
    /// [`ConfigError::Invalid`] with the setting `"table name"`.
    pub fn new(name: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| {
            Error::Config(ConfigError::Invalid {
                setting: "table name",
                reason: reason.to_owned(),
            })
        };
        if name.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if name.len() > MAX_TABLE_NAME_LEN {
            return Err(invalid("must be at most 48 characters"));
        }
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(invalid("must not start with a digit"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(invalid(
                "may contain only lower-case ASCII letters, digits and '_'",
            ));
        }
        Ok(Self(name.into()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name derived from this one (`<table><suffix>`), for the index and the
    /// migrations table. `suffix` is a constant of the stores, not user input.
    pub fn with_suffix(&self, suffix: &'static str) -> String {
        debug_assert!(suffix.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        format!("{}{suffix}", self.0)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in ["sessions", "_s", "tower_sessions_2", &"a".repeat(48)] {
            assert_eq!(TableName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_hostile_and_odd_names() {
        for bad in [
            "",
            "sessions; DROP TABLE users",
            "a\"b",
            "a`b",
            "s.t",
            "Sessions",
            "1abc",
            "séance",
            "a b",
            "a-b",
            "a\0b",
            &"a".repeat(49),
        ] {
            match TableName::new(bad) {
                Err(Error::Config(ConfigError::Invalid { setting, .. })) => {
                    assert_eq!(setting, "table name")
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
