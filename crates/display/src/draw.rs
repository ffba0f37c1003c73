//! Painting a [`Screen`] on any embedded-graphics `DrawTarget`.

use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use embedded_graphics::text::{Baseline, Text};

use crate::layout::{Layout, PlacedText, TextRole, layout};
use crate::qr::QrMatrix;
use crate::screen::Screen;

/// The two colours a screen is drawn in. The QR needs dark modules on light, so the whole
/// screen is light with dark text; on a monochrome OLED "light" is a lit pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme<C> {
    /// Background, QR quiet zone and light modules.
    pub light: C,
    /// Text and dark modules.
    pub dark: C,
}

impl<C: PixelColor + From<BinaryColor>> Default for Theme<C> {
    /// `BinaryColor::On` (white on RGB panels, lit on OLEDs) as light, `Off` as dark.
    fn default() -> Self {
        Theme {
            light: BinaryColor::On.into(),
            dark: BinaryColor::Off.into(),
        }
    }
}

/// Draws `screen` over the whole of `target` in the default black-on-white theme.
///
/// The layout is chosen from the target's size: QR beside or above the text, as many pixels
/// per module as leave the code legible; it is tested to decode at 128×64, 296×128, 240×240,
/// 320×240, 800×480 and 1920×1080. A text too long for any QR is shown as text only.
///
/// A waiting screen's [warning](Screen::warning) is drawn as light text on a dark bar across
/// the top, and the rest below it. Where the bar would cost the QR its scannability or the
/// code its legibility (a 128×64 OLED, for one) it is left out and the screen looks as it
/// would without a warning; the other outputs (terminal, web page, logs) still show it.
pub fn draw_screen<D>(screen: &Screen, target: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget,
    D::Color: From<BinaryColor>,
{
    draw_screen_with(screen, target, &Theme::default())
}

/// [`draw_screen`] with explicit colours.
pub fn draw_screen_with<D: DrawTarget>(
    screen: &Screen,
    target: &mut D,
    theme: &Theme<D::Color>,
) -> Result<(), D::Error> {
    let qr = screen.qr_payload().and_then(|p| QrMatrix::encode(p).ok());
    let area = target.bounding_box();
    let l = layout(
        screen,
        qr.as_ref().map(QrMatrix::size),
        area.size.width,
        area.size.height,
    );
    paint(&l, qr.as_ref(), area.top_left, target, theme)
}

pub(crate) fn paint<D: DrawTarget>(
    l: &Layout,
    qr: Option<&QrMatrix>,
    origin: Point,
    target: &mut D,
    theme: &Theme<D::Color>,
) -> Result<(), D::Error> {
    target.clear(theme.light)?;
    if let (Some(p), Some(qr)) = (l.qr, qr) {
        let s = p.module_px;
        let corner = origin + Point::new(p.x, p.y);
        target.fill_solid(&Rectangle::new(corner, Size::new_equal(p.box_px())), theme.light)?;
        let inner = corner + Point::new_equal((p.quiet * s) as i32);
        for run in qr.dark_runs() {
            let at = inner + Point::new((run.x as u32 * s) as i32, (run.y as u32 * s) as i32);
            target.fill_solid(&Rectangle::new(at, Size::new(run.len as u32 * s, s)), theme.dark)?;
        }
    }
    if let Some(b) = l.band {
        let at = origin + Point::new(b.x, b.y);
        target.fill_solid(&Rectangle::new(at, Size::new(b.w, b.h)), theme.dark)?;
    }
    for t in &l.texts {
        let color = if t.role == TextRole::Warning {
            theme.light
        } else {
            theme.dark
        };
        draw_text(t, origin, target, color)?;
    }
    Ok(())
}

fn draw_text<D: DrawTarget>(t: &PlacedText, origin: Point, target: &mut D, color: D::Color) -> Result<(), D::Error> {
    let style = MonoTextStyle::new(t.size.font, color);
    let at = origin + Point::new(t.x, t.y);
    if t.size.scale == 1 {
        Text::with_baseline(&t.text, at, style, Baseline::Top).draw(target)?;
    } else {
        let mut scaled = Scaled {
            target,
            scale: t.size.scale,
            origin: at,
        };
        Text::with_baseline(&t.text, Point::zero(), style, Baseline::Top).draw(&mut scaled)?;
    }
    Ok(())
}

/// Draws each pixel as a `scale` × `scale` square at `origin + p * scale`: integer-scaled fonts.
struct Scaled<'a, D> {
    target: &'a mut D,
    scale: u32,
    origin: Point,
}

impl<D: DrawTarget> Dimensions for Scaled<'_, D> {
    fn bounding_box(&self) -> Rectangle {
        let b = self.target.bounding_box();
        Rectangle::new(Point::zero(), b.size / self.scale + Size::new(1, 1))
    }
}

impl<D: DrawTarget> DrawTarget for Scaled<'_, D> {
    type Color = D::Color;
    type Error = D::Error;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let size = Size::new_equal(self.scale);
        for Pixel(p, c) in pixels {
            let at = self.origin + p * self.scale as i32;
            self.target.fill_solid(&Rectangle::new(at, size), c)?;
        }
        Ok(())
    }
}
