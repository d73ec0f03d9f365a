//! `dagrun serve` tests (being written).
