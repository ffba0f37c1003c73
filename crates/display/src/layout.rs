//! Where things go: a pure function from (screen, QR size, screen size) to rectangles and font
//! sizes. `draw` paints it with embedded-graphics; the SVG writer turns it into elements.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use embedded_graphics::mono_font::{MonoFont, ascii};

use crate::screen::{Screen, TimeLeft};

/// A built-in mono font at an integer scale.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TextSize {
    pub font: &'static MonoFont<'static>,
    pub scale: u32,
}

impl TextSize {
    pub fn char_width(&self) -> u32 {
        (self.font.character_size.width + self.font.character_spacing) * self.scale
    }
    pub fn char_height(&self) -> u32 {
        self.font.character_size.height * self.scale
    }
    pub fn text_width(&self, chars: usize) -> u32 {
        chars as u32 * self.char_width()
    }
}

const REGULAR: [&MonoFont<'static>; 8] = [
    &ascii::FONT_4X6,
    &ascii::FONT_5X8,
    &ascii::FONT_6X10,
    &ascii::FONT_7X13,
    &ascii::FONT_8X13,
    &ascii::FONT_9X15,
    &ascii::FONT_9X18,
    &ascii::FONT_10X20,
];

const BOLD: [&MonoFont<'static>; 8] = [
    &ascii::FONT_4X6,
    &ascii::FONT_5X8,
    &ascii::FONT_6X13_BOLD,
    &ascii::FONT_7X13_BOLD,
    &ascii::FONT_8X13_BOLD,
    &ascii::FONT_9X15_BOLD,
    &ascii::FONT_9X18_BOLD,
    &ascii::FONT_10X20,
];

/// All sizes up to `max_height`, smallest first; at equal height unscaled fonts come last
/// (so "the last that fits" prefers a real font over a blown-up small one).
fn sizes(fonts: &[&'static MonoFont<'static>], max_height: u32) -> Vec<TextSize> {
    let mut v: Vec<TextSize> = fonts
        .iter()
        // Only the big fonts are blown up: a scaled 4x6 looks like a toy next to a real 9x18.
        .flat_map(|&font| {
            (1..=if font.character_size.width >= 9 { 32 } else { 1 }).map(move |scale| TextSize { font, scale })
        })
        .filter(|s| s.char_height() <= max_height)
        .collect();
    v.sort_by_key(|s| (s.char_height(), s.char_width(), core::cmp::Reverse(s.scale)));
    v
}

/// The largest size whose `chars` characters fit in `w` × `h`.
fn largest_fitting(fonts: &[&'static MonoFont<'static>], chars: usize, w: u32, h: u32) -> Option<TextSize> {
    sizes(fonts, h)
        .into_iter()
        .filter(|s| s.text_width(chars) <= w)
        .max_by_key(|s| (s.char_height(), s.char_width(), core::cmp::Reverse(s.scale)))
}

/// What a piece of text is, so renderers can style it (the SVG writer uses it for classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextRole {
    Intro,
    Url,
    Code,
    TimeLeft,
    Headline,
    Message,
    /// The waiting screen's warning, drawn light on the dark [`Layout::band`].
    Warning,
}

impl TextRole {
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub fn name(self) -> &'static str {
        match self {
            TextRole::Intro => "intro",
            TextRole::Url => "url",
            TextRole::Code => "code",
            TextRole::TimeLeft => "time",
            TextRole::Headline => "headline",
            TextRole::Message => "message",
            TextRole::Warning => "warning",
        }
    }
}

/// One line of text, top-left at (`x`, `y`).
#[derive(Clone, Debug)]
pub(crate) struct PlacedText {
    pub text: String,
    pub x: i32,
    pub y: i32,
    pub size: TextSize,
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub role: TextRole,
}

/// The QR square: (`x`, `y`) is the top-left of its quiet zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QrPlacement {
    pub x: i32,
    pub y: i32,
    pub module_px: u32,
    pub quiet: u32,
    pub modules: u32,
}

impl QrPlacement {
    pub fn box_px(&self) -> u32 {
        (self.modules + 2 * self.quiet) * self.module_px
    }
}

/// A filled rectangle: the dark bar behind the warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Band {
    pub x: i32,
    pub y: i32,
    pub w: u32,
    pub h: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub qr: Option<QrPlacement>,
    pub texts: Vec<PlacedText>,
    /// The dark bar the [`TextRole::Warning`] lines sit on (drawn in the light colour).
    pub band: Option<Band>,
}

impl Layout {
    fn code_height(&self) -> Option<u32> {
        self.texts
            .iter()
            .find(|t| t.role == TextRole::Code)
            .map(|t| t.size.char_height())
    }

    fn has(&self, role: TextRole) -> bool {
        self.texts.iter().any(|t| t.role == role)
    }
}

/// Splits `text` into lines of at most `cols` characters: at spaces for prose, after `/ . ? & =`
/// for URLs, hard where nothing else works.
pub(crate) fn wrap(text: &str, cols: usize, url: bool) -> Vec<String> {
    let cols = cols.max(1);
    let mut lines = Vec::new();
    if url {
        let chars: Vec<char> = text.chars().collect();
        let mut start = 0;
        while chars.len() - start > cols {
            let window = &chars[start..start + cols];
            let cut = window
                .iter()
                .rposition(|c| matches!(c, '/' | '.' | '?' | '&' | '='))
                .map(|i| i + 1)
                .filter(|&i| i >= cols / 2)
                .unwrap_or(cols);
            lines.push(chars[start..start + cut].iter().collect());
            start += cut;
        }
        lines.push(chars[start..].iter().collect());
        return lines;
    }
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let len = line.chars().count();
            let need = if len == 0 { word.len() } else { len + 1 + word.len() };
            if need <= cols {
                if len > 0 {
                    line.push(' ');
                }
                line.extend(word.iter());
                break;
            }
            if len > 0 {
                lines.push(core::mem::take(&mut line));
                continue;
            }
            // A word longer than a line: hard break.
            let rest = word.split_off(cols);
            lines.push(word.iter().collect());
            word = rest;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

struct Block {
    lines: Vec<(String, TextSize, TextRole)>,
    height: u32,
    key: (u32, bool, u32),
}

impl Block {
    fn gap(size: &TextSize) -> u32 {
        (size.char_height() / 3).max(1)
    }

    /// Places the lines centred horizontally in `x0 .. x0 + w`, the block centred vertically in
    /// `y0 .. y0 + h`.
    fn place(self, x0: i32, y0: i32, w: u32, h: u32, out: &mut Vec<PlacedText>) {
        let mut y = y0 + (h.saturating_sub(self.height) / 2) as i32;
        let gaps = gaps(&self.lines);
        for ((text, size, role), gap) in self.lines.into_iter().zip(gaps) {
            let tw = size.text_width(text.chars().count());
            let x = x0 + (w.saturating_sub(tw) / 2) as i32;
            out.push(PlacedText { text, x, y, size, role });
            y += (size.char_height() + gap) as i32;
        }
    }
}

/// The space after each line: the smaller of the two neighbours' gaps (0 after the last).
fn gaps(lines: &[(String, TextSize, TextRole)]) -> Vec<u32> {
    (0..lines.len())
        .map(|i| match lines.get(i + 1) {
            Some(next) => Block::gap(&lines[i].1).min(Block::gap(&next.1)),
            None => 0,
        })
        .collect()
}

fn block_height(lines: &[(String, TextSize, TextRole)]) -> u32 {
    lines
        .iter()
        .zip(gaps(lines))
        .map(|((_, s, _), g)| s.char_height() + g)
        .sum()
}

/// The text of the waiting screen fitted into `w` × `h`: intro (optional), URL (wrapped, at most
/// three lines), code (as large as fits), time left.
fn waiting_block(code: &str, url: &str, secs: u64, w: u32, h: u32, small_cap: u32) -> Option<Block> {
    let long_time = format!("expires in {}", TimeLeft(secs));
    let short_time = TimeLeft(secs).to_string();
    let code_chars = code.chars().count().max(1);
    let mut best: Option<Block> = None;
    for with_intro in [true, false] {
        for small in sizes(&REGULAR, small_cap.min(h)) {
            let cols = (w / small.char_width()) as usize;
            if cols < 4 {
                continue;
            }
            let url_lines = wrap(url, cols, true);
            if url_lines.len() > 3 {
                continue;
            }
            let time = if long_time.len() <= cols {
                &long_time
            } else if short_time.len() <= cols {
                &short_time
            } else {
                continue;
            };
            let mut lines = Vec::new();
            if with_intro {
                if cols < 12 {
                    continue;
                }
                lines.push(("Scan or open".to_string(), small, TextRole::Intro));
            }
            for l in url_lines {
                lines.push((l, small, TextRole::Url));
            }
            let used = block_height(&lines) + 2 * Block::gap(&small) + small.char_height();
            let Some(room) = h.checked_sub(used + Block::gap(&small)) else {
                continue;
            };
            let Some(big) = largest_fitting(&BOLD, code_chars, w, room) else {
                continue;
            };
            if big.char_height() < small.char_height() {
                continue;
            }
            lines.push((code.to_string(), big, TextRole::Code));
            lines.push((time.clone(), small, TextRole::TimeLeft));
            let key = (big.char_height(), with_intro, small.char_height());
            if best.as_ref().is_none_or(|b| key > b.key) {
                best = Some(Block {
                    height: block_height(&lines),
                    lines,
                    key,
                });
            }
        }
    }
    best
}

/// Headline (as large as fits) over a word-wrapped message.
fn message_block(headline: &str, message: &str, w: u32, h: u32, small_cap: u32) -> Block {
    let mut best: Option<Block> = None;
    let small_sizes = if message.is_empty() {
        Vec::new()
    } else {
        sizes(&REGULAR, small_cap.min(h))
    };
    for small in small_sizes.iter().copied().map(Some).chain([None]) {
        let mut lines = Vec::new();
        if let Some(small) = small {
            let cols = (w / small.char_width()) as usize;
            if cols < 4 {
                continue;
            }
            let wrapped = wrap(message, cols, false);
            let fit = ((h / 2) / (small.char_height() + Block::gap(&small))).max(1) as usize;
            if wrapped.len() > fit {
                continue;
            }
            lines.extend(wrapped.into_iter().map(|l| (l, small, TextRole::Message)));
        }
        let used = block_height(&lines) + lines.first().map_or(0, |(_, s, _)| Block::gap(s));
        let room = h.saturating_sub(used);
        let Some(big) = largest_fitting(&BOLD, headline.chars().count(), w, room) else {
            continue;
        };
        if small.is_some_and(|s| big.char_height() < s.char_height()) {
            continue;
        }
        lines.insert(0, (headline.to_string(), big, TextRole::Headline));
        let key = (big.char_height(), small.is_some(), small.map_or(0, |s| s.char_height()));
        if best.as_ref().is_none_or(|b| key > b.key) {
            best = Some(Block {
                height: block_height(&lines),
                lines,
                key,
            });
        }
    }
    best.unwrap_or_else(|| {
        // Nothing fits (a tiny panel and a long message): smallest font, clipped.
        let s = sizes(&REGULAR, u32::MAX)[0];
        let cols = (w / s.char_width()).max(1) as usize;
        let mut lines = alloc::vec![(headline.to_string(), s, TextRole::Headline)];
        lines.extend(
            wrap(message, cols, false)
                .into_iter()
                .map(|l| (l, s, TextRole::Message)),
        );
        Block {
            height: block_height(&lines),
            lines,
            key: (0, false, 0),
        }
    })
}

/// The text on the warning bar: the screen's warning after a `Warning:` marker.
pub(crate) fn warning_text(warning: &str) -> String {
    format!("Warning: {}", warning.trim())
}

/// Lays out `screen` on a `width` × `height` surface; `qr_modules` is the QR's size when the
/// screen has one and it could be encoded.
///
/// A waiting screen's warning goes on a dark bar across the top, in the URL's text size or
/// smaller, on at most two lines; the rest is laid out below it. The bar is left out when the
/// rest would lose what makes the screen usable: the QR (or more than a third of its module
/// size, or modules under 2 px where they were larger), a legible code or the time left. On a
/// 128×64 panel that is always the case.
pub(crate) fn layout(screen: &Screen, qr_modules: Option<usize>, width: u32, height: u32) -> Layout {
    let base = layout_plain(screen, qr_modules, width, height);
    let Some(warning) = screen.warning() else {
        return base;
    };
    let text = warning_text(warning);
    let short = width.min(height);
    let pad = (short / 32).max(1);
    let small_cap = (height / 20).max(8);
    let min_code = (short / 8).clamp(10, 80);
    // Largest first: the first size that leaves the rest usable wins.
    for size in sizes(&REGULAR, small_cap).into_iter().rev() {
        let inner = (size.char_height() / 4).max(1);
        let bar_w = width.saturating_sub(2 * pad);
        let cols = (bar_w.saturating_sub(2 * inner) / size.char_width()) as usize;
        if cols < 16 {
            continue;
        }
        let lines = wrap(&text, cols, false);
        if lines.len() > 2 {
            continue;
        }
        let lines: Vec<_> = lines.into_iter().map(|l| (l, size, TextRole::Warning)).collect();
        let text_h = block_height(&lines);
        let bar_h = text_h + 2 * inner;
        // Padding above the bar, and as much again between the bar and the QR's quiet zone.
        let used = pad + bar_h + pad;
        if used + 16 >= height {
            continue;
        }
        let rest = layout_plain(screen, qr_modules, width, height - used);
        let qr_ok = match (base.qr, rest.qr) {
            (None, None) => true,
            (Some(b), Some(r)) => r.module_px >= b.module_px.min(2) && 3 * r.module_px >= 2 * b.module_px,
            _ => false,
        };
        let code_ok = match (base.code_height(), rest.code_height()) {
            (Some(b), Some(r)) => r >= b.min(min_code),
            (Some(_), None) => false,
            (None, _) => true,
        };
        let time_ok = !base.has(TextRole::TimeLeft) || rest.has(TextRole::TimeLeft);
        if !(qr_ok && code_ok && time_ok) {
            continue;
        }
        let mut texts = Vec::new();
        Block {
            height: text_h,
            lines,
            key: (0, false, 0),
        }
        .place(
            (pad + inner) as i32,
            (pad + inner) as i32,
            bar_w.saturating_sub(2 * inner),
            text_h,
            &mut texts,
        );
        let dy = used as i32;
        texts.extend(rest.texts.into_iter().map(|t| PlacedText { y: t.y + dy, ..t }));
        return Layout {
            qr: rest.qr.map(|q| QrPlacement { y: q.y + dy, ..q }),
            texts,
            band: Some(Band {
                x: pad as i32,
                y: pad as i32,
                w: bar_w,
                h: bar_h,
            }),
        };
    }
    base
}

/// [`layout`] without the warning bar.
fn layout_plain(screen: &Screen, qr_modules: Option<usize>, width: u32, height: u32) -> Layout {
    let short = width.min(height);
    let pad = (short / 32).max(1);
    let small_cap = (height / 20).max(8);
    let mut texts = Vec::new();
    let Screen::Waiting {
        user_code,
        verification_url,
        seconds_left,
        ..
    } = screen
    else {
        let block = message_block(
            screen.headline(),
            screen.message(),
            width - 2 * pad.min(width / 4),
            height - 2 * pad.min(height / 4),
            small_cap,
        );
        block.place(
            pad as i32,
            pad as i32,
            width - 2 * pad.min(width / 4),
            height - 2 * pad.min(height / 4),
            &mut texts,
        );
        return Layout {
            qr: None,
            texts,
            band: None,
        };
    };
    let min_quiet = if short >= 200 {
        4
    } else if short >= 100 {
        2
    } else {
        1
    };
    let min_code = (short / 8).clamp(10, 80);
    let fit = |w: u32, h: u32| waiting_block(user_code, verification_url, *seconds_left, w, h, small_cap);

    // (module px, quiet, code height, stacked) of the best candidate; plus its block and QR.
    type Region = (i32, i32, u32, u32);
    type Candidate = ((bool, u32, u32, u32), QrPlacement, Block, Region);
    let mut best: Option<Candidate> = None;
    if let Some(n) = qr_modules.map(|n| n as u32) {
        for stacked in [false, true] {
            let max_s = short / (n + 2 * min_quiet);
            'scales: for s in (1..=max_s).rev() {
                for q in (min_quiet..=4).rev() {
                    let bx = (n + 2 * q) * s;
                    let (qr, region) = if stacked {
                        if bx > width || bx >= height {
                            continue;
                        }
                        let top = pad.min((height - bx) / 4);
                        let qr = QrPlacement {
                            x: ((width - bx) / 2) as i32,
                            y: top as i32,
                            module_px: s,
                            quiet: q,
                            modules: n,
                        };
                        let y0 = top + bx;
                        (
                            qr,
                            (
                                pad as i32,
                                y0 as i32,
                                width.saturating_sub(2 * pad),
                                height.saturating_sub(y0 + pad),
                            ),
                        )
                    } else {
                        if bx > height || bx >= width {
                            continue;
                        }
                        let left = pad.min((width - bx) / 4);
                        let qr = QrPlacement {
                            x: left as i32,
                            y: ((height - bx) / 2) as i32,
                            module_px: s,
                            quiet: q,
                            modules: n,
                        };
                        let x0 = left + bx;
                        (
                            qr,
                            (
                                x0 as i32,
                                pad as i32,
                                width.saturating_sub(x0 + pad),
                                height.saturating_sub(2 * pad),
                            ),
                        )
                    };
                    let Some(block) = fit(region.2, region.3) else { continue };
                    let code_h = block.key.0;
                    let good = code_h >= min_code;
                    let key = if good {
                        (true, s, q, code_h)
                    } else {
                        (false, code_h, s, q)
                    };
                    if best.as_ref().is_none_or(|b| key > b.0) {
                        best = Some((key, qr, block, region));
                    }
                    if good {
                        break 'scales;
                    }
                }
            }
        }
    }
    match best {
        Some((_, qr, block, (x, y, w, h))) => {
            block.place(x, y, w, h, &mut texts);
            Layout {
                qr: Some(qr),
                texts,
                band: None,
            }
        }
        None => {
            // No room for a QR (or none could be made): the code and URL alone.
            let (w, h) = (width.saturating_sub(2 * pad), height.saturating_sub(2 * pad));
            if let Some(block) = fit(w, h) {
                block.place(pad as i32, pad as i32, w, h, &mut texts);
            } else {
                message_block(user_code, verification_url, w, h, small_cap)
                    .place(pad as i32, pad as i32, w, h, &mut texts);
            }
            Layout {
                qr: None,
                texts,
                band: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WARNING: &str = "the verification URL is not on zoho.com: check it before entering the code";

    fn waiting(warning: Option<&str>) -> Screen {
        Screen::Waiting {
            user_code: "KQWX-7RTM".into(),
            verification_url: "https://accounts.zoho.com/oauth/v3/device".into(),
            verification_uri_complete: None,
            seconds_left: 299,
            total_seconds: 300,
            warning: warning.map(Into::into),
        }
    }

    #[test]
    fn everything_stays_on_screen() {
        let sizes = [
            (128, 64),
            (296, 128),
            (240, 240),
            (320, 240),
            (800, 480),
            (1920, 1080),
            (64, 32),
            (480, 800),
        ];
        let screens = [
            waiting(None),
            waiting(Some(WARNING)),
            Screen::Error {
                message: "the clock is wrong: certificates cannot be checked until it is set".into(),
            },
            Screen::CodeExpired,
        ];
        for (w, h) in sizes {
            for s in &screens {
                for qr in [Some(29), Some(37), None] {
                    let l = layout(s, qr, w, h);
                    if let Some(b) = l.band {
                        assert!(b.x >= 0 && b.y >= 0 && b.x as u32 + b.w <= w && b.y as u32 + b.h <= h);
                        if let Some(q) = l.qr {
                            assert!(q.y >= b.y + b.h as i32, "{w}x{h}: the QR overlaps the warning bar");
                        }
                    }
                    if let Some(q) = l.qr {
                        assert!(
                            q.x >= 0 && q.y >= 0 && q.x as u32 + q.box_px() <= w && q.y as u32 + q.box_px() <= h,
                            "{w}x{h}: {q:?}"
                        );
                    }
                    for t in &l.texts {
                        let tw = t.size.text_width(t.text.chars().count());
                        let on = t.x >= 0 && t.y >= 0 && t.x as u32 + tw <= w && t.y as u32 + t.size.char_height() <= h;
                        // A tiny panel may clip a long message; everything else must fit.
                        assert!(on || w < 100, "{w}x{h} {:?}: {:?} off screen", s.kind(), t.text);
                        if let Some(q) = l.qr {
                            let b = q.box_px() as i32;
                            let apart = t.x >= q.x + b
                                || t.y >= q.y + b
                                || t.x + tw as i32 <= q.x
                                || t.y + t.size.char_height() as i32 <= q.y;
                            assert!(apart, "{w}x{h}: {:?} overlaps the QR", t.text);
                        }
                        if let Some(b) = l.band {
                            let inside = t.x >= b.x
                                && t.y >= b.y
                                && t.x + tw as i32 <= b.x + b.w as i32
                                && t.y + t.size.char_height() as i32 <= b.y + b.h as i32;
                            let below = t.y >= b.y + b.h as i32;
                            assert!(
                                if t.role == TextRole::Warning { inside } else { below },
                                "{w}x{h}: {:?} and the warning bar",
                                t.text
                            );
                        }
                    }
                    if matches!(s, Screen::Waiting { .. }) && w >= 100 {
                        assert!(
                            l.texts.iter().any(|t| t.role == TextRole::TimeLeft),
                            "{w}x{h}: no time left"
                        );
                        assert!(
                            l.texts
                                .iter()
                                .any(|t| t.role == TextRole::Code && t.text == "KQWX-7RTM")
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn warning_bar_where_there_is_room() {
        for (w, h, qr) in [
            (296, 128, 29),
            (296, 128, 37),
            (240, 240, 29),
            (320, 240, 37),
            (800, 480, 37),
            (480, 800, 37),
            (1920, 1080, 37),
        ] {
            let plain = layout(&waiting(None), Some(qr), w, h);
            let warned = layout(&waiting(Some(WARNING)), Some(qr), w, h);
            assert!(plain.band.is_none() && !plain.has(TextRole::Warning));
            assert!(warned.band.is_some(), "{w}x{h}: no warning bar");
            let text: Vec<&str> = warned
                .texts
                .iter()
                .filter(|t| t.role == TextRole::Warning)
                .map(|t| t.text.as_str())
                .collect();
            assert_eq!(text.join(" "), warning_text(WARNING), "{w}x{h}");
            let (p, q) = (plain.qr.unwrap(), warned.qr.unwrap());
            assert!(3 * q.module_px >= 2 * p.module_px, "{w}x{h}: {p:?} -> {q:?}");
            assert!(warned.has(TextRole::Code) && warned.has(TextRole::TimeLeft));
        }
        // 128x64: no room; the screen is the same as without a warning.
        let warned = layout(&waiting(Some(WARNING)), Some(29), 128, 64);
        let plain = layout(&waiting(None), Some(29), 128, 64);
        assert!(warned.band.is_none() && !warned.has(TextRole::Warning));
        assert_eq!(warned.qr, plain.qr);
    }

    #[test]
    fn wraps_urls_after_separators() {
        let l = wrap("https://accounts.zoho.com/oauth/v3/device", 20, true);
        assert_eq!(l, ["https://accounts.", "zoho.com/oauth/v3/", "device"]);
        assert_eq!(wrap("getting a new one...", 10, false), ["getting a", "new one..."]);
        assert_eq!(wrap("abcdefghij", 4, false), ["abcd", "efgh", "ij"]);
    }
}
