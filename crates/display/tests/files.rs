//! SVG and PNG files decode back to the URL; they are rewritten only when the content changes.

use crate::util::*;
use std::time::{Duration, Instant};
use zoho_device_display::{FileDisplay, Screen, render_png, render_svg};

/// Rasterises the SVG's QR `<path>` (our own `translate(x y) scale(s)` + `M x y h n v1 h -n z`
/// runs) onto a white canvas of the SVG's size.
fn rasterise_svg(svg: &str, w: usize, h: usize) -> Vec<u8> {
    let mut px = vec![255u8; w * h];
    let start = svg.find("<path class=\"qr\"").expect("a qr path");
    let tag = &svg[start..start + svg[start..].find("/>").unwrap()];
    let attr = |name: &str| {
        let i = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        tag[i..i + tag[i..].find('"').unwrap()].to_string()
    };
    let t = attr("transform");
    let nums: Vec<i64> = t
        .replace(['(', ')'], " ")
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let (ox, oy, s) = (nums[0], nums[1], nums[2]);
    assert_eq!(attr("shape-rendering"), "crispEdges");
    for run in attr("d").split('z').filter(|r| !r.is_empty()) {
        // M{x} {y}h{n}v1h-{n}
        let r = run.trim_start_matches('M');
        let (xy, rest) = r.split_once('h').unwrap();
        let (x, y) = xy.split_once(' ').unwrap();
        let n: i64 = rest.split_once('v').unwrap().0.parse().unwrap();
        let (x, y): (i64, i64) = (x.parse().unwrap(), y.parse().unwrap());
        for py in oy + y * s..oy + (y + 1) * s {
            for px_x in ox + x * s..ox + (x + n) * s {
                px[py as usize * w + px_x as usize] = 0;
            }
        }
    }
    px
}

#[test]
fn svg_decodes_and_escapes() {
    for (w, h) in [(320, 240), (800, 480), (240, 240)] {
        for complete in [false, true] {
            let svg = render_svg(&waiting(complete), w, h);
            assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
            assert_eq!(svg.matches("<path").count(), 1);
            assert!(svg.contains(">KQWX-7RTM</text>"));
            assert!(svg.contains(">expires in 4:59</text>"));
            let px = rasterise_svg(&svg, w as usize, h as usize);
            assert_decodes(
                "svg",
                w as usize,
                h as usize,
                |x, y| px[y * w as usize + x],
                if complete { URL_COMPLETE } else { URL },
            );
        }
    }
    let svg = render_svg(
        &Screen::Error {
            message: "<b>&\"x\"".into(),
        },
        320,
        240,
    );
    assert!(svg.contains("&lt;b&gt;&amp;&quot;x&quot;"), "{svg}");
    assert!(!svg.contains("<b>"));
}

/// The contents of the `<text class="{class}" ...>` elements, in order.
fn texts<'a>(svg: &'a str, class: &str) -> Vec<&'a str> {
    let open = format!("<text class=\"{class}\"");
    svg.match_indices(&open)
        .map(|(i, _)| {
            let rest = &svg[i..];
            let start = rest.find('>').unwrap() + 1;
            &rest[start..rest.find("</text>").unwrap()]
        })
        .collect()
}

#[test]
fn svg_shows_the_warning_on_a_bar_and_still_decodes() {
    for (w, h) in [(296, 128), (240, 240), (320, 240), (800, 480), (480, 800), (1920, 1080)] {
        for complete in [false, true] {
            let svg = render_svg(&warned(complete), w, h);
            assert_eq!(svg.matches("<rect class=\"warning\"").count(), 1, "{w}x{h}");
            assert_eq!(
                texts(&svg, "warning").join(" "),
                format!("Warning: {WARNING}"),
                "{w}x{h}: {svg}"
            );
            assert!(texts(&svg, "code") == ["KQWX-7RTM"] && svg.contains(">expires in 4:59</text>"));
            let px = rasterise_svg(&svg, w as usize, h as usize);
            assert_decodes(
                &format!("svg with warning {w}x{h}"),
                w as usize,
                h as usize,
                |x, y| px[y * w as usize + x],
                if complete { URL_COMPLETE } else { URL },
            );
        }
    }
    // No room on a 128x64 panel: the bar is left out, the title still says it.
    let svg = render_svg(&warned(true), 128, 64);
    assert!(!svg.contains("class=\"warning\""), "{svg}");
    assert!(svg.contains(&format!(
        "<title>Pair this device: {URL_COMPLETE} (Warning: {WARNING})</title>"
    )));
    // Escaped like any other text.
    let mut s = warned(false);
    if let Screen::Waiting { warning, .. } = &mut s {
        *warning = Some("<b>not</b> on \"x\" & y".into());
    }
    let svg = render_svg(&s, 800, 480);
    assert!(svg.contains("&lt;b&gt;not&lt;/b&gt; on &quot;x&quot; &amp; y"), "{svg}");
    assert!(!svg.contains("<b>"));
}

#[test]
fn no_warning_no_bar() {
    for (w, h) in SIZES {
        let svg = render_svg(&waiting(true), w, h);
        assert!(!svg.to_lowercase().contains("warning"), "{w}x{h}: {svg}");
        // An empty warning is no warning.
        let mut s = waiting(true);
        if let Screen::Waiting { warning, .. } = &mut s {
            *warning = Some(" ".into());
        }
        assert_eq!(render_svg(&s, w, h), svg);
        assert_eq!(render_png(&s, w, h).unwrap(), render_png(&waiting(true), w, h).unwrap());
    }
    // Where there is no room for the bar the picture is the one without a warning.
    assert_eq!(
        render_png(&warned(true), 128, 64).unwrap(),
        render_png(&waiting(true), 128, 64).unwrap()
    );
}

fn decode_png(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
    let mut buf = vec![0; dec.output_buffer_size().unwrap()];
    let info = dec.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let (w, h) = (info.width as usize, info.height as usize);
    let luma = (0..w * h)
        .map(|i| ((buf[i * 3] as u16 + buf[i * 3 + 1] as u16 + buf[i * 3 + 2] as u16) / 3) as u8)
        .collect();
    (w, h, luma)
}

#[test]
fn png_decodes() {
    for (w, h) in SIZES {
        let bytes = render_png(&waiting(true), w, h).unwrap();
        let (pw, ph, luma) = decode_png(&bytes);
        assert_eq!((pw, ph), (w as usize, h as usize));
        assert_decodes(&format!("png {w}x{h}"), pw, ph, |x, y| luma[y * pw + x], URL_COMPLETE);
        let bytes = render_png(&warned(true), w, h).unwrap();
        let (pw, ph, luma) = decode_png(&bytes);
        assert_decodes(
            &format!("png with warning {w}x{h}"),
            pw,
            ph,
            |x, y| luma[y * pw + x],
            URL_COMPLETE,
        );
        if w >= 240 {
            // The bar: a dark stripe near the top, most of the width.
            let y = (0..ph / 3)
                .find(|&y| (0..pw).filter(|&x| luma[y * pw + x] < 128).count() > pw * 3 / 4)
                .map(|_| ());
            assert!(y.is_some(), "png {w}x{h}: no warning bar");
        }
    }
}

#[test]
fn files_are_rewritten_only_on_change() {
    let dir = temp_dir("files");
    for (name, mut d) in [
        ("a.svg", FileDisplay::svg(dir.join("a.svg"), 320, 240)),
        ("a.png", FileDisplay::png(dir.join("a.png"), 320, 240)),
    ] {
        let t0 = Instant::now();
        let mut s = waiting(false);
        assert!(d.show_at(&s, t0).unwrap(), "{name}: first write");
        if let Screen::Waiting { seconds_left, .. } = &mut s {
            *seconds_left -= 1;
        }
        assert!(
            !d.show_at(&s, t0 + Duration::from_secs(1)).unwrap(),
            "{name}: countdown within 10 s must not rewrite"
        );
        assert!(!d.show_at(&s, t0 + Duration::from_secs(9)).unwrap());
        assert!(
            d.show_at(&s, t0 + Duration::from_secs(11)).unwrap(),
            "{name}: countdown after 10 s rewrites"
        );
        assert!(
            !d.show_at(&s, t0 + Duration::from_secs(30)).unwrap(),
            "{name}: same screen, same bytes"
        );
        assert!(
            d.show_at(&waiting(true), t0 + Duration::from_secs(31)).unwrap(),
            "{name}: new content at once"
        );
        let paired = Screen::Paired {
            detail: "paired (eu)".into(),
        };
        assert!(d.show_at(&paired, t0 + Duration::from_secs(32)).unwrap());
        assert!(!d.show_at(&paired, t0 + Duration::from_secs(60)).unwrap());
        let on_disk = std::fs::read(d.path()).unwrap();
        assert_eq!(on_disk, d.render(&paired).unwrap());
    }
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unwritable_path_is_an_error() {
    let mut d = FileDisplay::svg("/nonexistent-dir/x/pair.svg", 320, 240);
    let e = zoho_device_display::Show::show(&mut d, &waiting(false)).unwrap_err();
    assert!(e.to_string().contains("/nonexistent-dir/x/pair.svg"), "{e}");
}

#[test]
fn temp_files_are_never_written_through_a_planted_link() {
    // Another user who can write the directory plants links: at the temp name this process
    // used to write (`.NAME.PID.tmp`), and at the file itself.
    let dir = temp_dir("links");
    let victim = dir.join("victim");
    std::fs::write(&victim, b"someone else's file").unwrap();
    let path = dir.join("pair.svg");
    std::os::unix::fs::symlink(&victim, dir.join(format!(".pair.svg.{}.tmp", std::process::id()))).unwrap();
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    let mut d = FileDisplay::svg(&path, 320, 240);
    assert!(d.show_at(&waiting(false), Instant::now()).unwrap());
    assert_eq!(std::fs::read(&victim).unwrap(), b"someone else's file");
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.is_file(), "the link at the path is replaced, not followed");
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("<svg"));
    // Only the victim, the planted temp link and the image are there.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
    std::fs::remove_dir_all(dir).unwrap();
}
