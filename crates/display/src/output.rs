//! The CLI's `--display` strings, and the factory that opens each output.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::show::{NoDisplay, Show, SignalHandling};
use crate::terminal::Background;

/// Default size of SVG and PNG files (a 7" touch screen).
pub const DEFAULT_FILE_SIZE: (u32, u32) = (800, 480);

/// One `--display` value.
///
/// Syntax: `terminal`, `terminal=dark`, `terminal=light`, `none`, `svg=PATH`, `png=PATH`,
/// `svg:WxH=PATH`, `png:WxH=PATH` (size default 800x480), `fb` (= `fb=/dev/fb0`), `fb=DEVICE`,
/// `web=ADDR` (e.g. `web=127.0.0.1:8080`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisplaySpec {
    /// Half-block QR (ASCII without Unicode), code and countdown on stderr; a plain status line when not a terminal.
    /// The background (which decides the QR's polarity when colours are off) is detected
    /// from `COLORFGBG`, else taken to be dark; see [`TerminalCaps`](crate::TerminalCaps).
    /// `terminal=auto` parses to this too.
    Terminal,
    /// `terminal=dark` / `terminal=light`: as [`DisplaySpec::Terminal`] with the terminal's
    /// background given rather than detected.
    TerminalOn {
        /// The terminal's background colour.
        background: Background,
    },
    /// Nothing.
    None,
    /// An SVG file of the whole screen.
    Svg {
        /// Where to write it (atomically).
        path: PathBuf,
        /// Width and height in px.
        size: (u32, u32),
    },
    /// A PNG file of the whole screen.
    Png {
        /// Where to write it (atomically).
        path: PathBuf,
        /// Width and height in px.
        size: (u32, u32),
    },
    /// A Linux framebuffer device.
    Framebuffer {
        /// E.g. `/dev/fb0`.
        device: PathBuf,
    },
    /// The kiosk web page.
    Web {
        /// Listening address, e.g. `127.0.0.1:8080`.
        addr: SocketAddr,
        /// Where the page goes once the device is paired (`web=ADDR,dashboard=URL`): an
        /// `http://` or `https://` URL, e.g. the agent gateway's dashboard.
        dashboard: Option<String>,
    },
}

/// A `--display` value that does not parse; the message says what is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError(String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

const SYNTAX: &str = "expected terminal, none, svg=PATH, png=PATH, svg:WxH=PATH, png:WxH=PATH, fb=DEVICE, web=ADDR[,dashboard=URL] or terminal=dark|light";

fn parse_size(s: &str, whole: &str) -> Result<(u32, u32), SpecError> {
    let bad = || {
        SpecError(format!(
            "bad size {s:?} in {whole:?}: expected WIDTHxHEIGHT, e.g. 800x480, each 16..=8192"
        ))
    };
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if !(16..=8192).contains(&w) || !(16..=8192).contains(&h) {
        return Err(bad());
    }
    Ok((w, h))
}

impl FromStr for DisplaySpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let (key, value) = match s.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (s.trim(), None),
        };
        let (kind, size) = match key.split_once(':') {
            Some((k, sz)) => (k, Some(sz)),
            None => (key, None),
        };
        if size.is_some() && !matches!(kind, "svg" | "png") {
            return Err(SpecError(format!("{s:?}: only svg and png take a size (svg:WxH=PATH)")));
        }
        let path = |what: &str| match value {
            Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
            _ => Err(SpecError(format!(
                "{s:?}: {what} needs a path, e.g. {what}=/run/zoho-device/pair.{what}"
            ))),
        };
        let size = match size {
            Some(sz) => parse_size(sz, s)?,
            None => DEFAULT_FILE_SIZE,
        };
        let no_value = |spec: DisplaySpec| match value {
            None => Ok(spec),
            Some(_) => Err(SpecError(format!("{s:?}: {kind} takes no value"))),
        };
        match kind {
            "terminal" => match value.map(str::trim) {
                None | Some("auto") => Ok(DisplaySpec::Terminal),
                Some("dark") => Ok(DisplaySpec::TerminalOn {
                    background: Background::Dark,
                }),
                Some("light") => Ok(DisplaySpec::TerminalOn {
                    background: Background::Light,
                }),
                Some(_) => Err(SpecError(format!(
                    "{s:?}: terminal takes dark, light or auto (the terminal's background)"
                ))),
            },
            "none" => no_value(DisplaySpec::None),
            "svg" => Ok(DisplaySpec::Svg {
                path: path("svg")?,
                size,
            }),
            "png" => Ok(DisplaySpec::Png {
                path: path("png")?,
                size,
            }),
            "fb" => Ok(DisplaySpec::Framebuffer {
                device: match value {
                    None => PathBuf::from("/dev/fb0"),
                    Some(v) if !v.is_empty() => PathBuf::from(v),
                    Some(_) => return Err(SpecError(format!("{s:?}: fb needs a device, e.g. fb=/dev/fb0"))),
                },
            }),
            "web" => {
                let (v, dashboard) = match value.unwrap_or("").split_once(",dashboard=") {
                    Some((a, url)) => (a, Some(url)),
                    None => (value.unwrap_or(""), None),
                };
                if let Some(url) = dashboard
                    && !((url.starts_with("http://") || url.starts_with("https://"))
                        && url.len() > "http://".len()
                        && url.len() <= 2048
                        && !url.chars().any(|c| c.is_control() || c.is_whitespace()))
                {
                    return Err(SpecError(format!(
                        "{s:?}: dashboard needs an http:// or https:// URL, e.g. web=127.0.0.1:8080,dashboard=http://127.0.0.1:8181/"
                    )));
                }
                let dashboard = dashboard.map(str::to_string);
                let addr = v.parse().map_err(|_| {
                    SpecError(format!(
                        "{s:?}: web needs an IP address and port, e.g. web=127.0.0.1:8080"
                    ))
                })?;
                Ok(DisplaySpec::Web { addr, dashboard })
            }
            "" => Err(SpecError(format!("empty display: {SYNTAX}"))),
            _ => Err(SpecError(format!("unknown display {kind:?}: {SYNTAX}"))),
        }
    }
}

impl fmt::Display for DisplaySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sized = |f: &mut fmt::Formatter<'_>, kind: &str, path: &PathBuf, size: &(u32, u32)| {
            if *size == DEFAULT_FILE_SIZE {
                write!(f, "{kind}={}", path.display())
            } else {
                write!(f, "{kind}:{}x{}={}", size.0, size.1, path.display())
            }
        };
        match self {
            DisplaySpec::Terminal => f.write_str("terminal"),
            DisplaySpec::TerminalOn { background } => write!(f, "terminal={background}"),
            DisplaySpec::None => f.write_str("none"),
            DisplaySpec::Svg { path, size } => sized(f, "svg", path, size),
            DisplaySpec::Png { path, size } => sized(f, "png", path, size),
            DisplaySpec::Framebuffer { device } => write!(f, "fb={}", device.display()),
            DisplaySpec::Web { addr, dashboard: None } => write!(f, "web={addr}"),
            DisplaySpec::Web {
                addr,
                dashboard: Some(url),
            } => write!(f, "web={addr},dashboard={url}"),
        }
    }
}

#[cfg_attr(
    all(feature = "png", feature = "web", feature = "fb", target_os = "linux"),
    allow(dead_code)
)]
fn not_built(feature: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("this build has no {feature} output (cargo feature `{feature}`)"),
    )
}

/// How [`OpenOptions::open`] opens outputs; [`open`] uses the defaults.
///
/// A program with its own signal handling (e.g. a daemon that stops cleanly on SIGTERM and
/// reloads on SIGHUP) opens its outputs with
/// `OpenOptions::new().signals(SignalHandling::Program).open(&spec)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Who handles terminating signals (default [`SignalHandling::RestoreAndExit`]).
    pub signals: SignalHandling,
}

impl OpenOptions {
    /// The defaults: the same as [`open`].
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }

    /// Sets who handles terminating signals.
    pub fn signals(mut self, signals: SignalHandling) -> OpenOptions {
        self.signals = signals;
        self
    }

    /// Opens the output `spec` names. Errors are clear messages: a missing framebuffer device,
    /// a file that is not one, an address in use, an output this build does not have.
    pub fn open(&self, spec: &DisplaySpec) -> io::Result<Box<dyn Show + Send>> {
        Ok(match spec {
            DisplaySpec::Terminal => Box::new(crate::terminal::TerminalDisplay::stderr()),
            DisplaySpec::TerminalOn { background } => {
                Box::new(crate::terminal::TerminalDisplay::stderr_on(*background))
            }
            DisplaySpec::None => Box::new(NoDisplay),
            DisplaySpec::Svg { path, size } => Box::new(crate::files::FileDisplay::svg(path, size.0, size.1)),
            #[cfg(feature = "png")]
            DisplaySpec::Png { path, size } => Box::new(crate::files::FileDisplay::png(path, size.0, size.1)),
            #[cfg(not(feature = "png"))]
            DisplaySpec::Png { .. } => return Err(not_built("png")),
            #[cfg(all(feature = "fb", target_os = "linux"))]
            DisplaySpec::Framebuffer { device } => Box::new(crate::fbdev::FramebufferDisplay::open_with(
                device,
                crate::fbdev::FbOptions {
                    signals: self.signals,
                    ..Default::default()
                },
            )?),
            #[cfg(not(all(feature = "fb", target_os = "linux")))]
            DisplaySpec::Framebuffer { .. } => return Err(not_built("fb")),
            #[cfg(feature = "web")]
            DisplaySpec::Web { addr, dashboard } => {
                let web = crate::web::WebDisplay::bind(addr)?;
                web.set_dashboard(dashboard.clone());
                Box::new(web)
            }
            #[cfg(not(feature = "web"))]
            DisplaySpec::Web { .. } => return Err(not_built("web")),
        })
    }
}

/// Opens the output `spec` names with the default [`OpenOptions`] (for a framebuffer:
/// console restored, then the process ended, on SIGINT, SIGTERM and SIGQUIT). Errors are
/// clear messages: a missing framebuffer device, a file that is not one, an address in use,
/// an output this build does not have.
pub fn open(spec: &DisplaySpec) -> io::Result<Box<dyn Show + Send>> {
    OpenOptions::new().open(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        for s in [
            "terminal",
            "terminal=light",
            "terminal=dark",
            "none",
            "svg=/tmp/a.svg",
            "png:320x240=/run/p.png",
            "fb=/dev/fb1",
            "web=127.0.0.1:8080",
            "web=[::1]:80",
        ] {
            let spec: DisplaySpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        assert_eq!(
            "fb".parse(),
            Ok(DisplaySpec::Framebuffer {
                device: "/dev/fb0".into()
            })
        );
        assert_eq!(
            "png=/a=b.png".parse(),
            Ok(DisplaySpec::Png {
                path: "/a=b.png".into(),
                size: DEFAULT_FILE_SIZE
            })
        );
    }

    #[test]
    fn errors_say_what_is_accepted() {
        let e = |s: &str| s.parse::<DisplaySpec>().unwrap_err().to_string();
        assert!(
            e("hdmi").contains("unknown display \"hdmi\": expected terminal, none"),
            "{}",
            e("hdmi")
        );
        assert!(e("svg").contains("svg needs a path"));
        assert!(e("png:800=/x.png").contains("bad size"));
        assert!(e("web=localhost").contains("e.g. web=127.0.0.1:8080"));
        assert!(e("none=1").contains("takes no value"));
        assert!(e("terminal=1").contains("terminal takes dark, light or auto"));
        assert_eq!("terminal=auto".parse(), Ok(DisplaySpec::Terminal));
        assert!(e("fb:1x1=/dev/fb0").contains("only svg and png take a size"));
        assert!(e("").contains("empty display"));
    }
}
