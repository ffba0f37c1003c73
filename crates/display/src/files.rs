//! SVG and PNG files of the whole screen, rewritten atomically when the content changes.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::layout::{TextRole, layout, warning_text};
use crate::qr::QrMatrix;
use crate::screen::Screen;
use crate::show::Show;

/// Escapes `&`, `<`, `>`, `"` and `'` for XML text and attributes.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The dark modules as one SVG path in module units (origin = top-left module, no quiet zone):
/// one `M x y h len v1 h -len z` per horizontal run.
pub(crate) fn qr_path_data(qr: &QrMatrix) -> String {
    let mut d = String::new();
    for r in qr.dark_runs() {
        // Writing to a String cannot fail.
        let _ = write!(d, "M{} {}h{}v1h-{}z", r.x, r.y, r.len, r.len);
    }
    d
}

/// A standalone SVG of the QR alone, quiet zone included, scaling to its container (the web
/// page uses it).
#[cfg_attr(not(feature = "web"), allow(dead_code))]
pub(crate) fn qr_svg(qr: &QrMatrix, caption: &str) -> String {
    let q = QrMatrix::QUIET_ZONE;
    let n = qr.size() + 2 * q;
    format!(
        concat!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {n} {n}" shape-rendering="crispEdges" role="img" aria-label="{cap}">"##,
            r##"<rect width="{n}" height="{n}" fill="#fff"/>"##,
            r##"<path transform="translate({q} {q})" fill="#000" d="{d}"/></svg>"##
        ),
        n = n,
        q = q,
        cap = xml_escape(caption),
        d = qr_path_data(qr)
    )
}

/// The whole screen as an SVG document of `width` × `height` px, laid out like the panels:
/// one `<path>` of horizontal runs (`crispEdges`), the code and URL as `<text>`. A waiting
/// screen's warning is white `<text class="warning">` on a black `<rect class="warning">`
/// across the top, where the layout has room for it (see [`draw_screen`](crate::draw_screen)).
pub fn render_svg(screen: &Screen, width: u32, height: u32) -> String {
    let qr = screen.qr_payload().and_then(|p| QrMatrix::encode(p).ok());
    let l = layout(screen, qr.as_ref().map(QrMatrix::size), width, height);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"><title>{}</title><rect width="{width}" height="{height}" fill="#fff"/>"##,
        xml_escape(&match (screen.qr_payload(), screen.warning()) {
            (Some(url), Some(w)) => format!("Pair this device: {url} ({})", warning_text(w)),
            (Some(url), None) => format!("Pair this device: {url}"),
            (None, _) => format!("{}: {}", screen.headline(), screen.message()),
        })
    );
    if let Some(b) = l.band {
        let _ = write!(
            s,
            r##"<rect class="warning" x="{}" y="{}" width="{}" height="{}" fill="#000"/>"##,
            b.x, b.y, b.w, b.h
        );
    }
    if let (Some(p), Some(qr)) = (l.qr, &qr) {
        let off_x = p.x + (p.quiet * p.module_px) as i32;
        let off_y = p.y + (p.quiet * p.module_px) as i32;
        let _ = write!(
            s,
            r##"<path class="qr" transform="translate({off_x} {off_y}) scale({})" shape-rendering="crispEdges" fill="#000" d="{}"/>"##,
            p.module_px,
            qr_path_data(qr)
        );
    }
    for t in &l.texts {
        let h = t.size.char_height() as f32;
        let w = t.size.text_width(t.text.chars().count());
        let weight = if t.size.font.character_size.width >= 6 && matches!(t.role.name(), "code" | "headline") {
            " font-weight=\"bold\""
        } else {
            ""
        };
        let fill = if t.role == TextRole::Warning { "#fff" } else { "#000" };
        let _ = write!(
            s,
            r##"<text class="{}" x="{}" y="{:.1}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{:.1}"{weight} textLength="{w}" lengthAdjust="spacingAndGlyphs" fill="{fill}">{}</text>"##,
            t.role.name(),
            t.x,
            t.y as f32 + h * 0.8,
            h * 0.9,
            xml_escape(&t.text)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The whole screen as an 8-bit RGB PNG of `width` × `height` px, drawn through the same
/// embedded-graphics layout as the panels.
#[cfg(feature = "png")]
pub fn render_png(screen: &Screen, width: u32, height: u32) -> io::Result<Vec<u8>> {
    use crate::canvas::{MemoryFramebuffer, PixelFormat};
    let stride = width as usize * 3;
    let mut rgb = vec![0u8; stride * height as usize];
    let mut fb =
        MemoryFramebuffer::new(&mut rgb, width, height, stride, PixelFormat::RGB888_BYTES).map_err(io::Error::other)?;
    // Drawing into memory cannot fail (the error type is Infallible).
    let Ok(()) = crate::draw::draw_screen(screen, &mut fb);
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(io::Error::other)?;
    w.write_image_data(&rgb).map_err(io::Error::other)?;
    w.finish().map_err(io::Error::other)?;
    Ok(out)
}

/// Writes `bytes` to `path` so that readers see the old or the new file, never half of one:
/// a temporary file in the same directory, fsync, rename, fsync of the directory.
///
/// The temporary file gets a name nobody can guess (`.NAME.PID.RANDOM.tmp`) and is created
/// exclusively (`O_EXCL`): whatever another user planted under that name — a symbolic link to
/// one of their files included — makes the create fail instead of being written through, so
/// the image never lands anywhere but beside `path`. The rename then replaces `path` itself
/// (a link at `path` is replaced, never followed).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a file path", path.display()),
        )
    })?;
    let (tmp, mut f) = create_temp(dir, &name.to_string_lossy())
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
    let result = (|| {
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
    // Persist the rename itself; some filesystems cannot open a directory, which is fine.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `.NAME.PID.RANDOM.tmp` in `dir` with `create_new` (`O_CREAT|O_EXCL`, which fails
/// on any existing entry, a dangling or planted symbolic link included).
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, fs::File)> {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut last = None;
    for _ in 0..16 {
        // RandomState is keyed from the OS's random source: the name cannot be guessed ahead.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let tmp = dir.join(format!(".{name}.{}.{:016x}.tmp", std::process::id(), h.finish()));
        match fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// The file format of a [`FileDisplay`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileFormat {
    /// Hand-written SVG.
    Svg,
    /// 8-bit RGB PNG.
    #[cfg(feature = "png")]
    Png,
}

/// Keeps an SVG or PNG file showing the screen.
///
/// A new state or code is written at once; while waiting, the countdown is re-rendered at most
/// every [`FileDisplay::with_refresh`] (10 s by default) and written only if the bytes differ.
#[derive(Debug)]
pub struct FileDisplay {
    path: PathBuf,
    format: FileFormat,
    size: (u32, u32),
    refresh: Duration,
    last: Option<(Screen, Instant, Vec<u8>)>,
}

impl FileDisplay {
    /// An SVG file of `width` × `height` px at `path`.
    pub fn svg(path: impl Into<PathBuf>, width: u32, height: u32) -> FileDisplay {
        FileDisplay::new(path.into(), FileFormat::Svg, width, height)
    }

    /// A PNG file of `width` × `height` px at `path`.
    #[cfg(feature = "png")]
    pub fn png(path: impl Into<PathBuf>, width: u32, height: u32) -> FileDisplay {
        FileDisplay::new(path.into(), FileFormat::Png, width, height)
    }

    fn new(path: PathBuf, format: FileFormat, width: u32, height: u32) -> FileDisplay {
        FileDisplay {
            path,
            format,
            size: (width, height),
            refresh: Duration::from_secs(10),
            last: None,
        }
    }

    /// How often the countdown may rewrite the file (default 10 s).
    pub fn with_refresh(mut self, every: Duration) -> FileDisplay {
        self.refresh = every;
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rendered bytes of `screen` in this display's format and size.
    pub fn render(&self, screen: &Screen) -> io::Result<Vec<u8>> {
        let (w, h) = self.size;
        match self.format {
            FileFormat::Svg => Ok(render_svg(screen, w, h).into_bytes()),
            #[cfg(feature = "png")]
            FileFormat::Png => render_png(screen, w, h),
        }
    }

    /// [`Show::show`] with an explicit clock; returns whether the file was written.
    pub fn show_at(&mut self, screen: &Screen, now: Instant) -> io::Result<bool> {
        if let Some((last, at, _)) = &self.last
            && last.same_content(screen)
            && (last == screen || now.saturating_duration_since(*at) < self.refresh)
        {
            return Ok(false);
        }
        let bytes = self.render(screen)?;
        if self.last.as_ref().is_some_and(|(_, _, b)| *b == bytes) {
            self.last = Some((screen.clone(), now, bytes));
            return Ok(false);
        }
        write_atomically(&self.path, &bytes)?;
        self.last = Some((screen.clone(), now, bytes));
        Ok(true)
    }
}

impl Show for FileDisplay {
    fn show(&mut self, screen: &Screen) -> io::Result<()> {
        self.show_at(screen, Instant::now()).map(|_| ())
    }
}
