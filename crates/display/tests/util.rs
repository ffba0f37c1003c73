//! Shared helpers: a QR decoder over any grey image, a `Vec`-backed draw target, screens.

use embedded_graphics::prelude::*;
use zoho_device_display::Screen;

pub const URL: &str = "https://accounts.zoho.com/oauth/v3/device";
pub const URL_COMPLETE: &str = "https://accounts.zoho.com/oauth/v3/device?user_code=KQWX-7RTM";

pub fn waiting(complete: bool) -> Screen {
    Screen::Waiting {
        user_code: "KQWX-7RTM".into(),
        verification_url: URL.into(),
        verification_uri_complete: complete.then(|| URL_COMPLETE.to_string()),
        seconds_left: 299,
        total_seconds: 300,
        warning: None,
    }
}

/// What the core says about a verification URL off the accounts server's domain.
pub const WARNING: &str = "the verification URL is not on zoho.com: check it before entering the code";

/// [`waiting`] with [`WARNING`].
pub fn warned(complete: bool) -> Screen {
    let mut s = waiting(complete);
    if let Screen::Waiting { warning, .. } = &mut s {
        *warning = Some(WARNING.into());
    }
    s
}

/// Every QR found in a `w` × `h` grey image (`luma(x, y)`, 0 = black).
pub fn decode(w: usize, h: usize, luma: impl Fn(usize, usize) -> u8) -> Vec<String> {
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, luma);
    img.detect_grids()
        .into_iter()
        .filter_map(|g| g.decode().ok().map(|(_, s)| s))
        .collect()
}

/// Decodes and asserts exactly one QR whose content is `expected`.
#[track_caller]
pub fn assert_decodes(what: &str, w: usize, h: usize, luma: impl Fn(usize, usize) -> u8, expected: &str) {
    let found = decode(w, h, luma);
    assert_eq!(found, [expected.to_string()], "{what}: decoded {found:?}");
}

/// A plain `Vec<C>` draw target of any size and colour type.
pub struct VecTarget<C> {
    pub w: u32,
    pub h: u32,
    pub px: Vec<C>,
}

impl<C: PixelColor> VecTarget<C> {
    pub fn new(w: u32, h: u32, fill: C) -> Self {
        VecTarget {
            w,
            h,
            px: vec![fill; (w * h) as usize],
        }
    }
    pub fn at(&self, x: usize, y: usize) -> C {
        self.px[y * self.w as usize + x]
    }
}

impl<C: PixelColor> OriginDimensions for VecTarget<C> {
    fn size(&self) -> Size {
        Size::new(self.w, self.h)
    }
}

impl<C: PixelColor> DrawTarget for VecTarget<C> {
    type Color = C;
    type Error = std::convert::Infallible;
    fn draw_iter<I: IntoIterator<Item = Pixel<C>>>(&mut self, pixels: I) -> Result<(), Self::Error> {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.w && (p.y as u32) < self.h {
                self.px[(p.y as u32 * self.w + p.x as u32) as usize] = c;
            }
        }
        Ok(())
    }
}

pub fn luma888(c: embedded_graphics::pixelcolor::Rgb888) -> u8 {
    ((u16::from(c.r()) + u16::from(c.g()) + u16::from(c.b())) / 3) as u8
}

pub const SIZES: [(u32, u32); 6] = [(128, 64), (296, 128), (240, 240), (320, 240), (800, 480), (1920, 1080)];

#[allow(dead_code)] // unused when only the no_std tests are built
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("zoho-display-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
