//! Zoho device flow core (being built: issue 2).
#![no_std]
