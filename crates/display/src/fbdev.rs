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
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use framebuffer::{Framebuffer, KdMode};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::canvas::{Channel, MemoryFramebuffer, PixelFormat};
use crate::output::Display;
use crate::screen::Screen;

/// Options for [`FramebufferDisplay::open_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FbOptions {
    /// The console whose text output would scribble over the picture; switched to graphics
    /// mode (`KDSETMODE`) while the display is open and back to text on drop and on signals.
    /// `None` leaves the console alone. Default `/dev/tty0` (the foreground console).
    pub tty: Option<PathBuf>,
    /// On SIGINT/SIGTERM/SIGHUP/SIGQUIT restore the console and then terminate as the signal's
    /// default action would (default `true`). Set `false` when the program handles these
    /// signals itself and drops the display on the way out: the console is still restored
    /// when the signal arrives.
    pub exit_on_signal: bool,
}

impl Default for FbOptions {
    fn default() -> Self {
        FbOptions {
            tty: Some(PathBuf::from("/dev/tty0")),
            exit_on_signal: true,
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
    signals: Option<(Handle, JoinHandle<()>)>,
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
            signals: None,
        };
        if let Some(console) = &display.console {
            console.set(true);
            display.signals = watch_signals(console.clone(), options.exit_on_signal);
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

/// Restores the console when a terminating signal arrives (best effort; a SIGKILL cannot be
/// caught). Returns `None` when the handlers cannot be installed.
fn watch_signals(console: Arc<Console>, exit: bool) -> Option<(Handle, JoinHandle<()>)> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT]).ok()?;
    let handle = signals.handle();
    let thread = std::thread::Builder::new()
        .name("fb-console".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                console.set(false);
                if exit {
                    let _ = signal_hook::low_level::emulate_default_handler(sig);
                }
            }
        })
        .ok()?;
    Some((handle, thread))
}

impl Display for FramebufferDisplay {
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
        if let Some((handle, thread)) = self.signals.take() {
            handle.close();
            let _ = thread.join();
        }
        if let Some(console) = &self.console {
            console.set(false);
        }
    }
}
