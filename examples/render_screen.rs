//! Render a pairing screen to SVG and PNG files, as a kiosk would show it.
//!
//! ```text
//! cargo run --example render_screen -- /tmp/screens
//! ```

use zoho_device_display::{Screen, render_png, render_svg};

fn main() -> std::io::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    std::fs::create_dir_all(&dir)?;
    let screen = Screen::Waiting {
        user_code: "WLKU-4502".into(),
        verification_url: "https://accounts.zoho.com/oauth/v3/device".into(),
        verification_uri_complete: Some("https://accounts.zoho.com/oauth/v3/device/setCode?devcode=WLKU-4502".into()),
        seconds_left: 272,
        total_seconds: 300,
        warning: None,
    };
    std::fs::write(dir.join("pairing.svg"), render_svg(&screen, 800, 480))?;
    std::fs::write(dir.join("pairing.png"), render_png(&screen, 800, 480)?)?;
    println!("wrote {0}/pairing.svg and {0}/pairing.png", dir.display());
    Ok(())
}
