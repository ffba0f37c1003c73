//! Secret values that never print.
//!
//! The client secret, the device code and both tokens are newtypes whose `Debug` and
//! `Display` print `Name([redacted])`. The only way to the value is [`ClientSecret::expose`]
//! (and its siblings), which is greppable: every call site is a place a secret leaves memory.

use alloc::string::String;
use core::fmt;

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);
        secret_type!(@impl $name);
    };
    ($(#[$doc:meta])* $name:ident, bearer) => {
        $(#[$doc])*
        ///
        /// Only RFC 6750 `b64token` values are accepted when read back ([`is_b64token`]): a token
        /// that could break out of an `Authorization` header is a corrupt file.
        #[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);
        secret_type!(@impl $name);

        impl TryFrom<String> for $name {
            type Error = &'static str;
            fn try_from(s: String) -> Result<Self, &'static str> {
                if is_b64token(&s) {
                    Ok($name(s))
                } else {
                    Err(concat!("the ", stringify!($name), " holds characters a bearer token cannot have (or is empty)"))
                }
            }
        }

        impl From<$name> for String {
            fn from(t: $name) -> String {
                t.0
            }
        }
    };
    (@impl $name:ident) => {
        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                $name(value.into())
            }

            /// The secret value itself. Every call is a place where the secret leaves the
            /// type: keep it out of logs, errors and URLs.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// A short, non-reversible fingerprint (FNV-1a, 32 bits, hex) safe to print in
            /// diagnostics, so two reports can tell whether they saw the same secret.
            pub fn fingerprint(&self) -> String {
                fingerprint(self.0.as_bytes())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[redacted]")
            }
        }
    };
}

secret_type!(
    /// The OAuth client secret from Zoho's API console (a password).
    ClientSecret
);
secret_type!(
    /// The device code: whoever holds it can collect the tokens once the user approves.
    DeviceCode
);
secret_type!(
    /// An access token (`Authorization: Zoho-oauthtoken ...`), valid for about an hour.
    AccessToken,
    bearer
);
secret_type!(
    /// A refresh token: mints access tokens until revoked.
    RefreshToken,
    bearer
);

/// Whether `s` is an RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
/// Zoho's `1004.<hex>.<hex>` fits; CR, LF, spaces and quotes do not, so a token can never add a
/// header to a request or a shell command that quotes it.
pub fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

/// FNV-1a over the bytes, as 8 hex digits.
fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    alloc::format!("{h:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = ClientSecret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "ClientSecret([redacted])");
        assert_eq!(format!("{s}"), "[redacted]");
        let t = RefreshToken::new("1000.abc");
        assert_eq!(format!("{t:?}"), "RefreshToken([redacted])");
        let a = AccessToken::new("1000.def");
        assert!(!format!("{a:?} {a}").contains("def"));
        let d = DeviceCode::new("1004.xyz");
        assert!(!format!("{d:?} {d}").contains("xyz"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn fingerprint_is_stable_and_not_the_value() {
        let t = AccessToken::new("1000.def");
        assert_eq!(t.fingerprint(), AccessToken::new("1000.def").fingerprint());
        assert_ne!(t.fingerprint(), AccessToken::new("1000.deg").fingerprint());
        assert_eq!(t.fingerprint().len(), 8);
    }
}
