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
//! * The file holds one [`Pairing`] (the core's record, version-1 JSON); expiries are stored as
//!   Unix time (milliseconds) so they survive reboots.
//! * **No links followed, no foreign directory:** temp files are created exclusively
//!   (`O_EXCL`, which also refuses a planted symbolic link) under unpredictable names, the lock
//!   and the token file are opened with `O_NOFOLLOW`, the token file is read only when it is a
//!   regular file of at most [`MAX_FILE_BYTES`], and nothing is written into a directory that
//!   another user owns or that group or others can write ([`TokenStore::check_writable`]).
//! * **Errors of the device's own state** (disk full, read-only, a directory where the file
//!   should be) exit 9 ([`Exit::Storage`]) naming the path and the cause.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// What the file holds: the core's one record of a pairing, as version-1 JSON.
pub use zoho_device_core::Pairing;
use zoho_device_core::Timestamp;

use crate::exit::{AppError, Exit};

/// The largest token file read or written (a real one is under 1 KB). Everything in it comes
/// from at most two token replies (the refresh token from the login, the rest from the last
/// refresh), each capped at [`zoho_device_core::http::MAX_RESPONSE_BYTES`] and never longer
/// re-encoded than received, plus a few hundred bytes of our own: so any token a reply can
/// carry fits, and [`TokenStore::save`] refuses anything larger, so that a file this program
/// wrote is always one it can read.
pub const MAX_FILE_BYTES: u64 = 4 * zoho_device_core::http::MAX_RESPONSE_BYTES as u64;

/// The files kept beside the token file (`<token file><suffix>`, in its private directory): one
/// list, so that each is named in one place and a writer's orphaned temp files are swept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beside {
    /// `.lock`: one refresh at a time across processes.
    Lock,
    /// `.agent`: the agent's status line for `doctor` (never a secret).
    AgentState,
    /// `.org`: the default Books organization `api` and the gateway remember.
    OrgMemo,
    /// `.budget`: the gateway's count of today's Books calls.
    Budget,
}

impl Beside {
    /// Every one of them.
    pub const ALL: [Beside; 4] = [Beside::Lock, Beside::AgentState, Beside::OrgMemo, Beside::Budget];

    /// The suffix after the token file's name.
    pub fn suffix(self) -> &'static str {
        match self {
            Beside::Lock => ".lock",
            Beside::AgentState => ".agent",
            Beside::OrgMemo => ".org",
            Beside::Budget => ".budget",
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
        self.beside(Beside::Lock)
    }

    /// One of the files kept beside the token file: `<token file><suffix>`.
    pub fn beside(&self, which: Beside) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(which.suffix());
        PathBuf::from(p)
    }

    /// The token file's directory.
    pub fn dir(&self) -> PathBuf {
        parent_dir(&self.path).to_path_buf()
    }

    /// Reads the token file: `Ok(None)` when there is none; exit 6 with the path when corrupt,
    /// exit 9 when it cannot be read (a directory or FIFO at its path, a symbolic link, an
    /// I/O error).
    pub fn load(&self) -> Result<Option<Pairing>, AppError> {
        let bytes = match crate::settings::read_regular_file(&self.path, MAX_FILE_BYTES, false) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => return Err(self.corrupt(&e.to_string())),
            Err(e) => return Err(storage_error("read the token file", &self.path, &e)),
        };
        // The pairing's own reading refuses a file that does not hang together (an unknown
        // profile or version, servers of both kinds): corrupt, never guessed.
        let pairing: Pairing = serde_json::from_slice(&bytes).map_err(|e| self.corrupt(&e.to_string()))?;
        Ok(Some(pairing))
    }

    /// Reads the token file; exit 6 "not paired" when there is none.
    pub fn load_required(&self) -> Result<Pairing, AppError> {
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

    /// Writes `token` atomically: temp file (0600, created exclusively), fsync, rename, fsync
    /// of the directory. Exit 9 naming the path and the cause when it cannot; exit 2 when the
    /// directory is not safe to write in ([`TokenStore::check_writable`]).
    pub fn save(&self, token: &Pairing) -> Result<(), AppError> {
        let mut bytes = serde_json::to_vec_pretty(token)
            .map_err(|e| AppError::new(Exit::Unexpected, format!("cannot encode the token: {e}")))?;
        bytes.push(b'\n');
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(AppError::new(
                Exit::Storage,
                format!(
                    "cannot write {}: the token is {} bytes, more than the {MAX_FILE_BYTES} a token file may hold",
                    self.path.display(),
                    bytes.len()
                ),
            )
            .hint("the server sent implausibly long fields; nothing was written"));
        }
        let (dir, meta) = self.prepare_dir()?;
        write_in(&dir, &meta, &self.path, &bytes)?;
        CHANGED_THIS_RUN.store(true, std::sync::atomic::Ordering::Relaxed);
        self.sweep_orphans(&dir);
        Ok(())
    }

    /// Checks that a token could be saved now, without touching the token file: the directory
    /// exists (it is created 0700 when missing) and is a directory this user owns (or root
    /// does) that group and others cannot write; the token path is not a directory; a temp file
    /// of a token's size can be created, written and synced there (then removed). Exit 2 for
    /// an unsafe directory (saying how to fix it), exit 9 for everything else.
    pub fn check_writable(&self) -> Result<(), AppError> {
        let (dir, meta) = self.prepare_dir()?;
        if let Ok(m) = fs::symlink_metadata(&self.path)
            && m.is_dir()
        {
            return Err(AppError::new(
                Exit::Storage,
                format!(
                    "cannot write the token file {}: a directory is in its place",
                    self.path.display()
                ),
            )
            .hint("move the directory away, or name a file with --token-file"));
        }
        let name = file_name(&self.path);
        let (tmp, mut file) = create_temp(&dir, &name).map_err(|e| storage_error("create a file in", &dir, &e))?;
        let probe = (|| {
            check_owner(
                &dir,
                &meta,
                file.metadata().map_err(|e| storage_error("inspect", &tmp, &e))?.uid(),
            )?;
            file.write_all(&[b' '; 4096])
                .and_then(|()| file.sync_all())
                .map_err(|e| storage_error("write a file in", &dir, &e))
        })();
        drop(file);
        let removed = fs::remove_file(&tmp);
        probe?;
        removed.map_err(|e| storage_error("remove the test file", &tmp, &e))
    }

    /// [`TokenStore::check_writable`], and the refresh lock can be opened (whoever holds it
    /// now): what `login` checks before asking for a code.
    pub fn check_can_save(&self) -> Result<(), AppError> {
        self.check_writable()?;
        let (dir, meta) = self.prepare_dir()?;
        let file = self.open_lock(&dir, &meta)?;
        match file.try_lock() {
            Ok(()) | Err(std::fs::TryLockError::WouldBlock) => Ok(()),
            Err(std::fs::TryLockError::Error(e)) => Err(storage_error("lock", &self.lock_path(), &e)),
        }
    }

    /// Where the agent mirrors its status line (`STATUS=`) for `doctor`: `<token file>.agent`,
    /// never a secret.
    pub fn agent_state_path(&self) -> PathBuf {
        self.beside(Beside::AgentState)
    }

    /// Removes temp files of writers that died mid-write (SIGKILL, power cut): the token
    /// file's (each holds a copy of a token) and those of the files beside it. A temp file is
    /// an orphan when the process named in it is gone.
    fn sweep_orphans(&self, dir: &Path) {
        let name = file_name(&self.path);
        let prefixes: Vec<String> = std::iter::once(format!(".{name}.tmp."))
            .chain(Beside::ALL.iter().map(|b| format!(".{name}{}.tmp.", b.suffix())))
            .collect();
        if !Path::new("/proc/self").exists() {
            return; // No way to tell a live writer from a dead one: keep everything.
        }
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(pid) = file
                .to_str()
                .and_then(|f| prefixes.iter().find_map(|p| f.strip_prefix(p.as_str())))
                .and_then(|rest| rest.split('.').next())
            else {
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
        let _ = File::open(self.dir()).and_then(|d| d.sync_all());
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
        let (dir, meta) = self.prepare_dir()?;
        let lock_path = self.lock_path();
        let file = self.open_lock(&dir, &meta)?;
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
                Err(std::fs::TryLockError::Error(e)) => return Err(storage_error("lock", &lock_path, &e)),
            }
        }
    }

    /// Opens the lock file without following a link: created exclusively when missing (and
    /// then only in a directory this user or root owns), else opened as it is — it must be a
    /// regular file.
    fn open_lock(&self, dir: &Path, meta: &fs::Metadata) -> Result<File, AppError> {
        let lock_path = self.lock_path();
        let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        let mut last = None;
        for _ in 0..8 {
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(flags)
                .open(&lock_path)
            {
                Ok(f) => {
                    let owner = f.metadata().map(|m| m.uid());
                    let trusted = match owner {
                        Ok(uid) => check_owner(dir, meta, uid),
                        Err(e) => Err(storage_error("inspect the lock file", &lock_path, &e)),
                    };
                    if let Err(e) = trusted {
                        let _ = fs::remove_file(&lock_path);
                        return Err(e);
                    }
                    return Ok(f);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(storage_error("create the lock file", &lock_path, &e)),
            }
            match OpenOptions::new().read(true).custom_flags(flags).open(&lock_path) {
                Ok(f) => {
                    let regular = f.metadata().map(|m| m.is_file());
                    return match regular {
                        Ok(true) => Ok(f),
                        Ok(false) => Err(AppError::new(
                            Exit::Storage,
                            format!("the lock file {} is not a regular file", lock_path.display()),
                        )
                        .hint("remove it; zoho-device creates it again")),
                        Err(e) => Err(storage_error("inspect the lock file", &lock_path, &e)),
                    };
                }
                // Removed between the two opens: create it again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => last = Some(e),
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(AppError::new(
                        Exit::Storage,
                        format!(
                            "the lock file {} is a symbolic link, which is not followed",
                            lock_path.display()
                        ),
                    )
                    .hint("remove the link; zoho-device creates the lock file itself"));
                }
                Err(e) => return Err(storage_error("open the lock file", &lock_path, &e)),
            }
        }
        let e = last.unwrap_or_else(|| io::Error::other("it keeps disappearing"));
        Err(storage_error("open the lock file", &lock_path, &e))
    }

    /// Creates the directory (0700) when missing; returns it.
    pub fn ensure_dir(&self) -> io::Result<PathBuf> {
        let dir = self.dir();
        if !dir.exists() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        }
        Ok(dir)
    }

    /// The directory, created when missing, checked to be a directory that group and others
    /// cannot write; with its metadata (for the owner check once a file shows our uid).
    fn prepare_dir(&self) -> Result<(PathBuf, fs::Metadata), AppError> {
        let dir = self.ensure_dir().map_err(|e| {
            storage_error("create the directory", &self.dir(), &e).hint(format!(
                "the token file {} needs its directory: check that every parent is a directory and writable, and the disk is not full",
                self.path.display()
            ))
        })?;
        let meta = fs::metadata(&dir).map_err(|e| storage_error("inspect the directory", &dir, &e))?;
        if !meta.is_dir() {
            return Err(AppError::new(
                Exit::Storage,
                format!(
                    "cannot use {} as the directory of the token file: it is not a directory",
                    dir.display()
                ),
            )
            .hint("move it away, or name another token file with --token-file"));
        }
        check_mode(&dir, &meta)?;
        Ok((dir, meta))
    }
}

/// The directory part of `path` (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into())
}

/// Exit 9: "cannot WHAT PATH: CAUSE", with what to do for the usual causes.
pub fn storage_error(what: &str, path: &Path, e: &io::Error) -> AppError {
    use io::ErrorKind as K;
    let hint = match e.kind() {
        K::PermissionDenied => {
            "check the owner and permissions: the directory 0700 and the token file 0600, both owned by the user running zoho-device"
        }
        K::ReadOnlyFilesystem => {
            "the file system is mounted read-only: remount it read-write, or name a token file on a writable one (--token-file)"
        }
        K::StorageFull | K::QuotaExceeded => "the disk is full: free some space (`df -h`), then try again",
        K::InvalidInput | K::IsADirectory | K::NotADirectory | K::AlreadyExists => {
            "move what is in the way, or name another token file with --token-file"
        }
        _ => "check the disk and the path (`zoho-device doctor` checks the token file)",
    };
    AppError::new(Exit::Storage, format!("cannot {what} {}: {e}", path.display())).hint(hint)
}

/// Group or others may write the directory: anyone of them could plant files or links there.
fn check_mode(dir: &Path, meta: &fs::Metadata) -> Result<(), AppError> {
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 == 0 {
        return Ok(());
    }
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "group and others",
        (true, false) => "its group",
        _ => "others",
    };
    Err(AppError::usage(format!(
        "refusing to write in {}: it is writable by {who} (mode {mode:04o}), who could plant links or files where the token is written",
        dir.display()
    ))
    .hint(format!(
        "`chmod go-w {}` (zoho-device creates its directory 0700), or name a token file in a private directory with --token-file",
        dir.display()
    )))
}

const FOREIGN_OWNER: &str = "it belongs to another user";

/// Whether `e` is [`TokenStore::check_writable`] refusing a directory of another user (which
/// that user, running zoho-device, may use: `doctor` run as root for a service's directory).
pub fn is_foreign_directory(e: &AppError) -> bool {
    e.exit == Exit::Usage && e.message.contains(FOREIGN_OWNER)
}

/// The directory belongs to another user (root's directories are trusted): its owner could
/// plant links or files where the token is written, as ssh refuses for `~/.ssh`.
fn check_owner(dir: &Path, meta: &fs::Metadata, our_uid: u32) -> Result<(), AppError> {
    let owner = meta.uid();
    if owner == our_uid || owner == 0 {
        return Ok(());
    }
    let name = user_name(owner)
        .map(|n| format!("{n}, uid {owner}"))
        .unwrap_or(format!("uid {owner}"));
    let run_as = user_name(owner).unwrap_or_else(|| format!("#{owner}"));
    Err(AppError::usage(format!(
        "refusing to write in {}: {FOREIGN_OWNER} ({name}), not to uid {our_uid} running zoho-device",
        dir.display()
    ))
    .hint(format!(
        "run zoho-device as its owner (`sudo -u {run_as} zoho-device …`), or name a token file in a directory of your own with --token-file"
    )))
}

/// The login name of `uid` from /etc/passwd, for messages.
fn user_name(uid: u32) -> Option<String> {
    let bytes = crate::settings::read_regular_file(Path::new("/etc/passwd"), 1 << 20, true).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?;
        (id.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// A name nobody can guess: [`std::collections::hash_map::RandomState`] is keyed from the OS's
/// random source once per process.
fn unguessable() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Creates `.NAME.tmp.PID.RANDOM` (0600) in `dir` exclusively: `O_EXCL` fails on anything
/// already there, a planted symbolic link included, so nothing is ever written through a link.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let mut last = None;
    for _ in 0..16 {
        let tmp = dir.join(format!(".{name}.tmp.{}.{:016x}", std::process::id(), unguessable()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// Writes `bytes` to `path` in `dir` through a fresh temp file; checks the directory's owner
/// against the temp file's (ours) before writing anything into it.
fn write_in(dir: &Path, meta: &fs::Metadata, path: &Path, bytes: &[u8]) -> Result<(), AppError> {
    let (tmp, mut f) = create_temp(dir, &file_name(path)).map_err(|e| storage_error("create a file in", dir, &e))?;
    let result = (|| {
        let uid = f.metadata().map_err(|e| storage_error("inspect", &tmp, &e))?.uid();
        check_owner(dir, meta, uid)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .and_then(|()| f.write_all(bytes))
            .and_then(|()| f.sync_all())
            .map_err(|e| storage_error("write", path, &e))?;
        fs::rename(&tmp, path).map_err(|e| storage_error("replace", path, &e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| storage_error("sync the directory", dir, &e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Replaces `path` with `bytes` so that a reader or a power cut sees the old content or the new,
/// never a mix: a temp file beside it (created exclusively under an unguessable name, 0600),
/// fsync, rename, fsync of the directory. The directory must exist, and is refused when
/// another user owns it or group or others can write it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    let meta = fs::metadata(dir)?;
    check_mode(dir, &meta)
        .and_then(|()| write_in(dir, &meta, path, bytes))
        .map_err(|e| io::Error::other(e.message))
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
    use zoho_device_core::{AccessToken, RefreshToken, ServerUrl, Servers, Tokens};

    /// The pairing of [`V1_FILE`]: paired at 1, refreshed at 2 (Unix ms).
    fn sample() -> Pairing {
        let tokens = Tokens {
            access_token: AccessToken::new("1000.access"),
            refresh_token: Some(RefreshToken::new("1000.refresh")),
            api_domain: Some(ServerUrl::parse("https://www.zohoapis.eu").unwrap()),
            accounts_url: None,
            location: None,
            scope: Some("ZohoBooks.settings.READ".into()),
            token_type: "Bearer".into(),
            expires_at: Timestamp::from_millis(1_800_000_000_000),
        };
        let servers = Servers::Zoho {
            accounts: ServerUrl::parse("https://accounts.zoho.eu").unwrap(),
            location: Some("eu".into()),
        };
        Pairing::new("1004.X".into(), servers, tokens.clone(), Timestamp::from_millis(1))
            .with_tokens(tokens, Timestamp::from_millis(2))
    }

    /// A token file as version 1 of this program (`StoredToken`) wrote it, byte for byte.
    const V1_FILE: &str = r#"{
  "version": 1,
  "profile": "zoho",
  "client_id": "1004.X",
  "access_token": "1000.access",
  "refresh_token": "1000.refresh",
  "api_domain": "https://www.zohoapis.eu",
  "accounts_url": "https://accounts.zoho.eu",
  "location": "eu",
  "scope": "ZohoBooks.settings.READ",
  "token_type": "Bearer",
  "expires_at": 1800000000000,
  "paired_at": 1,
  "refreshed_at": 2
}
"#;

    #[test]
    fn a_version_1_file_loads_and_is_written_back_unchanged() {
        let dir = tempdir();
        let store = TokenStore::new(dir.join("token.json"));
        fs::write(store.path(), V1_FILE).unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded, sample());
        store.save(&loaded).unwrap();
        assert_eq!(fs::read_to_string(store.path()).unwrap(), V1_FILE);
        // And what this version writes for the same pairing is that file.
        store.save(&sample()).unwrap();
        assert_eq!(fs::read_to_string(store.path()).unwrap(), V1_FILE);
    }

    #[test]
    fn an_unknown_profile_is_a_corrupt_file_not_a_zoho_pairing() {
        let dir = tempdir();
        let store = TokenStore::new(dir.join("token.json"));
        let planted = V1_FILE.replace("\"zoho\"", "\"zoho-eu\"");
        fs::write(store.path(), &planted).unwrap();
        let e = store.load().unwrap_err();
        assert_eq!(e.exit, Exit::NeedsPairing);
        assert!(
            e.message.contains("corrupt") && e.message.contains("unknown profile \"zoho-eu\""),
            "{}",
            e.message
        );
        assert_eq!(fs::read_to_string(store.path()).unwrap(), planted, "kept as it is");
        // Servers of both kinds: corrupt too.
        let mixed = V1_FILE.replace(
            "\"paired_at\"",
            "\"token_url\": \"https://idp.example/token\",\n  \"paired_at\"",
        );
        fs::write(store.path(), &mixed).unwrap();
        let e = store.load().unwrap_err();
        assert!(
            e.message.contains("a zoho pairing with a standard server's token_url"),
            "{}",
            e.message
        );
    }

    #[test]
    fn round_trip_with_private_permissions() {
        let dir = tempdir();
        let store = TokenStore::new(dir.join("sub/token.json"));
        assert!(store.load().unwrap().is_none());
        store.save(&sample()).unwrap();
        let back = store.load().unwrap().unwrap();
        assert_eq!(back, sample());
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

    #[test]
    fn a_link_planted_at_a_temp_name_is_not_written_through() {
        // The agent's state file is written by `write_atomically`: a link at the temp name it
        // used to predict (`.NAME.tmp.PID`) must not receive the bytes.
        let dir = tempdir();
        let victim = dir.join("victim");
        fs::write(&victim, b"mine").unwrap();
        let path = dir.join("token.json.agent");
        std::os::unix::fs::symlink(
            &victim,
            dir.join(format!(".token.json.agent.tmp.{}", std::process::id())),
        )
        .unwrap();
        write_atomically(&path, b"{\"status\":\"ok\"}\n").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"mine");
        assert_eq!(fs::read(&path).unwrap(), b"{\"status\":\"ok\"}\n");
        // And the token file itself.
        let store = TokenStore::new(dir.join("token.json"));
        std::os::unix::fs::symlink(&victim, dir.join(format!(".token.json.tmp.{}", std::process::id()))).unwrap();
        store.save(&sample()).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"mine");
        assert!(fs::symlink_metadata(store.path()).unwrap().is_file());
    }

    #[test]
    fn a_save_sweeps_dead_writers_temp_files_of_the_token_and_the_files_beside_it() {
        let dir = tempdir();
        let store = TokenStore::new(dir.join("token.json"));
        // A PID no process has: above the kernel's pid_max (at most 2^22).
        let dead = 1u32 << 23;
        let live = std::process::id();
        let name = |middle: &str, pid: u32| dir.join(format!(".token.json{middle}.tmp.{pid}.0123456789abcdef"));
        let orphans: Vec<PathBuf> = std::iter::once(name("", dead))
            .chain(Beside::ALL.iter().map(|b| name(b.suffix(), dead)))
            .collect();
        let kept = [name("", live), name(".budget", live), dir.join(".other.tmp.8388608.0")];
        for p in orphans.iter().chain(&kept) {
            fs::write(p, b"x").unwrap();
        }
        store.save(&sample()).unwrap();
        for p in &orphans {
            assert!(!p.exists(), "{} was left", p.display());
        }
        for p in &kept {
            assert!(p.exists(), "{} was removed", p.display());
        }
    }

    #[test]
    fn a_file_this_program_writes_is_always_one_it_reads() {
        use zoho_device_core::http::MAX_RESPONSE_BYTES;
        let dir = tempdir();
        let store = TokenStore::new(dir.join("token.json"));
        // The longest tokens two replies could carry (the refresh token from the login, the
        // access token from a refresh), each nearly a whole capped reply.
        let mut tokens = sample().tokens().clone();
        tokens.access_token = AccessToken::new("a".repeat(MAX_RESPONSE_BYTES - 100));
        tokens.refresh_token = Some(RefreshToken::new("r".repeat(MAX_RESPONSE_BYTES - 100)));
        tokens.scope = Some("s".repeat(MAX_RESPONSE_BYTES - 100));
        let big = sample().with_tokens(tokens, Timestamp::from_millis(2));
        store.save(&big).unwrap();
        assert_eq!(store.load().unwrap().unwrap(), big);
        // Past the file's cap the save refuses (exit 9) and the file stays as it was.
        let before = fs::read(store.path()).unwrap();
        let mut tokens = sample().tokens().clone();
        tokens.scope = Some("s".repeat(MAX_FILE_BYTES as usize));
        let huge = sample().with_tokens(tokens, Timestamp::from_millis(2));
        let e = store.save(&huge).unwrap_err();
        assert_eq!(e.exit, Exit::Storage);
        assert!(e.message.contains("more than the"), "{}", e.message);
        assert_eq!(fs::read(store.path()).unwrap(), before);
    }

    #[test]
    fn unsafe_directories_are_refused_with_the_fix() {
        let dir = tempdir();
        let sub = dir.join("shared");
        fs::create_dir(&sub).unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o775)).unwrap();
        let store = TokenStore::new(sub.join("token.json"));
        let e = store.save(&sample()).unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert!(e.message.contains("writable by its group (mode 0775)"), "{}", e.message);
        assert!(e.hint.unwrap().contains("chmod go-w"));
        assert!(!store.path().exists());
        let e = store.check_writable().unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        // Another owner: the check itself, for any uid that is not root.
        let meta = fs::metadata(&dir).unwrap();
        let other = meta.uid().wrapping_add(1).max(1);
        if meta.uid() != 0 {
            let e = check_owner(&dir, &meta, other).unwrap_err();
            assert!(e.message.contains("belongs to another user"), "{}", e.message);
        }
        assert!(check_owner(&dir, &meta, meta.uid()).is_ok());
    }

    /// A fresh directory, removed when the returned guard is dropped.
    fn tempdir() -> TempDir {
        TempDir(
            tempfile::Builder::new()
                .prefix("zd-store-")
                .tempdir()
                .expect("a temporary directory"),
        )
    }

    /// Derefs to the directory's path, so tests use it like the `PathBuf` it used to be.
    struct TempDir(tempfile::TempDir);

    impl AsRef<Path> for TempDir {
        fn as_ref(&self) -> &Path {
            self.0.path()
        }
    }

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            self.0.path()
        }
    }
}
