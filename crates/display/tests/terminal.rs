//! The terminal writer: half blocks and ASCII parsed back to a grid and decoded (painted as a
//! dark or light terminal would); countdown; pipes.

use crate::util::*;
use std::time::{Duration, Instant};
use zoho_device_display::{Background, Screen, TerminalCaps, TerminalDisplay};

const COLOR: TerminalCaps = TerminalCaps {
    is_terminal: true,
    unicode: true,
    ansi: true,
    color: true,
    background: Background::Dark,
};

/// Grey levels of a terminal: the text's ink, the cell background, and the window around the
/// QR lines (the terminal's own background, also where forced colours do not reach).
#[derive(Clone, Copy, Debug)]
struct Paint {
    ink: u8,
    cell: u8,
    window: u8,
}

/// Light text on black, as most terminals.
const DARK_TERMINAL: Paint = Paint {
    ink: 255,
    cell: 0,
    window: 0,
};
/// Black text on white.
const LIGHT_TERMINAL: Paint = Paint {
    ink: 0,
    cell: 255,
    window: 255,
};
/// Forced black on bright white cells, on a dark terminal.
const FORCED_ON_DARK: Paint = Paint {
    ink: 0,
    cell: 255,
    window: 0,
};

/// Paints a grid of cells (`true` = covered by the character's ink) as `paint` says, 4 px per
/// module, with a window margin around, and decodes it.
fn decode_ink(ink: &[Vec<bool>], paint: Paint) -> Vec<String> {
    let w = ink.iter().map(Vec::len).max().unwrap();
    let h = ink.len();
    let (s, margin) = (4usize, 16usize);
    let (pw, ph) = (w * s + 2 * margin, h * s + 2 * margin);
    let mut px = vec![paint.window; pw * ph];
    for (y, row) in ink.iter().enumerate() {
        for (x, &on) in row.iter().enumerate() {
            let luma = if on { paint.ink } else { paint.cell };
            for py in 0..s {
                for pxx in 0..s {
                    px[(margin + y * s + py) * pw + margin + x * s + pxx] = luma;
                }
            }
        }
    }
    decode(pw, ph, |x, y| px[y * pw + x])
}

/// Half-block lines as a grid of modules: `true` where the character's ink is.
fn block_ink(lines: &[String]) -> Vec<Vec<bool>> {
    let mut grid = Vec::new();
    for line in lines {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for c in line.chars() {
            let (t, b) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                ' ' => (false, false),
                other => panic!("unexpected {other:?}"),
            };
            top.push(t);
            bottom.push(b);
        }
        grid.push(top);
        grid.push(bottom);
    }
    grid
}

/// ASCII lines (`##` or two spaces per module) as a grid of modules: `true` for `##`.
fn ascii_ink(lines: &[String]) -> Vec<Vec<bool>> {
    lines
        .iter()
        .map(|l| {
            assert_eq!(l.len() % 2, 0, "{l:?}");
            l.as_bytes()
                .chunks(2)
                .map(|m| match m {
                    b"##" => true,
                    b"  " => false,
                    other => panic!("unexpected {:?} in {l:?}", String::from_utf8_lossy(other)),
                })
                .collect()
        })
        .collect()
}

/// The ASCII QR's lines in `out`, escapes and the two-space indent removed.
fn ascii_qr_lines(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| l.replace("\x1b[30;107m", "").replace("\x1b[0m", ""))
        .filter(|l| l.len() > 40 && l.bytes().all(|b| b == b'#' || b == b' '))
        .map(|l| l.strip_prefix("  ").unwrap().to_string())
        .collect()
}

/// What `caps` writes for `screen` in one frame.
fn render(caps: TerminalCaps, screen: &Screen) -> String {
    let mut out = Vec::new();
    TerminalDisplay::new(&mut out, caps)
        .show_at(screen, Instant::now())
        .unwrap();
    String::from_utf8(out).unwrap()
}

fn qr_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains(['█', '▀', '▄']) || l.contains("\x1b[30;107m"))
        .map(|l| {
            l.replace("\x1b[30;107m", "")
                .replace("\x1b[0m", "")
                .strip_prefix("  ")
                .expect("indented")
                .to_string()
        })
        .collect()
}

#[test]
fn half_blocks_decode_black_on_white() {
    for complete in [false, true] {
        let text = render(COLOR, &waiting(complete));
        // Every QR line is forced black on bright white and reset at its end.
        for l in text.lines().filter(|l| l.contains('▀')) {
            assert!(l.starts_with("  \x1b[30;107m") && l.ends_with("\x1b[0m"), "{l:?}");
        }
        let lines = qr_lines(&text);
        assert_eq!(
            decode_ink(&block_ink(&lines), FORCED_ON_DARK),
            [if complete { URL_COMPLETE } else { URL }]
        );
        assert!(text.contains("KQWX-7RTM") && text.contains(URL));
    }
}

#[test]
fn no_color_polarity_follows_the_background() {
    // Dark terminals (the default): the characters are the light modules. Light terminals
    // (detected from COLORFGBG or given as terminal=light): the dark ones.
    for (background, paint) in [(Background::Dark, DARK_TERMINAL), (Background::Light, LIGHT_TERMINAL)] {
        let caps = TerminalCaps {
            color: false,
            background,
            ..COLOR
        };
        let text = render(caps, &waiting(false));
        assert!(
            !text.contains("\x1b[3") && !text.contains("\x1b[1m"),
            "no colour escapes: {text:?}"
        );
        let lines = qr_lines(&text);
        assert_eq!(decode_ink(&block_ink(&lines), paint), [URL], "{background:?}");
    }
    // The same through the environment: NO_COLOR with a light COLORFGBG.
    let caps = TerminalCaps::from_env(true, |k| match k {
        "NO_COLOR" => Some("1".into()),
        "LANG" => Some("en_US.UTF-8".into()),
        "COLORFGBG" => Some("0;15".into()),
        _ => None,
    });
    assert_eq!(caps.background, Background::Light);
    let text = render(caps, &waiting(true));
    let lines = qr_lines(&text);
    assert_eq!(decode_ink(&block_ink(&lines), LIGHT_TERMINAL), [URL_COMPLETE]);
}

#[test]
fn background_detection() {
    let bg = |v: Option<&str>| {
        TerminalCaps::from_env(true, |k| if k == "COLORFGBG" { v.map(String::from) } else { None }).background
    };
    assert_eq!(bg(None), Background::Dark, "dark unless told otherwise");
    assert_eq!(bg(Some("15;0")), Background::Dark);
    assert_eq!(bg(Some("7;8")), Background::Dark);
    assert_eq!(bg(Some("0;15")), Background::Light);
    assert_eq!(bg(Some("0;default;7")), Background::Light);
    assert_eq!(bg(Some("default;default")), Background::Dark);
    assert_eq!(bg(Some("")), Background::Dark);
    assert_eq!(TerminalCaps::PLAIN.background, Background::Dark);
}

#[test]
fn ascii_fallback_draws_a_qr_that_scans() {
    let dumb = TerminalCaps::from_env(true, |k| (k == "TERM").then(|| "dumb".into()));
    let c_locale = TerminalCaps::from_env(true, |k| match k {
        "TERM" => Some("xterm".into()),
        "LANG" => Some("C".into()),
        _ => None,
    });
    assert!(!dumb.unicode && !dumb.color && !c_locale.unicode && c_locale.color);
    let cases = [
        (dumb, DARK_TERMINAL),
        (
            TerminalCaps {
                background: Background::Light,
                ..dumb
            },
            LIGHT_TERMINAL,
        ),
        // Colours: forced black on white whatever the background.
        (c_locale, FORCED_ON_DARK),
        (
            TerminalCaps {
                background: Background::Light,
                ..c_locale
            },
            FORCED_ON_DARK,
        ),
    ];
    for (caps, paint) in cases {
        for complete in [false, true] {
            let text = render(caps, &waiting(complete));
            assert!(text.is_ascii(), "{text}");
            // No line wider than 80 columns (escapes aside): a wrapped line breaks the code.
            for l in text.lines() {
                let visible = l.replace("\x1b[30;107m", "").replace("\x1b[0m", "");
                assert!(visible.len() <= 80, "{} columns: {visible:?}", visible.len());
            }
            let lines = ascii_qr_lines(&text);
            // Version 3 (29 modules) and the 4-module quiet zone, two characters a module.
            assert_eq!(lines.len(), 29 + 8, "{text}");
            assert!(lines.iter().all(|l| l.len() == 2 * (29 + 8)), "{text}");
            let ink = ascii_ink(&lines);
            let quiet_is_ink = paint.ink > paint.cell;
            for row in ink.iter().take(4).chain(ink.iter().skip(29 + 4)) {
                assert!(row.iter().all(|&m| m == quiet_is_ink), "quiet zone rows: {text}");
            }
            // The complete URL (62 bytes, version 4) would be 84 columns: the plain URL.
            assert_eq!(decode_ink(&ink, paint), [URL], "{caps:?} complete={complete}");
            assert!(text.contains("KQWX-7RTM") && text.contains(URL), "{text}");
            if caps.color {
                for l in text.lines().filter(|l| l.contains('#')) {
                    assert!(l.starts_with("  \x1b[30;107m") && l.ends_with("\x1b[0m"), "{l:?}");
                }
            } else {
                assert!(!text.contains('\x1b'), "{text:?}");
            }
        }
    }
    // A complete URL short enough for 80 columns is the one encoded.
    let short = "https://z.example/d?c=KQWX-7RTM";
    let mut s = waiting(true);
    if let Screen::Waiting {
        verification_uri_complete,
        ..
    } = &mut s
    {
        *verification_uri_complete = Some(short.into());
    }
    let text = render(dumb, &s);
    assert_eq!(decode_ink(&ascii_ink(&ascii_qr_lines(&text)), DARK_TERMINAL), [short]);
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
        let text = render(caps, &waiting(true));
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
    let text = render(COLOR, &warned(true));
    let line = format!("  \x1b[1;31m!! Warning:\x1b[0m {WARNING}\n  To pair this device");
    assert!(text.contains(&line), "{text:?}");
    let lines = qr_lines(&text);
    assert_eq!(decode_ink(&block_ink(&lines), FORCED_ON_DARK), [URL_COMPLETE]);

    // NO_COLOR and dumb terminals: the same line without escapes.
    for caps in [
        TerminalCaps { color: false, ..COLOR },
        TerminalCaps::from_env(true, |k| (k == "TERM").then(|| "dumb".into())),
    ] {
        let text = render(caps, &warned(false));
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
    let text = render(TerminalCaps { color: false, ..COLOR }, &s);
    assert!(text.contains("!! Warning: bad ]0;title  url\n"), "{text:?}");
    assert!(!text.contains('\x07') && !text.contains("\x1b]"));

    for caps in [COLOR, TerminalCaps::PLAIN] {
        let text = render(caps, &waiting(true));
        assert!(!text.contains("Warning"), "{text:?}");
    }
}
