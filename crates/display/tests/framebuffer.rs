//! The Linux framebuffer output's errors (a real device needs hardware; drawing is covered by
//! the memory framebuffer tests in `panels`).

use zoho_device_display::{DisplaySpec, FramebufferDisplay, open};

#[test]
fn missing_device_is_a_clear_error() {
    let e = FramebufferDisplay::open("/dev/fb-does-not-exist").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert!(e.to_string().contains("/dev/fb-does-not-exist"), "{e}");
}

#[test]
fn regular_file_is_not_a_framebuffer() {
    let dir = crate::util::temp_dir("fb");
    let f = dir.join("fb0");
    std::fs::write(&f, vec![0u8; 4096]).unwrap();
    let e = FramebufferDisplay::open(&f).unwrap_err();
    assert!(e.to_string().contains("is not a framebuffer device"), "{e}");
    let spec: DisplaySpec = format!("fb={}", f.display()).parse().unwrap();
    assert!(open(&spec).is_err());
    // A character device that is not a framebuffer: the ioctl fails, reported as an error.
    let e = FramebufferDisplay::open("/dev/null").unwrap_err();
    assert!(e.to_string().contains("/dev/null is not a usable framebuffer"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}
