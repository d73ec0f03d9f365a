//! CI export (to be written).
