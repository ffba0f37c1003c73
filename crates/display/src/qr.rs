//! The one QR matrix every output draws from.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use qrcodegen_no_heap::{QrCode, QrCodeEcc, Version};

/// A QR code as a square grid of modules (`true` = dark), without the quiet zone.
///
/// Encoded with error-correction level M (raised for free when the data still fits the same
/// version), byte mode: URL paths are case-sensitive, so no alphanumeric trick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrMatrix {
    size: usize,
    modules: Vec<bool>,
}

/// The text does not fit in a QR code (more than 2331 bytes at level M).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QrTooLong;

impl fmt::Display for QrTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("text too long for a QR code")
    }
}

impl core::error::Error for QrTooLong {}

/// One horizontal run of dark modules: row `y`, columns `x .. x + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Column of the first dark module.
    pub x: usize,
    /// Row.
    pub y: usize,
    /// Number of dark modules.
    pub len: usize,
}

impl QrMatrix {
    /// The quiet zone (light border) the QR standard asks for, in modules.
    pub const QUIET_ZONE: usize = 4;

    /// Encodes `text` (byte mode, level M or better).
    pub fn encode(text: &str) -> Result<QrMatrix, QrTooLong> {
        let len = Version::MAX.buffer_len();
        let mut temp = vec![0u8; len];
        let mut out = vec![0u8; len];
        let code = QrCode::encode_text(
            text,
            &mut temp,
            &mut out,
            QrCodeEcc::Medium,
            Version::MIN,
            Version::MAX,
            None,
            true,
        )
        .map_err(|_| QrTooLong)?;
        // size() is 21..=177 by the QR standard, so the cast cannot lose anything.
        let size = code.size() as usize;
        let mut modules = Vec::with_capacity(size * size);
        for y in 0..size as i32 {
            for x in 0..size as i32 {
                modules.push(code.get_module(x, y));
            }
        }
        Ok(QrMatrix { size, modules })
    }

    /// Builds a matrix from a row-major grid of modules (`true` = dark); `None` when the grid
    /// is not square. Useful for tests and for codes made elsewhere.
    pub fn from_modules(size: usize, modules: Vec<bool>) -> Option<QrMatrix> {
        (modules.len() == size * size).then_some(QrMatrix { size, modules })
    }

    /// Modules per side (21 for version 1 ... 177 for version 40), without the quiet zone.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether the module at column `x`, row `y` is dark; outside the grid is light.
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.size && y < self.size && self.modules[y * self.size + x]
    }

    /// The dark modules as horizontal runs, row by row, left to right.
    pub fn dark_runs(&self) -> impl Iterator<Item = Run> + '_ {
        (0..self.size).flat_map(move |y| {
            let row = &self.modules[y * self.size..(y + 1) * self.size];
            let mut x = 0;
            core::iter::from_fn(move || {
                while x < row.len() && !row[x] {
                    x += 1;
                }
                if x >= row.len() {
                    return None;
                }
                let start = x;
                while x < row.len() && row[x] {
                    x += 1;
                }
                Some(Run {
                    x: start,
                    y,
                    len: x - start,
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_notes() {
        // 41 bytes -> version 3 (29 modules); 69 bytes -> version 5 (37 modules).
        let short = "https://accounts.zoho.com/oauth/v3/device";
        assert_eq!(short.len(), 41);
        assert_eq!(QrMatrix::encode(short).unwrap().size(), 29);
        let long = "https://accounts.zoho.com/oauth/v3/device/verify?user_code=ABCD-EFGH12";
        assert_eq!(QrMatrix::encode(&long[..69]).unwrap().size(), 37);
    }

    #[test]
    fn runs_cover_exactly_the_dark_modules() {
        let qr = QrMatrix::encode("hello").unwrap();
        let mut grid = vec![false; qr.size() * qr.size()];
        for r in qr.dark_runs() {
            for x in r.x..r.x + r.len {
                assert!(!grid[r.y * qr.size() + x]);
                grid[r.y * qr.size() + x] = true;
            }
        }
        assert_eq!(QrMatrix::from_modules(qr.size(), grid).unwrap(), qr);
    }

    #[test]
    fn too_long() {
        let s = "a".repeat(3000);
        assert_eq!(QrMatrix::encode(&s), Err(QrTooLong));
    }
}
