//! The Linux framebuffer (`/dev/fbN`): full-screen layout, pixel format from the device.
//!
//! The ioctls and the mmap are the `framebuffer` crate's (its `unsafe` stays there, so this
//! crate keeps `forbid(unsafe_code)`); drawing goes through [`MemoryFramebuffer`] into a back
//! buffer that is copied into the mapping in one pass (no flicker), never through the crate's
//! `write_frame` (which panics on a size mismatch).

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use framebuffer::{Framebuffer, KdMode};
use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::canvas::{Channel, MemoryFramebuffer, PixelFormat};
use crate::screen::Screen;
use crate::show::{Show, SignalHandling};

/// Options for [`FramebufferDisplay::open_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FbOptions {
    /// The console whose text output would scribble over the picture; switched to graphics
    /// mode (`KDSETMODE`) while the display is open and back to text on drop and on signals.
    /// `None` leaves the console alone. Default `/dev/tty0` (the foreground console).
    pub tty: Option<PathBuf>,
    /// Who handles SIGINT, SIGTERM and SIGQUIT (default
    /// [`SignalHandling::RestoreAndExit`]: the console is restored, then the process ends as
    /// the signal's default action would). [`SignalHandling::Program`] installs no handler: the
    /// program handles its signals and drops the display, which restores the console. SIGHUP
    /// is never handled here (a daemon's "reload").
    pub signals: SignalHandling,
}

impl Default for FbOptions {
    fn default() -> Self {
        FbOptions {
            tty: Some(PathBuf::from("/dev/tty0")),
            signals: SignalHandling::RestoreAndExit,
        }
    }
}

/// The console mode switch, shared with the signal thread.
#[derive(Debug)]
struct Console {
    tty: PathBuf,
    graphics: Mutex<bool>,
}

impl Console {
    fn set(&self, graphics: bool) {
        let mut state = self.graphics.lock().unwrap_or_else(|e| e.into_inner());
        if *state != graphics {
            let mode = if graphics { KdMode::Graphics } else { KdMode::Text };
            // Best effort: without a console (SSH, containers) there is nothing to switch.
            if Framebuffer::set_kd_mode_ex(&self.tty, mode).is_ok() {
                *state = graphics;
            }
        }
    }
}

/// A Linux framebuffer device showing the screen full-size.
pub struct FramebufferDisplay {
    fb: Framebuffer,
    device: PathBuf,
    format: PixelFormat,
    size: (u32, u32),
    stride: usize,
    offset: usize,
    back: Vec<u8>,
    last: Option<Screen>,
    console: Option<Arc<Console>>,
    /// The console's restore action on SIGINT/SIGTERM/SIGQUIT ([`SignalHandling::RestoreAndExit`]).
    watching: Option<Watching>,
}

impl std::fmt::Debug for FramebufferDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramebufferDisplay")
            .field("device", &self.device)
            .field("format", &self.format)
            .field("size", &self.size)
            .finish()
    }
}

fn channel(b: &framebuffer::Bitfield) -> Channel {
    Channel {
        offset: b.offset.min(31) as u8,
        length: b.length.min(32) as u8,
    }
}

impl FramebufferDisplay {
    /// Opens `device` with [`FbOptions::default`].
    pub fn open(device: impl AsRef<Path>) -> io::Result<FramebufferDisplay> {
        FramebufferDisplay::open_with(device, FbOptions::default())
    }

    /// Opens `device`; a missing device, a file that is not a character device, a device that
    /// answers no framebuffer ioctl, or an unsupported pixel format is an error, never a panic.
    pub fn open_with(device: impl AsRef<Path>, options: FbOptions) -> io::Result<FramebufferDisplay> {
        let device = device.as_ref();
        let name = device.display();
        let meta = fs::metadata(device).map_err(|e| io::Error::new(e.kind(), format!("framebuffer {name}: {e}")))?;
        if !meta.file_type().is_char_device() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} is not a framebuffer device (not a character device)"),
            ));
        }
        let fb = Framebuffer::new(device).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} is not a usable framebuffer: {}", e.details),
            )
        })?;
        let var = &fb.var_screen_info;
        let bpp = var.bits_per_pixel;
        let format = if var.grayscale == 1 && bpp == 8 {
            PixelFormat::GRAY8
        } else {
            PixelFormat {
                bits_per_pixel: bpp.min(255) as u8,
                red: channel(&var.red),
                green: channel(&var.green),
                blue: channel(&var.blue),
                transp: channel(&var.transp),
            }
        };
        let size = (var.xres, var.yres);
        let stride = fb.fix_screen_info.line_length as usize;
        let offset = var.yoffset as usize * stride + var.xoffset as usize * (bpp as usize / 8);
        let need = stride * size.1 as usize;
        let mut back = vec![0u8; need];
        // Validate the format and size once, so `show` cannot fail on them later.
        MemoryFramebuffer::new(&mut back, size.0, size.1, stride, format)
            .map_err(|e| io::Error::new(io::ErrorKind::Unsupported, format!("{name}: {e}")))?;
        if fb.frame.len() < offset + need {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: mapped memory smaller than the visible screen"),
            ));
        }
        let console = options.tty.map(|tty| {
            Arc::new(Console {
                tty,
                graphics: Mutex::new(false),
            })
        });
        let mut display = FramebufferDisplay {
            fb,
            device: device.to_path_buf(),
            format,
            size,
            stride,
            offset,
            back,
            last: None,
            console,
            watching: None,
        };
        if let Some(console) = &display.console {
            let weak = Arc::downgrade(console);
            display.watching = watch_console(
                options.signals,
                Box::new(move || {
                    if let Some(c) = weak.upgrade() {
                        c.set(false);
                    }
                }),
            );
            console.set(true);
        }
        Ok(display)
    }

    /// The device's pixel format, as read from its bitfields.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Visible width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }
}

/// What `signals` asks for: with [`SignalHandling::RestoreAndExit`], `restore` runs on
/// SIGINT/SIGTERM/SIGQUIT before the process ends; with [`SignalHandling::Program`] nothing
/// is installed. `None` also when the handlers cannot be installed (dropping the display
/// still restores the console).
fn watch_console(signals: SignalHandling, restore: Restore) -> Option<Watching> {
    match signals {
        SignalHandling::RestoreAndExit => watch_fatal_signals(restore).ok(),
        SignalHandling::Program => None,
    }
}

/// The signals [`SignalHandling::RestoreAndExit`] watches. Not SIGHUP: programs use it for
/// "reload", and one that does not keeps its default action.
const FATAL_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGQUIT];

type Restore = Box<dyn Fn() + Send + Sync>;

/// The restore actions of the open displays, run by one process-wide signal thread.
struct Watcher {
    restores: Mutex<Vec<(u64, Restore)>>,
}

/// Registers `restore` to run when SIGINT, SIGTERM or SIGQUIT arrives; after the restores the
/// process ends as the signal's default action would. The handlers and their thread are
/// installed once and stay for the life of the process: a signal handler once installed
/// cannot be taken back to the default action (signal-hook only unregisters, after which the
/// signal would be ignored), so the thread keeps performing the default action after every
/// display is gone. Dropping the returned [`Watching`] removes `restore` (and a display's
/// `restore` holds only a weak reference to its console).
fn watch_fatal_signals(restore: Restore) -> io::Result<Watching> {
    static WATCHER: OnceLock<Result<Arc<Watcher>, String>> = OnceLock::new();
    let watcher = WATCHER.get_or_init(|| {
        let watcher = Arc::new(Watcher {
            restores: Mutex::new(Vec::new()),
        });
        let mut signals = Signals::new(FATAL_SIGNALS).map_err(|e| e.to_string())?;
        let w = watcher.clone();
        std::thread::Builder::new()
            .name("fb-console".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    let restores = w.restores.lock().unwrap_or_else(|e| e.into_inner());
                    for (_, restore) in restores.iter() {
                        restore();
                    }
                    let _ = signal_hook::low_level::emulate_default_handler(sig);
                    // Not reached for these signals; if it were, end anyway.
                    std::process::exit(128 + sig);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(watcher)
    });
    let watcher = watcher.as_ref().map_err(|e| io::Error::other(e.clone()))?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    watcher
        .restores
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, restore));
    Ok(Watching {
        watcher: watcher.clone(),
        id,
    })
}

/// A registered restore action; dropping it removes the action (the handlers stay).
struct Watching {
    watcher: Arc<Watcher>,
    id: u64,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut restores = self.watcher.restores.lock().unwrap_or_else(|e| e.into_inner());
        restores.retain(|(id, _)| *id != self.id);
    }
}

impl Show for FramebufferDisplay {
    fn show(&mut self, screen: &Screen) -> io::Result<()> {
        if self.last.as_ref() == Some(screen) {
            return Ok(());
        }
        let (w, h) = self.size;
        let mut canvas = MemoryFramebuffer::new(&mut self.back, w, h, self.stride, self.format)
            .map_err(|e| io::Error::new(io::ErrorKind::Unsupported, e.to_string()))?;
        // Drawing into memory cannot fail (the error type is Infallible).
        let Ok(()) = crate::draw::draw_screen(screen, &mut canvas);
        let len = self.back.len();
        self.fb.frame[self.offset..self.offset + len].copy_from_slice(&self.back);
        self.last = Some(screen.clone());
        Ok(())
    }
}

impl Drop for FramebufferDisplay {
    fn drop(&mut self) {
        self.watching = None;
        if let Some(console) = &self.console {
            console.set(false);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Signals are process-wide, so each case runs in a child process: this test binary run
    //! again for `signal_child` alone, with the case in an environment variable.

    use super::*;
    use signal_hook::consts::SIGHUP;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    const CASE: &str = "ZOHO_DISPLAY_SIGNAL_CASE";

    /// The child: like `zoho-device agent`, the program handles SIGHUP and SIGTERM itself
    /// (signal-hook here, tokio there: both register through signal-hook-registry). Then the
    /// display's handling as the case says, then the signal. Prints `restored` when the
    /// console would be restored and `alive` when the process survived the signal.
    #[test]
    fn signal_child() {
        let Ok(case) = std::env::var(CASE) else {
            return;
        };
        let (mode, sig, drop_first) = match case.as_str() {
            "default-hup" => (SignalHandling::RestoreAndExit, SIGHUP, false),
            "default-term" => (SignalHandling::RestoreAndExit, SIGTERM, false),
            "default-int-after-drop" => (SignalHandling::RestoreAndExit, SIGINT, true),
            "program-term" => (SignalHandling::Program, SIGTERM, false),
            "program-hup" => (SignalHandling::Program, SIGHUP, false),
            other => panic!("unknown case {other}"),
        };
        let handled = Arc::new(AtomicBool::new(false));
        for s in [SIGHUP, SIGTERM] {
            signal_hook::flag::register(s, handled.clone()).unwrap();
        }
        let mut watching = watch_console(mode, Box::new(|| println!("restored")));
        assert_eq!(watching.is_some(), mode == SignalHandling::RestoreAndExit);
        if drop_first {
            watching = None;
        }
        signal_hook::low_level::raise(sig).unwrap();
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until && !(sig != SIGINT && handled.load(Ordering::SeqCst)) {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Time for the display's signal thread to act, had it anything to do.
        std::thread::sleep(Duration::from_millis(300));
        drop(watching);
        println!("alive handled={}", handled.load(Ordering::SeqCst));
    }

    /// Runs `signal_child` with `case`: (the signal that ended it, its stdout).
    fn child(case: &str) -> (Option<i32>, String) {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "fbdev::tests::signal_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CASE, case)
            .output()
            .unwrap();
        (out.status.signal(), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn sighup_is_never_fatal_nor_handled() {
        for case in ["default-hup", "program-hup"] {
            let (signal, out) = child(case);
            assert_eq!(signal, None, "{case}: {out}");
            assert!(out.contains("alive handled=true"), "{case}: {out}");
            assert!(!out.contains("restored"), "{case}: {out}");
        }
    }

    #[test]
    fn program_mode_installs_no_killing_handler() {
        let (signal, out) = child("program-term");
        assert_eq!(signal, None, "{out}");
        assert!(out.contains("alive handled=true") && !out.contains("restored"), "{out}");
    }

    #[test]
    fn default_mode_restores_then_ends_on_sigterm() {
        let (signal, out) = child("default-term");
        assert_eq!(signal, Some(SIGTERM), "{out}");
        assert!(out.contains("restored") && !out.contains("alive"), "{out}");
    }

    #[test]
    fn signals_still_end_the_process_after_the_display_is_dropped() {
        let (signal, out) = child("default-int-after-drop");
        assert_eq!(signal, Some(SIGINT), "{out}");
        assert!(!out.contains("restored") && !out.contains("alive"), "{out}");
    }
}
