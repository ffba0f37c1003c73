//! Renders the pairing screens as PNGs (the README's pictures):
//! `cargo run -p zoho-device-display --example screens -- docs/img`.

use std::path::PathBuf;

use zoho_device_display::{Screen, render_png, render_svg, write_atomically};

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "screens".into()));
    std::fs::create_dir_all(&dir)?;
    // What the core says when the verification URL is not on the accounts server's domain.
    let warned = waiting(
        "https://zoho-accounts.example/device",
        Some("the verification URL is not on zoho.com: check it before entering the code"),
    );
    // Last: the binding shadows the function.
    let waiting = waiting("https://accounts.zoho.com/oauth/v3/device", None);
    let paired = Screen::Paired {
        detail: "paired (eu)".into(),
    };
    let shots = [
        ("waiting-320x240", &waiting, 320, 240),
        ("waiting-128x64", &waiting, 128, 64),
        ("waiting-296x128", &waiting, 296, 128),
        ("waiting-800x480", &waiting, 800, 480),
        ("warning-320x240", &warned, 320, 240),
        ("warning-296x128", &warned, 296, 128),
        ("paired-320x240", &paired, 320, 240),
        ("expired-320x240", &Screen::CodeExpired, 320, 240),
    ];
    for (name, screen, w, h) in shots {
        let path = dir.join(format!("{name}.png"));
        write_atomically(&path, &render_png(screen, w, h)?)?;
        println!("{}", path.display());
    }
    let svg = dir.join("waiting-800x480.svg");
    write_atomically(&svg, render_svg(&waiting, 800, 480).as_bytes())?;
    println!("{}", svg.display());
    web_screenshot(&dir, &waiting)
}

/// The waiting screen for code KQWX-7RTM at `base_url`, 287 of 300 seconds left.
fn waiting(base_url: &str, warning: Option<&str>) -> Screen {
    Screen::Waiting {
        user_code: "KQWX-7RTM".into(),
        verification_url: base_url.into(),
        verification_uri_complete: Some(format!("{base_url}?user_code=KQWX-7RTM")),
        seconds_left: 287,
        total_seconds: 300,
        warning: warning.map(Into::into),
    }
}

/// The kiosk page in headless Chromium, when Debian's `chromium` is installed.
#[cfg(feature = "web")]
fn web_screenshot(dir: &std::path::Path, screen: &Screen) -> std::io::Result<()> {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        println!("skipping the web page: /usr/bin/chromium missing (apt-get install -y chromium)");
        return Ok(());
    }
    let web = zoho_device_display::WebDisplay::bind("127.0.0.1:0")?;
    web.update(screen);
    let profile = std::env::temp_dir().join(format!("screens-chromium-{}", std::process::id()));
    let shot = dir.join("web-1024x600.png");
    let status = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1024,600")
        .arg(format!("http://{}/", web.local_addr()))
        .stderr(std::process::Stdio::null())
        .status()?;
    let _ = std::fs::remove_dir_all(profile);
    if status.success() {
        println!("{}", shot.display());
    }
    Ok(())
}

#[cfg(not(feature = "web"))]
fn web_screenshot(_: &std::path::Path, _: &Screen) -> std::io::Result<()> {
    Ok(())
}
