//! The terminal: half-block QR (an ASCII one without Unicode), code, URL and a live countdown;
//! a plain status line when the stream is not a terminal. A waiting screen's warning is a line
//! of its own starting with `!! Warning:` (bold red when colours are allowed) above the
//! instructions, or a `Warning:` line after the status line on a pipe.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::layout::warning_text;
use crate::qr::QrMatrix;
use crate::screen::{Screen, TimeLeft};
use crate::show::Show;

/// The terminal's background colour. It decides the QR's polarity when colours are off:
/// text is drawn in the foreground colour, so the characters must be the modules that are
/// meant to look like the foreground.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Background {
    /// Light text on a dark background (most terminal emulators and the Linux console): the
    /// characters are the light modules.
    #[default]
    Dark,
    /// Dark text on a light background: the characters are the dark modules.
    Light,
}

impl Background {
    /// The background `COLORFGBG` (`"fg;bg"` or `"fg;other;bg"`, set by rxvt, Konsole and
    /// others) names: ANSI colours 0–6 and 8 are dark, 7 and 9–15 light (the rule Vim uses).
    /// `None` when unset or not understood.
    pub fn from_colorfgbg(value: &str) -> Option<Background> {
        let bg: u8 = value.rsplit(';').next()?.trim().parse().ok()?;
        match bg {
            0..=6 | 8 => Some(Background::Dark),
            7 | 9..=15 => Some(Background::Light),
            _ => None,
        }
    }
}

impl fmt::Display for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Background::Dark => "dark",
            Background::Light => "light",
        })
    }
}

/// What the stream can do. Build it with [`TerminalCaps::detect`] or by hand in tests.
///
/// # The QR on the terminal
///
/// * **Colours allowed** (`color`): the QR is forced black on bright white (`ESC[30;107m`),
///   which scans on dark and light terminals alike; `background` does not matter.
/// * **No colours** (`NO_COLOR`, `TERM=dumb`): the characters are drawn in the terminal's
///   foreground colour, so the polarity follows `background`: on [`Background::Dark`] (the
///   default when nothing says otherwise) the characters are the light modules, on
///   [`Background::Light`] the dark ones. A light terminal that is not detected as such (no
///   `COLORFGBG`) shows an inverted QR, which many phone scanners still read but not all:
///   say `--display terminal=light` there.
/// * **Unicode** (`unicode`): half blocks (two modules per character cell, about 45×23 cells
///   for the longest codes, with a 2-module quiet zone). Without it, plain ASCII: two
///   characters per module (`##` ink, two spaces otherwise) with the full 4-module quiet zone.
///   An ASCII QR is as many lines tall as it is modules (37 for a typical verification URL)
///   and encodes the plain verification URL when the complete one (with the code) would not
///   fit in 80 columns; the code and URL are printed below it as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TerminalCaps {
    /// The stream is a terminal: QR, redrawn countdown. Otherwise (journald, pipes) a plain
    /// status line about every 30 s and no escape sequences at all.
    pub is_terminal: bool,
    /// Half-block characters (`▀▄█`) render: a UTF-8 locale or the Linux console. Without them
    /// the QR is drawn in ASCII (`##`).
    pub unicode: bool,
    /// ANSI escape sequences work (not `TERM=dumb`).
    pub ansi: bool,
    /// Colours allowed (`NO_COLOR` unset or empty, not `TERM=dumb`). With colours the QR is
    /// forced black on bright white, right on dark and light terminals alike; without, its
    /// polarity follows `background`.
    pub color: bool,
    /// The terminal's background, for the QR's polarity when colours are off.
    pub background: Background,
}

impl TerminalCaps {
    /// A pipe or log: no QR, no escapes.
    pub const PLAIN: TerminalCaps = TerminalCaps {
        is_terminal: false,
        unicode: false,
        ansi: false,
        color: false,
        background: Background::Dark,
    };

    /// Detects the capabilities of `stream` from `isatty` and the environment (`TERM`,
    /// `NO_COLOR`, `LC_ALL`/`LC_CTYPE`/`LANG`, `COLORFGBG` for the background, else dark).
    pub fn detect(stream: &impl IsTerminal) -> TerminalCaps {
        TerminalCaps::from_env(stream.is_terminal(), |k| std::env::var(k).ok())
    }

    /// As [`TerminalCaps::detect`], with the environment given as a lookup function.
    pub fn from_env(is_terminal: bool, var: impl Fn(&str) -> Option<String>) -> TerminalCaps {
        if !is_terminal {
            return TerminalCaps::PLAIN;
        }
        let term = var("TERM").unwrap_or_default();
        let dumb = term == "dumb";
        let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
            .iter()
            .find_map(|k| var(k).filter(|v| !v.is_empty()))
            .unwrap_or_default()
            .to_ascii_uppercase();
        let utf8 = locale.contains("UTF-8") || locale.contains("UTF8");
        TerminalCaps {
            is_terminal,
            unicode: !dumb && (utf8 || term == "linux"),
            ansi: !dumb,
            color: !dumb && var("NO_COLOR").is_none_or(|v| v.is_empty()),
            background: var("COLORFGBG")
                .and_then(|v| Background::from_colorfgbg(&v))
                .unwrap_or_default(),
        }
    }
}

/// The QR's side in modules with a quiet zone of `quiet` modules, and whether the module at
/// (`x`, `y`) of that larger square is dark.
fn with_quiet_zone(qr: &QrMatrix, quiet: usize) -> (usize, impl Fn(usize, usize) -> bool + '_) {
    let n = qr.size() + 2 * quiet;
    (n, move |x: usize, y: usize| {
        x >= quiet && y >= quiet && qr.is_dark(x - quiet, y - quiet)
    })
}

/// Renders the QR as half blocks: each character is two modules stacked, with a quiet zone
/// of `quiet` modules. With `dark_ink` the block characters are the dark modules (for the
/// forced black-on-white colours and light backgrounds); without, they are the light ones
/// (dark backgrounds). Lines end in `\n` and carry no escape sequences.
pub fn half_block_qr(qr: &QrMatrix, quiet: usize, dark_ink: bool) -> String {
    let (n, dark) = with_quiet_zone(qr, quiet);
    let mut out = String::with_capacity(n * (n / 2 + 1) * 3);
    for row in (0..n).step_by(2) {
        for x in 0..n {
            let top = dark(x, row) == dark_ink;
            let bottom = if row + 1 < n {
                dark(x, row + 1) == dark_ink
            } else {
                !dark_ink
            };
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    out
}

/// Renders the QR in plain ASCII: two characters per module (`##` for ink, two spaces
/// otherwise, so modules come out about square), one line per row of modules, with a quiet
/// zone of `quiet` modules. `dark_ink` as in [`half_block_qr`]. Lines end in `\n` and carry
/// no escape sequences; each is `2 × (size + 2 × quiet)` characters wide.
pub fn ascii_qr(qr: &QrMatrix, quiet: usize, dark_ink: bool) -> String {
    let (n, dark) = with_quiet_zone(qr, quiet);
    let mut out = String::with_capacity(n * (2 * n + 1));
    for y in 0..n {
        for x in 0..n {
            out.push_str(if dark(x, y) == dark_ink { "##" } else { "  " });
        }
        out.push('\n');
    }
    out
}

/// Columns an ASCII QR may take, with its two-space indent: the classic 80-column terminal
/// (a wrapped line would break the code).
const ASCII_COLUMNS: usize = 80;

const CLEAR_LINE: &str = "\r\x1b[2K";

/// `s` with control characters made spaces.
fn printable(s: &str) -> String {
    s.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The terminal output. Writes to any `io::Write` with explicit [`TerminalCaps`], so tests
/// render into a `Vec<u8>`.
#[derive(Debug)]
pub struct TerminalDisplay<W: Write> {
    out: W,
    caps: TerminalCaps,
    status_every: Duration,
    last: Option<Screen>,
    /// The countdown line currently on screen (not yet ended by a newline).
    open_line: Option<String>,
    last_status: Option<Instant>,
}

impl TerminalDisplay<io::Stderr> {
    /// On stderr, with capabilities detected from it and the environment.
    pub fn stderr() -> Self {
        let err = io::stderr();
        let caps = TerminalCaps::detect(&err);
        TerminalDisplay::new(err, caps)
    }

    /// On stderr, capabilities detected except the background, which is given
    /// (`--display terminal=light`).
    pub fn stderr_on(background: Background) -> Self {
        let err = io::stderr();
        let caps = TerminalCaps {
            background,
            ..TerminalCaps::detect(&err)
        };
        TerminalDisplay::new(err, caps)
    }
}

impl<W: Write> TerminalDisplay<W> {
    /// Writes to `out` as `caps` allow.
    pub fn new(out: W, caps: TerminalCaps) -> Self {
        TerminalDisplay {
            out,
            caps,
            status_every: Duration::from_secs(30),
            last: None,
            open_line: None,
            last_status: None,
        }
    }

    /// How often a non-terminal stream repeats the status line while waiting (default 30 s).
    pub fn with_status_every(mut self, every: Duration) -> Self {
        self.status_every = every;
        self
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// [`Show::show`] with an explicit clock.
    pub fn show_at(&mut self, screen: &Screen, now: Instant) -> io::Result<()> {
        let changed = !self.last.as_ref().is_some_and(|l| l.same_content(screen));
        if self.caps.is_terminal {
            self.show_terminal(screen, changed)?;
        } else {
            self.show_plain(screen, changed, now)?;
        }
        self.last = Some(screen.clone());
        self.out.flush()
    }

    /// The QR as lines of text (no escapes) for `caps`: half blocks, or ASCII that fits in
    /// [`ASCII_COLUMNS`] (the plain URL when the complete one is too wide); `None` when
    /// nothing fits. Dark modules are the ink when colours force black on white or the
    /// background is light; otherwise the light modules are.
    fn qr_text(screen: &Screen, verification_url: &str, caps: TerminalCaps) -> Option<String> {
        let dark_ink = caps.color || caps.background == Background::Light;
        let payload = screen.qr_payload()?;
        if caps.unicode {
            let qr = QrMatrix::encode(payload).ok()?;
            return Some(half_block_qr(&qr, 2, dark_ink));
        }
        let quiet = QrMatrix::QUIET_ZONE;
        [payload, verification_url]
            .into_iter()
            .filter_map(|p| QrMatrix::encode(p).ok())
            .find(|qr| 2 + 2 * (qr.size() + 2 * quiet) <= ASCII_COLUMNS)
            .map(|qr| ascii_qr(&qr, quiet, dark_ink))
    }

    fn countdown(secs: u64) -> String {
        format!("  expires in {}", TimeLeft(secs))
    }

    fn show_terminal(&mut self, screen: &Screen, changed: bool) -> io::Result<()> {
        let caps = self.caps;
        if !changed {
            let Some(secs) = screen.seconds_left() else {
                return Ok(());
            };
            let line = Self::countdown(secs);
            if self.open_line.as_deref() == Some(line.as_str()) {
                return Ok(());
            }
            if caps.ansi {
                write!(self.out, "{CLEAR_LINE}{line}")?;
            } else {
                // No ANSI: overwrite with spaces past the end of the old line.
                let old = self.open_line.as_ref().map_or(0, |l| l.chars().count());
                write!(self.out, "\r{line:<old$}")?;
            }
            self.open_line = Some(line);
            return Ok(());
        }
        if self.open_line.take().is_some() {
            if caps.ansi {
                write!(self.out, "{CLEAR_LINE}")?;
            } else {
                writeln!(self.out)?;
            }
        }
        let (bold, reset) = if caps.color { ("\x1b[1m", "\x1b[0m") } else { ("", "") };
        match screen {
            Screen::Waiting {
                user_code,
                verification_url,
                seconds_left,
                ..
            } => {
                writeln!(self.out)?;
                if let Some(text) = Self::qr_text(screen, verification_url, caps) {
                    for line in text.lines() {
                        if caps.color {
                            writeln!(self.out, "  \x1b[30;107m{line}\x1b[0m")?;
                        } else {
                            writeln!(self.out, "  {line}")?;
                        }
                    }
                    writeln!(self.out)?;
                }
                if let Some(w) = screen.warning() {
                    let (mark, end) = if caps.color {
                        ("\x1b[1;31m", "\x1b[0m")
                    } else {
                        ("", "")
                    };
                    writeln!(self.out, "  {mark}!! Warning:{end} {}", printable(w))?;
                }
                writeln!(self.out, "  To pair this device, scan the code or open")?;
                writeln!(self.out, "    {bold}{verification_url}{reset}")?;
                writeln!(self.out, "  and enter the code")?;
                writeln!(self.out, "    {bold}{user_code}{reset}")?;
                writeln!(self.out)?;
                let line = Self::countdown(*seconds_left);
                write!(self.out, "{line}")?;
                self.open_line = Some(line);
            }
            other => {
                let message = other.message();
                if message.is_empty() {
                    writeln!(self.out, "{bold}{}{reset}", other.headline())?;
                } else {
                    writeln!(self.out, "{bold}{}{reset}: {message}", other.headline())?;
                }
            }
        }
        Ok(())
    }

    fn show_plain(&mut self, screen: &Screen, changed: bool, now: Instant) -> io::Result<()> {
        match screen {
            Screen::Waiting {
                user_code,
                verification_url,
                seconds_left,
                ..
            } => {
                let due = self
                    .last_status
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.status_every);
                if changed {
                    writeln!(
                        self.out,
                        "To pair this device, open {verification_url} and enter the code {user_code} (expires in {})",
                        TimeLeft(*seconds_left)
                    )?;
                    if let Some(w) = screen.warning() {
                        writeln!(self.out, "{}", printable(&warning_text(w)))?;
                    }
                } else if due {
                    writeln!(
                        self.out,
                        "Waiting for approval: code {user_code}, expires in {}",
                        TimeLeft(*seconds_left)
                    )?;
                } else {
                    return Ok(());
                }
                self.last_status = Some(now);
            }
            other if changed => {
                let message = other.message();
                if message.is_empty() {
                    writeln!(self.out, "{}", other.headline())?;
                } else {
                    writeln!(self.out, "{}: {message}", other.headline())?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl<W: Write> Drop for TerminalDisplay<W> {
    fn drop(&mut self) {
        // End the countdown line so the next output starts on its own line.
        if self.open_line.is_some() {
            let _ = writeln!(self.out);
            let _ = self.out.flush();
        }
    }
}

impl<W: Write> Show for TerminalDisplay<W> {
    fn show(&mut self, screen: &Screen) -> io::Result<()> {
        self.show_at(screen, Instant::now())
    }
}
