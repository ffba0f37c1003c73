// Passes ESP-IDF's link arguments and cfgs (esp-idf-sys) on to this crate, as the esp-idf
// templates do.
fn main() {
    embuild::espidf::sysenv::output();
}
