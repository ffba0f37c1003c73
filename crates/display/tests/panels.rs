//! embedded-graphics layouts on memory framebuffers at every panel size, in several formats.

use crate::util::*;
use embedded_graphics::pixelcolor::{BinaryColor, Rgb565, Rgb888};
use embedded_graphics::prelude::*;
use zoho_device_display::{MemoryFramebuffer, PixelFormat, Screen, draw_screen};

fn expected(complete: bool) -> &'static str {
    if complete { URL_COMPLETE } else { URL }
}

#[test]
fn binary_color_panels_decode() {
    for (w, h) in SIZES {
        for (complete, screen) in [false, true]
            .into_iter()
            .flat_map(|c| [(c, waiting(c)), (c, warned(c))])
        {
            let mut t = VecTarget::new(w, h, BinaryColor::Off);
            draw_screen(&screen, &mut t).unwrap();
            let luma = |x, y| if t.at(x, y) == BinaryColor::On { 255 } else { 0 };
            assert_decodes(
                &format!("BinaryColor {w}x{h} complete={complete} warning={:?}", screen.warning()),
                w as usize,
                h as usize,
                luma,
                expected(complete),
            );
        }
    }
}

#[test]
fn rgb565_and_rgb888_targets_decode() {
    for (w, h) in SIZES {
        let mut t = VecTarget::new(w, h, Rgb565::RED);
        draw_screen(&waiting(true), &mut t).unwrap();
        assert_decodes(
            &format!("Rgb565 {w}x{h}"),
            w as usize,
            h as usize,
            |x, y| luma888(t.at(x, y).into()),
            URL_COMPLETE,
        );
        let mut t = VecTarget::new(w, h, Rgb888::RED);
        draw_screen(&waiting(false), &mut t).unwrap();
        assert_decodes(
            &format!("Rgb888 {w}x{h}"),
            w as usize,
            h as usize,
            |x, y| luma888(t.at(x, y)),
            URL,
        );
    }
}

#[test]
fn memory_framebuffers_decode_in_every_format() {
    for format in [
        PixelFormat::XRGB8888,
        PixelFormat::RGB565,
        PixelFormat::RGB888_BYTES,
        PixelFormat::XBGR8888,
        PixelFormat::GRAY8,
    ] {
        for ((w, h), screen) in SIZES.into_iter().flat_map(|s| [(s, waiting(true)), (s, warned(true))]) {
            // A stride wider than the row, as real framebuffers have.
            let stride = w as usize * format.bytes_per_pixel() + 64;
            let mut mem = vec![0x5au8; stride * h as usize];
            let mut fb = MemoryFramebuffer::new(&mut mem, w, h, stride, format).unwrap();
            draw_screen(&screen, &mut fb).unwrap();
            assert_decodes(
                &format!("{format:?} {w}x{h} warning={:?}", screen.warning()),
                w as usize,
                h as usize,
                |x, y| luma888(fb.pixel(x as u32, y as u32).unwrap()),
                URL_COMPLETE,
            );
        }
    }
}

#[test]
fn code_is_drawn_and_other_screens_have_no_qr() {
    for (w, h) in SIZES {
        for s in [
            Screen::CodeExpired,
            Screen::Paired {
                detail: "paired (eu)".into(),
            },
            Screen::Error {
                message: "network down: retrying in 30 s".into(),
            },
        ] {
            let mut t = VecTarget::new(w, h, BinaryColor::Off);
            draw_screen(&s, &mut t).unwrap();
            assert!(
                decode(w as usize, h as usize, |x, y| if t.at(x, y) == BinaryColor::On {
                    255
                } else {
                    0
                })
                .is_empty()
            );
            let dark = t.px.iter().filter(|&&c| c == BinaryColor::Off).count();
            assert!(dark > 20, "{s:?} at {w}x{h} drew almost nothing");
        }
    }
}
