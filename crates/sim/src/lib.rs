//! Zoho simulator (being built: issue 3).
