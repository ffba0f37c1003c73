//! A `DrawTarget` over raw framebuffer memory: `&mut [u8]` with a stride and the device's
//! channel bitfields. The Linux framebuffer output draws through it into the mmap; tests and
//! the PNG writer draw through it into plain memory.

use core::convert::Infallible;
use core::fmt;
use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;

/// Where one colour channel sits in a pixel value (as in Linux `fb_bitfield`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    /// Bit offset of the channel's least significant bit.
    pub offset: u8,
    /// Number of bits (0 = channel absent).
    pub length: u8,
}

/// A packed pixel format: bytes per pixel and channel bitfields. Pixel values are stored
/// little-endian (as on the ARM and x86 boards this runs on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelFormat {
    /// 8, 16, 24 or 32.
    pub bits_per_pixel: u8,
    /// Red channel.
    pub red: Channel,
    /// Green channel.
    pub green: Channel,
    /// Blue channel.
    pub blue: Channel,
    /// Alpha channel, written fully opaque (`length` 0 when the format has none, as in XRGB).
    pub transp: Channel,
}

const fn ch(offset: u8, length: u8) -> Channel {
    Channel { offset, length }
}

impl PixelFormat {
    /// 32-bit XRGB8888, what HDMI under KMS usually offers.
    pub const XRGB8888: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        red: ch(16, 8),
        green: ch(8, 8),
        blue: ch(0, 8),
        transp: ch(0, 0),
    };
    /// 32-bit XBGR8888.
    pub const XBGR8888: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        red: ch(0, 8),
        green: ch(8, 8),
        blue: ch(16, 8),
        transp: ch(0, 0),
    };
    /// 16-bit RGB565, what SPI TFTs usually offer.
    pub const RGB565: PixelFormat = PixelFormat {
        bits_per_pixel: 16,
        red: ch(11, 5),
        green: ch(5, 6),
        blue: ch(0, 5),
        transp: ch(0, 0),
    };
    /// 24-bit packed, bytes in memory R, G, B (the layout of an 8-bit RGB PNG row).
    pub const RGB888_BYTES: PixelFormat = PixelFormat {
        bits_per_pixel: 24,
        red: ch(0, 8),
        green: ch(8, 8),
        blue: ch(16, 8),
        transp: ch(0, 0),
    };
    /// 8-bit grey (all three channels at offset 0: the value is their mean).
    pub const GRAY8: PixelFormat = PixelFormat {
        bits_per_pixel: 8,
        red: ch(0, 8),
        green: ch(0, 8),
        blue: ch(0, 8),
        transp: ch(0, 0),
    };

    /// Bytes per pixel.
    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }

    fn is_gray(&self) -> bool {
        self.red == self.green && self.green == self.blue
    }

    /// The pixel value for `c`.
    pub fn encode(&self, c: Rgb888) -> u32 {
        if self.is_gray() {
            let g = (u32::from(c.r()) + u32::from(c.g()) + u32::from(c.b())) / 3;
            return put(g, self.red);
        }
        put(c.r().into(), self.red)
            | put(c.g().into(), self.green)
            | put(c.b().into(), self.blue)
            | put(255, self.transp)
    }

    /// The colour of pixel value `v` (channels widened back to 8 bits).
    pub fn decode(&self, v: u32) -> Rgb888 {
        Rgb888::new(take(v, self.red), take(v, self.green), take(v, self.blue))
    }
}

fn put(v8: u32, c: Channel) -> u32 {
    if c.length == 0 {
        return 0;
    }
    let v = if c.length <= 8 {
        v8 >> (8 - c.length)
    } else {
        v8 << (c.length - 8)
    };
    v << c.offset
}

fn take(v: u32, c: Channel) -> u8 {
    if c.length == 0 {
        return 0;
    }
    let mask = if c.length >= 32 { u32::MAX } else { (1 << c.length) - 1 };
    let x = (v >> c.offset) & mask;
    if c.length >= 8 {
        (x >> (c.length - 8)) as u8
    } else {
        // Widen by repeating the high bits: 0b11111 -> 0xff.
        let x8 = x << (8 - c.length);
        (x8 | (x8 >> c.length)) as u8
    }
}

/// Why a [`MemoryFramebuffer`] could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CanvasError {
    /// Only 8, 16, 24 and 32 bits per pixel are supported.
    UnsupportedFormat {
        /// What the device reported.
        bits_per_pixel: u8,
    },
    /// The buffer or stride is too small for the stated size.
    BufferTooSmall,
}

impl fmt::Display for CanvasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CanvasError::UnsupportedFormat { bits_per_pixel } => {
                write!(
                    f,
                    "unsupported pixel format: {bits_per_pixel} bits per pixel (8, 16, 24 or 32 supported)"
                )
            }
            CanvasError::BufferTooSmall => f.write_str("framebuffer memory smaller than width × height × stride"),
        }
    }
}

impl core::error::Error for CanvasError {}

/// A `DrawTarget<Color = Rgb888>` over raw pixel memory.
#[derive(Debug)]
pub struct MemoryFramebuffer<'a> {
    buf: &'a mut [u8],
    width: u32,
    height: u32,
    stride: usize,
    format: PixelFormat,
}

impl<'a> MemoryFramebuffer<'a> {
    /// Wraps `buf`: `height` rows of `stride` bytes, each holding `width` pixels of `format`.
    pub fn new(
        buf: &'a mut [u8],
        width: u32,
        height: u32,
        stride: usize,
        format: PixelFormat,
    ) -> Result<Self, CanvasError> {
        if !matches!(format.bits_per_pixel, 8 | 16 | 24 | 32) {
            return Err(CanvasError::UnsupportedFormat {
                bits_per_pixel: format.bits_per_pixel,
            });
        }
        let row = width as usize * format.bytes_per_pixel();
        if stride < row || (height > 0 && buf.len() < (height as usize - 1) * stride + row) {
            return Err(CanvasError::BufferTooSmall);
        }
        Ok(MemoryFramebuffer {
            buf,
            width,
            height,
            stride,
            format,
        })
    }

    /// The pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// The colour at (`x`, `y`), `None` outside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb888> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let bpp = self.format.bytes_per_pixel();
        let i = y as usize * self.stride + x as usize * bpp;
        let mut b = [0u8; 4];
        b[..bpp].copy_from_slice(&self.buf[i..i + bpp]);
        Some(self.format.decode(u32::from_le_bytes(b)))
    }

    fn fill_rows(&mut self, x0: u32, y0: u32, w: u32, h: u32, value: u32) {
        let bpp = self.format.bytes_per_pixel();
        let px = value.to_le_bytes();
        for y in y0..y0 + h {
            let start = y as usize * self.stride + x0 as usize * bpp;
            let row = &mut self.buf[start..start + w as usize * bpp];
            for chunk in row.chunks_exact_mut(bpp) {
                chunk.copy_from_slice(&px[..bpp]);
            }
        }
    }
}

impl OriginDimensions for MemoryFramebuffer<'_> {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for MemoryFramebuffer<'_> {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Infallible>
    where
        I: IntoIterator<Item = Pixel<Rgb888>>,
    {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.width && (p.y as u32) < self.height {
                let v = self.format.encode(c);
                self.fill_rows(p.x as u32, p.y as u32, 1, 1, v);
            }
        }
        Ok(())
    }

    fn fill_solid(&mut self, area: &Rectangle, color: Rgb888) -> Result<(), Infallible> {
        let a = area.intersection(&self.bounding_box());
        if let Some(br) = a.bottom_right() {
            let v = self.format.encode(color);
            let (x0, y0) = (a.top_left.x as u32, a.top_left.y as u32);
            self.fill_rows(x0, y0, br.x as u32 - x0 + 1, br.y as u32 - y0 + 1, v);
        }
        Ok(())
    }

    fn clear(&mut self, color: Rgb888) -> Result<(), Infallible> {
        self.fill_solid(&self.bounding_box(), color)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for f in [
            PixelFormat::XRGB8888,
            PixelFormat::RGB565,
            PixelFormat::RGB888_BYTES,
            PixelFormat::XBGR8888,
        ] {
            assert_eq!(f.decode(f.encode(Rgb888::WHITE)), Rgb888::WHITE);
            assert_eq!(f.decode(f.encode(Rgb888::BLACK)), Rgb888::BLACK);
            assert_eq!(f.decode(f.encode(Rgb888::RED)), Rgb888::RED);
        }
        assert_eq!(PixelFormat::RGB565.encode(Rgb888::RED), 0xf800);
    }

    #[test]
    fn rejects_bad_buffers() {
        let mut b = [0u8; 10];
        assert_eq!(
            MemoryFramebuffer::new(&mut b, 4, 4, 16, PixelFormat::XRGB8888).unwrap_err(),
            CanvasError::BufferTooSmall
        );
        let f = PixelFormat {
            bits_per_pixel: 1,
            ..PixelFormat::GRAY8
        };
        assert!(matches!(
            MemoryFramebuffer::new(&mut b, 1, 1, 1, f),
            Err(CanvasError::UnsupportedFormat { .. })
        ));
    }
}
