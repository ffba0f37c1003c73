//! The token store: one JSON file, `0600` in a `0700` directory, written atomically.
//!
//! * **Atomic, power-loss safe:** write a temp file in the same directory, fsync it, rename it
//!   over the token file, fsync the directory. A reader sees the old file or the new one,
//!   never half of one; a power cut leaves one of the two.
//! * **One refresh at a time across processes:** an exclusive `flock` on `token.json.lock`.
//!   A process that waited for the lock re-reads the file and uses the token the other one
//!   just minted (Zoho allows only 10 mints per refresh token per 10 minutes).
//! * **Nothing lost:** a failed login or refresh never touches the file; a corrupt file is
//!   reported with its path and replaced only by a new login.
//! * Expiries are stored as Unix time (milliseconds) so they survive reboots.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zoho_device_core::{Profile, ServerUrl, Timestamp, Tokens};

use crate::exit::{AppError, Exit};

/// The largest token file read (a real one is under 1 KB).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// What the file holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredToken {
    /// Format version.
    pub version: u32,
    /// `zoho` or `rfc8628`.
    pub profile: String,
    /// The client the tokens belong to.
    pub client_id: String,
    /// Tokens; `expires_at` in Unix milliseconds.
    #[serde(flatten)]
    pub tokens: Tokens,
    /// rfc8628: the token endpoint (refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<ServerUrl>,
    /// rfc8628: the revocation endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_url: Option<ServerUrl>,
    /// When the device was paired (Unix ms).
    pub paired_at: u64,
    /// When the access token was last minted (Unix ms).
    pub refreshed_at: u64,
}

impl StoredToken {
    /// This pairing with freshly minted `tokens`, refreshed at `now` (Unix time).
    pub fn with_tokens(&self, tokens: Tokens, now: Timestamp) -> StoredToken {
        StoredToken {
            tokens,
            refreshed_at: now.as_millis(),
            ..self.clone()
        }
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        if self.profile == "rfc8628" {
            Profile::Rfc8628
        } else {
            Profile::Zoho
        }
    }
}

/// Unix time now, in the core's timestamp.
pub fn wall_now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Timestamp::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// How long [`TokenStore::lock`] waits for another process's refresh.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The token file and its lock.
#[derive(Clone, Debug)]
pub struct TokenStore {
    path: PathBuf,
}

/// A held refresh lock; released on drop.
#[derive(Debug)]
pub struct RefreshLock {
    file: File,
}

impl Drop for RefreshLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl TokenStore {
    /// The store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> TokenStore {
        TokenStore { path: path.into() }
    }

    /// The token file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".lock");
        PathBuf::from(p)
    }

    /// Reads the token file: `Ok(None)` when there is none; exit 6 with the path when corrupt.
    pub fn load(&self) -> Result<Option<StoredToken>, AppError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(AppError::new(
                    Exit::NeedsPairing,
                    format!("cannot read the token file {}: {e}", self.path.display()),
                )
                .hint(
                    "check its owner and permissions (the file should be 0600, owned by the user running zoho-device)",
                ));
            }
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > MAX_FILE_BYTES {
            return Err(self.corrupt("it is far too large"));
        }
        let text = io::read_to_string(file).map_err(|e| self.corrupt(&e.to_string()))?;
        let stored: StoredToken = serde_json::from_str(&text).map_err(|e| self.corrupt(&e.to_string()))?;
        if stored.version != 1 {
            return Err(self.corrupt(&format!("unknown format version {}", stored.version)));
        }
        Ok(Some(stored))
    }

    /// Reads the token file; exit 6 "not paired" when there is none.
    pub fn load_required(&self) -> Result<StoredToken, AppError> {
        self.load()?.ok_or_else(|| {
            AppError::not_paired(format!(
                "this device is not paired (no token file at {})",
                self.path.display()
            ))
        })
    }

    fn corrupt(&self, why: &str) -> AppError {
        AppError::new(
            Exit::NeedsPairing,
            format!("the token file {} is corrupt ({why})", self.path.display()),
        )
        .hint("it is kept as it is; run `zoho-device login` to pair again, which replaces it")
    }

    /// Writes `token` atomically: temp file (0600), fsync, rename, fsync of the directory.
    pub fn save(&self, token: &StoredToken) -> Result<(), AppError> {
        let io_err = |what: &str, e: io::Error| {
            AppError::new(Exit::Unexpected, format!("cannot {what} {}: {e}", self.path.display()))
                .hint("check that the directory exists or can be created, is writable, and the disk is not full")
        };
        let dir = self.ensure_dir().map_err(|e| io_err("create the directory of", e))?;
        let mut bytes = serde_json::to_vec_pretty(token).map_err(|e| io_err("encode", io::Error::other(e)))?;
        bytes.push(b'\n');
        write_atomically(&self.path, &bytes).map_err(|e| io_err("write", e))?;
        CHANGED_THIS_RUN.store(true, std::sync::atomic::Ordering::Relaxed);
        self.sweep_orphans(&dir);
        Ok(())
    }

    /// Where the agent mirrors its status line (`STATUS=`) for `doctor`: `<token file>.agent`,
    /// never a secret.
    pub fn agent_state_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".agent");
        PathBuf::from(p)
    }

    /// Removes temp files of writers that died mid-write (SIGKILL, power cut): each holds a
    /// copy of a token. A temp file is an orphan when the process named in it is gone.
    fn sweep_orphans(&self, dir: &Path) {
        let name = self.path.file_name().and_then(|n| n.to_str()).unwrap_or("token.json");
        let prefix = format!(".{name}.tmp.");
        if !Path::new("/proc/self").exists() {
            return; // No way to tell a live writer from a dead one: keep everything.
        }
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Deletes the token file. The lock file stays: a process already waiting on it must lock
    /// the same inode as the next one to come (unlinking it would let two refresh at once).
    pub fn delete(&self) -> io::Result<bool> {
        let existed = match fs::remove_file(&self.path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        CHANGED_THIS_RUN.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(dir) = self.path.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(existed)
    }

    /// Takes the cross-process refresh lock (blocking until it is free).
    pub fn lock(&self) -> Result<RefreshLock, AppError> {
        self.lock_within(LOCK_WAIT)
    }

    /// [`TokenStore::lock`], giving up after `wait`: a refresh takes seconds, so a lock held
    /// longer belongs to a hung process, and waiting forever would hang this one too (the agent
    /// would stop refreshing while its watchdog still sees it alive).
    pub fn lock_within(&self, wait: std::time::Duration) -> Result<RefreshLock, AppError> {
        self.ensure_dir().map_err(|e| {
            AppError::new(
                Exit::Unexpected,
                format!("cannot create the directory of {}: {e}", self.path.display()),
            )
        })?;
        let lock_path = self.lock_path();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| {
                AppError::new(
                    Exit::Unexpected,
                    format!("cannot open the lock file {}: {e}", lock_path.display()),
                )
            })?;
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(10);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RefreshLock { file }),
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < wait => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(200));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(AppError::new(
                        Exit::Unavailable,
                        format!(
                            "another process has held the refresh lock {} for over {} s",
                            lock_path.display(),
                            wait.as_secs()
                        ),
                    )
                    .hint(format!(
                        "a refresh takes seconds: look for a hung zoho-device process (`fuser -v {}`) and stop it",
                        lock_path.display()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(AppError::new(
                        Exit::Unexpected,
                        format!("cannot lock {}: {e}", lock_path.display()),
                    ));
                }
            }
        }
    }

    /// Creates the directory (0700) when missing; returns it.
    pub fn ensure_dir(&self) -> io::Result<PathBuf> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.exists() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        }
        Ok(dir)
    }
}

/// Replaces `path` with `bytes` so that a reader or a power cut sees the old content or the new,
/// never a mix: a temp file (`.NAME.tmp.PID`, 0600) beside it, fsync, rename, fsync of the
/// directory. The directory must exist.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Set once this process has saved or deleted a token file (what `main` says on Ctrl-C).
static CHANGED_THIS_RUN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process has saved or deleted a token file.
pub fn changed_this_run() -> bool {
    CHANGED_THIS_RUN.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zoho_device_core::{AccessToken, RefreshToken};

    fn sample() -> StoredToken {
        StoredToken {
            version: 1,
            profile: "zoho".into(),
            client_id: "1004.X".into(),
            tokens: Tokens {
                access_token: AccessToken::new("1000.access"),
                refresh_token: Some(RefreshToken::new("1000.refresh")),
                api_domain: Some(ServerUrl::parse("https://www.zohoapis.eu").unwrap()),
                accounts_url: Some(ServerUrl::parse("https://accounts.zoho.eu").unwrap()),
                location: Some("eu".into()),
                scope: Some("ZohoBooks.settings.READ".into()),
                token_type: "Bearer".into(),
                expires_at: Timestamp::from_millis(1_800_000_000_000),
            },
            token_url: None,
            revocation_url: None,
            paired_at: 1,
            refreshed_at: 2,
        }
    }

    #[test]
    fn round_trip_with_private_permissions() {
        let dir = tempdir();
        let store = TokenStore::new(dir.join("sub/token.json"));
        assert!(store.load().unwrap().is_none());
        store.save(&sample()).unwrap();
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.tokens, sample().tokens);
        let mode = fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(dir.join("sub")).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        // No temp files left behind.
        assert_eq!(fs::read_dir(dir.join("sub")).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_files_are_reported_and_kept() {
        let dir = tempdir();
        let store = TokenStore::new(dir.join("token.json"));
        fs::write(store.path(), b"{\"version\":1, \"acc").unwrap();
        let e = store.load().unwrap_err();
        assert_eq!(e.exit, Exit::NeedsPairing);
        assert!(
            e.message.contains("corrupt") && e.message.contains("token.json"),
            "{}",
            e.message
        );
        assert_eq!(fs::read(store.path()).unwrap(), b"{\"version\":1, \"acc");
    }

    #[test]
    fn deleting_the_token_file_keeps_waiters_on_one_lock() {
        let dir = tempdir();
        let store = TokenStore::new(dir.join("token.json"));
        store.save(&sample()).unwrap();
        let held = store.lock().unwrap();
        assert!(store.delete().unwrap());
        // A process coming after the delete must still wait for the holder.
        let (tx, rx) = std::sync::mpsc::channel();
        let other = store.clone();
        let waiter = std::thread::spawn(move || {
            let _l = other.lock().unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(),
            "a second lock was granted while the first was held"
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("granted once released");
        waiter.join().unwrap();
    }

    #[test]
    fn a_lock_held_too_long_is_an_error_that_says_so() {
        let dir = tempdir();
        let store = TokenStore::new(dir.join("token.json"));
        let _held = store.lock().unwrap();
        let started = std::time::Instant::now();
        let other = TokenStore::new(dir.join("token.json"));
        let e = match other.lock_within(std::time::Duration::from_millis(300)) {
            Err(e) => e,
            Ok(_) => panic!("a second lock was granted while the first was held"),
        };
        assert!(started.elapsed() >= std::time::Duration::from_millis(300));
        assert_eq!(e.exit, Exit::Unavailable);
        assert!(e.message.contains("has held the refresh lock"), "{}", e.message);
        assert!(e.hint.unwrap_or_default().contains("fuser"));
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "zd-store-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }
}
