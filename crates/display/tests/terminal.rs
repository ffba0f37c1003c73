//! The terminal writer: half blocks parsed back to a grid and decoded; countdown; pipes.

use crate::util::*;
use std::time::{Duration, Instant};
use zoho_device_display::{Screen, TerminalCaps, TerminalDisplay};

const COLOR: TerminalCaps = TerminalCaps {
    is_terminal: true,
    unicode: true,
    ansi: true,
    color: true,
};

/// Parses half-block lines back into a pixel grid (4 px per module side so rqrr has room) and
/// decodes it. `dark_ink`: block characters are dark modules.
fn decode_blocks(lines: &[&str], dark_ink: bool) -> Vec<String> {
    let w = lines.iter().map(|l| l.chars().count()).max().unwrap();
    let h = lines.len() * 2;
    let (s, margin) = (4usize, 8usize);
    let (pw, ph) = (w * s + 2 * margin, h * s + 2 * margin);
    let mut px = vec![255u8; pw * ph];
    for (row, line) in lines.iter().enumerate() {
        for (x, c) in line.chars().enumerate() {
            let (top, bottom) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                ' ' => (false, false),
                other => panic!("unexpected {other:?}"),
            };
            for (dy, ink) in [(0, top), (1, bottom)] {
                if ink == dark_ink {
                    let y = row * 2 + dy;
                    for py in 0..s {
                        for pxx in 0..s {
                            px[(margin + y * s + py) * pw + margin + x * s + pxx] = 0;
                        }
                    }
                }
            }
        }
    }
    decode(pw, ph, |x, y| px[y * pw + x])
}

fn qr_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains(['█', '▀', '▄']) || l.contains("\x1b[30;107m"))
        .map(|l| {
            l.replace("\x1b[30;107m", "")
                .replace("\x1b[0m", "")
                .trim_start_matches("  ")
                .to_string()
        })
        .collect()
}

#[test]
fn half_blocks_decode_black_on_white() {
    for complete in [false, true] {
        let mut out = Vec::new();
        TerminalDisplay::new(&mut out, COLOR)
            .show_at(&waiting(complete), Instant::now())
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        // Every QR line is forced black on bright white and reset at its end.
        for l in text.lines().filter(|l| l.contains('▀')) {
            assert!(l.starts_with("  \x1b[30;107m") && l.ends_with("\x1b[0m"), "{l:?}");
        }
        let lines = qr_lines(&text);
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(decode_blocks(&refs, true), [if complete { URL_COMPLETE } else { URL }]);
        assert!(text.contains("KQWX-7RTM") && text.contains(URL));
    }
}

#[test]
fn no_color_draws_light_modules_as_ink() {
    let caps = TerminalCaps { color: false, ..COLOR };
    let mut out = Vec::new();
    TerminalDisplay::new(&mut out, caps)
        .show_at(&waiting(false), Instant::now())
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        !text.contains("\x1b[3") && !text.contains("\x1b[1m"),
        "no colour escapes: {text:?}"
    );
    let lines = qr_lines(&text);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    // On a dark terminal the ink is light: decode with blocks as the light modules.
    assert_eq!(decode_blocks(&refs, false), [URL]);
}

#[test]
fn countdown_redraws_one_line() {
    let mut out = Vec::new();
    {
        let mut d = TerminalDisplay::new(&mut out, COLOR);
        let t = Instant::now();
        let mut s = waiting(false);
        d.show_at(&s, t).unwrap();
        d.show_at(&s, t).unwrap(); // same second: nothing
        if let Screen::Waiting { seconds_left, .. } = &mut s {
            *seconds_left = 298;
        }
        d.show_at(&s, t).unwrap();
        d.show_at(
            &Screen::Paired {
                detail: "paired (eu)".into(),
            },
            t,
        )
        .unwrap();
    }
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("  expires in 4:59\r\x1b[2K  expires in 4:58\r\x1b[2K\x1b[1mPaired\x1b[0m: paired (eu)\n"),
        "{text:?}"
    );
    assert_eq!(text.matches("expires in 4:59").count(), 1);
}

#[test]
fn ascii_fallback_has_no_blocks() {
    for caps in [
        TerminalCaps::from_env(true, |k| (k == "TERM").then(|| "dumb".into())),
        TerminalCaps::from_env(true, |k| match k {
            "TERM" => Some("xterm".into()),
            "LANG" => Some("C".into()),
            _ => None,
        }),
    ] {
        assert!(!caps.unicode);
        let mut out = Vec::new();
        TerminalDisplay::new(&mut out, caps)
            .show_at(&waiting(true), Instant::now())
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.is_ascii() && text.contains("KQWX-7RTM") && text.contains(URL),
            "{text}"
        );
    }
    let dumb = TerminalCaps::from_env(true, |k| (k == "TERM").then(|| "dumb".into()));
    assert!(!dumb.ansi && !dumb.color);
    let linux = TerminalCaps::from_env(true, |k| (k == "TERM").then(|| "linux".into()));
    assert!(linux.unicode && linux.color);
    let no_color = TerminalCaps::from_env(true, |k| match k {
        "NO_COLOR" => Some("1".into()),
        "LANG" => Some("en_US.UTF-8".into()),
        _ => None,
    });
    assert!(no_color.unicode && !no_color.color);
    let empty = TerminalCaps::from_env(true, |k| (k == "NO_COLOR").then(String::new));
    assert!(empty.color, "an empty NO_COLOR is ignored");
}

#[test]
fn pipes_get_a_status_line_every_30_s_and_no_qr() {
    let mut out = Vec::new();
    {
        let mut d = TerminalDisplay::new(&mut out, TerminalCaps::PLAIN);
        let t0 = Instant::now();
        let mut s = waiting(true);
        for i in 0..=65u64 {
            if let Screen::Waiting { seconds_left, .. } = &mut s {
                *seconds_left = 299 - i;
            }
            d.show_at(&s, t0 + Duration::from_secs(i)).unwrap();
        }
        d.show_at(
            &Screen::Paired {
                detail: "paired (eu)".into(),
            },
            t0 + Duration::from_secs(66),
        )
        .unwrap();
    }
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "To pair this device, open https://accounts.zoho.com/oauth/v3/device and enter the code KQWX-7RTM (expires in 4:59)\n\
         Waiting for approval: code KQWX-7RTM, expires in 4:29\n\
         Waiting for approval: code KQWX-7RTM, expires in 3:59\n\
         Paired: paired (eu)\n"
    );
}

#[test]
fn warning_is_a_marked_line_and_the_qr_still_decodes() {
    // Colours: the marker in bold red, the QR unchanged.
    let mut out = Vec::new();
    TerminalDisplay::new(&mut out, COLOR)
        .show_at(&warned(true), Instant::now())
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let line = format!("  \x1b[1;31m!! Warning:\x1b[0m {WARNING}\n  To pair this device");
    assert!(text.contains(&line), "{text:?}");
    let lines = qr_lines(&text);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert_eq!(decode_blocks(&refs, true), [URL_COMPLETE]);

    // NO_COLOR and dumb terminals: the same line without escapes.
    for caps in [
        TerminalCaps { color: false, ..COLOR },
        TerminalCaps::from_env(true, |k| (k == "TERM").then(|| "dumb".into())),
    ] {
        let mut out = Vec::new();
        TerminalDisplay::new(&mut out, caps)
            .show_at(&warned(false), Instant::now())
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(&format!("\n  !! Warning: {WARNING}\n")), "{text:?}");
        assert!(!text.contains("\x1b[3") && !text.contains("\x1b[1"), "{text:?}");
    }

    // A pipe: one Warning line after the first status line, not repeated.
    let mut out = Vec::new();
    {
        let mut d = TerminalDisplay::new(&mut out, TerminalCaps::PLAIN);
        let t0 = Instant::now();
        d.show_at(&warned(true), t0).unwrap();
        d.show_at(&warned(true), t0 + Duration::from_secs(31)).unwrap();
    }
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        format!(
            "To pair this device, open {URL} and enter the code KQWX-7RTM (expires in 4:59)\n\
             Warning: {WARNING}\n\
             Waiting for approval: code KQWX-7RTM, expires in 4:59\n"
        )
    );
}

#[test]
fn warning_cannot_smuggle_escapes_and_none_prints_nothing() {
    let mut s = warned(false);
    if let Screen::Waiting { warning, .. } = &mut s {
        *warning = Some("bad\x1b]0;title\x07 url".into());
    }
    let mut out = Vec::new();
    TerminalDisplay::new(&mut out, TerminalCaps { color: false, ..COLOR })
        .show_at(&s, Instant::now())
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("!! Warning: bad ]0;title  url\n"), "{text:?}");
    assert!(!text.contains('\x07') && !text.contains("\x1b]"));

    for caps in [COLOR, TerminalCaps::PLAIN] {
        let mut out = Vec::new();
        TerminalDisplay::new(&mut out, caps)
            .show_at(&waiting(true), Instant::now())
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Warning"), "{text:?}");
    }
}
