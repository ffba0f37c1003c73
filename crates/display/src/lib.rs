//! Pairing screens (being built: issue 5).
