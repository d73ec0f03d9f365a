//! Detects files landing for `FileLanded` triggers (to be written).
