//! The conformance suite for `SessionInterface` stores (being written).
