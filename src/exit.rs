//! Exit codes and the program's error type.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | an unexpected error (a bug, or a reply nobody documented) |
//! | 2 | usage or configuration error |
//! | 3 | the user denied access |
//! | 4 | the code expired (without `--kiosk`), or the server no longer accepts it |
//! | 5 | Zoho rejected the client (`invalid_client`, `invalid_client_secret`, wrong DC), or a standard server rejected it or does not allow it the device grant |
//! | 6 | not paired, or the refresh token is no longer valid: pair again |
//! | 7 | Zoho or the network unavailable after retries, Zoho's token throttle, a clock not set yet, or the refresh lock held elsewhere over 60 s |
//! | 8 | unsafe server data refused (`api_domain` outside the allow-list, non-https server) |
//! | 9 | the device's own state could not be read or written: the token file, its directory or the lock (disk full, read-only file system, a directory or FIFO where the file should be, an I/O error); the message names the path and the cause |

use std::fmt;

use zoho_device_core::{Error, ErrorKind};

/// A documented exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// 0.
    Ok = 0,
    /// 1.
    Unexpected = 1,
    /// 2.
    Usage = 2,
    /// 3.
    Denied = 3,
    /// 4.
    Expired = 4,
    /// 5.
    ClientRejected = 5,
    /// 6.
    NeedsPairing = 6,
    /// 7.
    Unavailable = 7,
    /// 8.
    Unsafe = 8,
    /// 9.
    Storage = 9,
}

impl Exit {
    /// The code as a process exit status.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// A short machine-readable name (the `kind` of JSON `error` events).
    pub fn name(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Unexpected => "unexpected",
            Exit::Usage => "usage",
            Exit::Denied => "denied",
            Exit::Expired => "expired",
            Exit::ClientRejected => "client_rejected",
            Exit::NeedsPairing => "needs_pairing",
            Exit::Unavailable => "unavailable",
            Exit::Unsafe => "unsafe",
            Exit::Storage => "storage",
        }
    }
}

/// An error for the user: what went wrong, what to do, and the exit code.
#[derive(Debug)]
pub struct AppError {
    /// Exit code.
    pub exit: Exit,
    /// What went wrong (never a secret).
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The core error, when there is one (for JSON events).
    pub core: Option<Error>,
}

impl AppError {
    /// An error with an exit code and message.
    pub fn new(exit: Exit, message: impl Into<String>) -> AppError {
        AppError {
            exit,
            message: message.into(),
            hint: None,
            core: None,
        }
    }

    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> AppError {
        AppError::new(Exit::Usage, message)
    }

    /// Not paired (exit 6).
    pub fn not_paired(message: impl Into<String>) -> AppError {
        AppError::new(Exit::NeedsPairing, message).hint("run `zoho-device login` to pair this device")
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> AppError {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AppError {}

/// The exit code of a core error.
pub fn exit_for(e: &Error) -> Exit {
    match e.kind() {
        ErrorKind::Denied => Exit::Denied,
        ErrorKind::Expired => Exit::Expired,
        ErrorKind::ClientRejected => Exit::ClientRejected,
        ErrorKind::NeedsPairing => Exit::NeedsPairing,
        ErrorKind::Unavailable => Exit::Unavailable,
        ErrorKind::Unsafe => Exit::Unsafe,
        ErrorKind::Config => Exit::Usage,
        _ => Exit::Unexpected,
    }
}

impl From<Error> for AppError {
    fn from(e: Error) -> AppError {
        let exit = exit_for(&e);
        // Multi-DC: a data centre refused the secret; name its own settings.
        if let Error::InvalidClientSecret {
            location: Some(loc), ..
        } = &e
            && let Some(dc) = zoho_device_core::DataCenter::from_location(loc)
        {
            let hint = format!(
                "set {} to the secret api-console.zoho.com shows for data centre {dc} (the client, Settings, Multi-DC); data centres without one use ZOHO_CLIENT_SECRET / --client-secret-file",
                crate::settings::dc_secret_settings(dc)
            );
            return AppError {
                exit,
                message: e.to_string(),
                hint: Some(hint),
                core: Some(e),
            };
        }
        let hint = match &e {
            Error::Unavailable { .. } => {
                Some("check the network (and HTTPS_PROXY), then try again; `zoho-device doctor` checks reachability")
            }
            Error::InvalidClient { .. } => {
                Some("`zoho-device doctor` probes which data centre knows the client ID; or try --dc auto")
            }
            Error::InvalidClientSecret { .. } => {
                Some("set ZOHO_CLIENT_SECRET or --client-secret-file to the secret shown in api-console.zoho.com")
            }
            Error::ClientRejected { .. } => Some(
                "check the client ID and the client secret (ZOHO_CLIENT_SECRET or --client-secret-file); if the server wants the other method, pass --client-auth basic or --client-auth post",
            ),
            Error::InvalidScope {
                offline_added: true, ..
            } => Some(
                "offline_access was added to ask for a refresh token: pass --no-offline-access (or offline_access = false in the config file) if this server does not offer it, and check --scope",
            ),
            Error::InvalidScope { .. } => Some("check --scope against the scopes the server offers"),
            Error::InvalidGrant { .. } => Some("run `zoho-device login` to pair again"),
            Error::CodeExpired | Error::CodeRejected { .. } => {
                Some("run `zoho-device login` again for a new code (or `--kiosk` to re-issue codes by itself)")
            }
            _ => None,
        };
        AppError {
            exit,
            message: e.to_string(),
            hint: hint.map(String::from),
            core: Some(e),
        }
    }
}
