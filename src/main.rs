//! zoho-device: being built (issue 4).
fn main() {
    println!("zoho-device {}", env!("CARGO_PKG_VERSION"));
}
