//! The kiosk page: served on loopback, long-polled updates, and (when Debian's `chromium` is
//! installed) a real headless browser whose screenshot decodes to the URL and which switches
//! to "paired" by itself.

use crate::chromium::{chromium, chromium_missing};
use crate::util::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};
use zoho_device_display::{Screen, WebDisplay};

/// A minimal HTTP/1.1 GET over loopback: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, "GET", path)
}

fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn paired() -> Screen {
    Screen::Paired {
        detail: "paired (eu)".into(),
    }
}

#[test]
fn serves_page_and_state() {
    let web = WebDisplay::bind("127.0.0.1:0").unwrap();
    let addr = web.local_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let (status, body) = get(addr, "/state.json");
    assert_eq!(status, 200);
    assert!(body.starts_with("{\"version\":0,\"state\":\"starting\""), "{body}");

    web.update(&waiting(true));
    let (status, page) = get(addr, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<!doctype html>") && page.contains("\"user_code\":\"KQWX-7RTM\""));
    let (_, state) = get(addr, "/state.json");
    assert!(state.contains("\"version\":1,\"state\":\"waiting\""), "{state}");
    assert!(state.contains(&format!("\"qr_url\":\"{URL_COMPLETE}\"")));
    assert!(state.contains("\"seconds_left\":299,\"total_seconds\":300,\"warning\":null"));
    assert!(state.contains("\\u003csvg"), "svg escaped inside JSON: {state}");

    // The countdown alone does not bump the version.
    let mut s = waiting(true);
    if let Screen::Waiting { seconds_left, .. } = &mut s {
        *seconds_left = 250;
    }
    web.update(&s);
    let (_, state) = get(addr, "/state.json");
    assert!(
        state.contains("\"version\":1,") && state.contains("\"seconds_left\":250"),
        "{state}"
    );

    assert_eq!(get(addr, "/nope").0, 404);
    assert_eq!(request(addr, "POST", "/").0, 405);
}

#[test]
fn warning_in_state_and_page() {
    let web = WebDisplay::bind("127.0.0.1:0").unwrap();
    let addr = web.local_addr();
    web.update(&waiting(true));
    let (_, page) = get(addr, "/");
    assert!(page.contains("<div id=\"warning\" role=\"alert\" hidden></div>"));
    assert!(page.contains("\"warning\":null"));

    // A warning is new content: the version moves, and state and page carry it.
    web.update(&warned(true));
    let expected = format!("\"warning\":\"Warning: {WARNING}\"");
    let (_, state) = get(addr, "/state.json");
    assert!(state.contains("\"version\":2,") && state.contains(&expected), "{state}");
    let (_, page) = get(addr, "/");
    assert!(page.contains(&expected), "{page}");

    // Escaped so it cannot close the inline <script>.
    let mut s = warned(true);
    if let Screen::Waiting { warning, .. } = &mut s {
        *warning = Some("</script><b>x</b>".into());
    }
    web.update(&s);
    let (_, page) = get(addr, "/");
    assert!(
        page.contains("Warning: \\u003c/script\\u003e\\u003cb\\u003ex"),
        "{page}"
    );
    assert_eq!(page.matches("</script>").count(), 1);
}

#[test]
fn long_poll_answers_when_the_screen_changes() {
    let web = WebDisplay::bind("127.0.0.1:0").unwrap();
    let addr = web.local_addr();
    web.update(&waiting(false));
    let started = Instant::now();
    let poll = std::thread::spawn(move || get(addr, "/state.json?v=1"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while web.waiting_clients() == 0 {
        assert!(Instant::now() < deadline, "the long-poll never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    web.update(&paired());
    let (status, body) = poll.join().unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("\"version\":2,\"state\":\"paired\",\"headline\":\"Paired\",\"message\":\"paired (eu)\""),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // An old version answers at once.
    let t = Instant::now();
    assert!(get(addr, "/state.json?v=1").1.contains("\"version\":2"));
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn address_in_use_is_an_error() {
    let web = WebDisplay::bind("127.0.0.1:0").unwrap();
    let e = WebDisplay::bind(web.local_addr()).unwrap_err();
    assert!(e.to_string().contains(&web.local_addr().to_string()), "{e}");
}

#[test]
fn headless_chromium_scans_and_sees_paired() {
    if chromium_missing("headless_chromium_scans_and_sees_paired") {
        return;
    }
    let dir = crate::util::temp_dir("chromium");
    let web = WebDisplay::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", web.local_addr());
    web.update(&waiting(true));

    // 1. Screenshot while waiting; the QR in it decodes to the URL.
    let shot = dir.join("waiting.png");
    let out = chromium(
        &dir.join("profile1"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1024,768".into(),
        ],
        &url,
    )
    .output()
    .unwrap();
    assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&shot).unwrap();
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
    let mut buf = vec![0; dec.output_buffer_size().unwrap()];
    let info = dec.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let chans = info.color_type.samples();
    assert_decodes(
        "chromium screenshot",
        w,
        h,
        |x, y| buf[(y * w + x) * chans],
        URL_COMPLETE,
    );

    // 2. Load the page while waiting, approve meanwhile: the page switches to "paired" by
    //    itself (its long-poll returns), then the DOM is dumped.
    let child = chromium(
        &dir.join("profile2"),
        &["--dump-dom".into(), "--virtual-time-budget=4000".into()],
        &url,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while web.waiting_clients() == 0 {
        assert!(Instant::now() < deadline, "the page never long-polled");
        std::thread::sleep(Duration::from_millis(50));
    }
    web.update(&paired());
    let out = child.wait_with_output().unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("data-state=\"paired\""), "{dom}");
    assert!(
        dom.contains("<div id=\"headline\">Paired</div>") && dom.contains("paired (eu)"),
        "{dom}"
    );
    assert!(dom.contains("<div id=\"qr\"></div>"), "QR removed once paired");

    // 3. With a warning: shown above the instructions, and the QR still decodes. (No virtual
    //    time budget: it would wait for the long-poll, which nothing answers here.)
    web.update(&warned(true));
    let dom_file = dir.join("warned.html");
    let mut child = chromium(&dir.join("profile3"), &["--dump-dom".into()], &url)
        .stdout(std::fs::File::create(&dom_file).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium --dump-dom did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    assert!(
        dom.contains(&format!("<div id=\"warning\" role=\"alert\">Warning: {WARNING}</div>")),
        "{dom}"
    );
    for (i, size) in ["1024,768", "480,320"].into_iter().enumerate() {
        let shot = dir.join(format!("warned-{i}.png"));
        let out = chromium(
            &dir.join(format!("profile-warned-{i}")),
            &[
                format!("--screenshot={}", shot.display()),
                format!("--window-size={size}"),
            ],
            &url,
        )
        .output()
        .unwrap();
        assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
        let bytes = std::fs::read(&shot).unwrap();
        let mut dec = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        let mut buf = vec![0; dec.output_buffer_size().unwrap()];
        let info = dec.next_frame(&mut buf).unwrap();
        let (w, h) = (info.width as usize, info.height as usize);
        let chans = info.color_type.samples();
        assert_decodes(
            &format!("chromium screenshot with warning at {size}"),
            w,
            h,
            |x, y| buf[(y * w + x) * chans],
            URL_COMPLETE,
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn paired_hands_over_to_the_configured_dashboard() {
    use zoho_device_display::DisplaySpec;
    let spec: DisplaySpec = "web=127.0.0.1:0,dashboard=http://127.0.0.1:8181/".parse().unwrap();
    assert_eq!(spec.to_string(), "web=127.0.0.1:0,dashboard=http://127.0.0.1:8181/");
    for bad in [
        "web=127.0.0.1:0,dashboard=javascript:alert(1)",
        "web=127.0.0.1:0,dashboard=",
        "web=127.0.0.1:0,dashboard=http://a b/",
    ] {
        assert!(bad.parse::<DisplaySpec>().is_err(), "{bad}");
    }

    let web = WebDisplay::bind("127.0.0.1:0").unwrap();
    let addr = web.local_addr();
    web.set_dashboard(Some("http://127.0.0.1:8181/".into()));
    web.update(&waiting(true));
    let (_, state) = get(addr, "/state.json");
    assert!(!state.contains("dashboard"), "no hand-over before pairing: {state}");
    web.update(&paired());
    let (_, state) = get(addr, "/state.json");
    assert!(state.contains("\"dashboard\":\"http://127.0.0.1:8181/\""), "{state}");
    web.set_dashboard(None);
    let (_, state) = get(addr, "/state.json");
    assert!(!state.contains("dashboard"), "{state}");
}

#[test]
fn headless_chromium_goes_from_paired_to_the_dashboard() {
    if chromium_missing("headless_chromium_goes_from_paired_to_the_dashboard") {
        return;
    }
    // The "dashboard": a loopback server with one page.
    let dash = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dash_url = format!("http://{}/", dash.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in dash.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "<!doctype html><title>dash</title><p id=d>DASHBOARD-HERE</p>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let web = WebDisplay::bind("127.0.0.1:0").unwrap();
    web.set_dashboard(Some(dash_url));
    web.update(&paired());
    let dir = crate::util::temp_dir("chromium-dashboard");
    let url = format!("http://{}/", web.local_addr());
    let out = chromium(
        &dir.join("profile"),
        &["--virtual-time-budget=3000".into(), "--dump-dom".into()],
        &url,
    )
    .stderr(Stdio::null())
    .output()
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("DASHBOARD-HERE"), "the paired page handed over:\n{dom}");
    let _ = std::fs::remove_dir_all(&dir);
}
