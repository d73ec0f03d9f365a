//! The webhook HTTP server (to be written).
