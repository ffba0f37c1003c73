//! The embedded-svc adapter (issue 7).
