//! Sets the SONAME of the shared library (`liblensdiff.so.MAJOR`) so that
//! programs linked against it record the ABI version they need.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblensdiff.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
