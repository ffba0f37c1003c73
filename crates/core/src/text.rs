//! Server strings on a terminal: the one sanitiser.
//!
//! Anything a server sends that ends up on a terminal, in a log line or in an error message
//! (OAuth `error` and `error_description`, Books' messages and names) is written through
//! [`Safe`]: control characters (C0, DEL, C1 — escape sequences, carriage returns, bells),
//! Unicode line separators and the bidirectional-override characters are shown escaped
//! (`\x1b`, `\u{202e}`), so a reply cannot clear the screen, set the window title, forge a line
//! or reorder what the user reads. Everything else passes unchanged. JSON output needs none of
//! this: JSON escapes control characters itself.

use core::fmt;

/// Writes a string with every character that could steer a terminal escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Safe<'a>(pub &'a str);

/// Whether `c` is shown escaped by [`Safe`].
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

impl fmt::Display for Safe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some((i, c)) = rest.char_indices().find(|&(_, c)| is_unsafe_char(c)) {
            f.write_str(&rest[..i])?;
            if (c as u32) < 0x100 {
                write!(f, "\\x{:02x}", c as u32)?;
            } else {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            }
            rest = &rest[i + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// [`Safe`] into a `String`.
pub fn sanitize(s: &str) -> alloc::string::String {
    alloc::format!("{}", Safe(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_steers_a_terminal_and_keeps_the_rest() {
        assert_eq!(sanitize("Zillum Ltd — Café"), "Zillum Ltd — Café");
        assert_eq!(
            sanitize("\x1b[2J\x1b]0;title\x07Paired"),
            "\\x1b[2J\\x1b]0;title\\x07Paired"
        );
        assert_eq!(sanitize("a\r\nb\tc\u{7f}\u{9b}"), "a\\x0d\\x0ab\\x09c\\x7f\\x9b");
        assert_eq!(sanitize("abc\u{202e}fed\u{2066}"), "abc\\u{202e}fed\\u{2066}");
    }
}
