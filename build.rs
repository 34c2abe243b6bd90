//! Sets the SONAME of the shared library (`liblensdiff.so.MAJOR`) so that
//! programs linked against it record the ABI version they need, and puts the
//! link `liblensdiff.so.MAJOR -> liblensdiff.so` beside the library in the
//! build output (`target/<profile>/`), so that a program linked against the
//! build tree (`-L target/release -llensdiff -Wl,-rpath,...`) finds the name
//! the loader asks for. Installed copies get their links from
//! `scripts/install.sh`.

use std::path::{Path, PathBuf};

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        let soname = format!("liblensdiff.so.{major}");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
        if let Some(dir) = profile_dir() {
            if let Err(e) = soname_link(&dir, &soname) {
                println!(
                    "cargo:warning=could not create {}/{soname}: {e}",
                    dir.display()
                );
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// `target/<profile>/`: OUT_DIR is `target/<profile>/build/lensdiff-<hash>/out`
/// in cargo's default layout (with or without `--target-dir` / `--target`).
/// Where it is not (a separate `build.build-dir`), no link is made and a
/// warning points at `scripts/install.sh`.
fn profile_dir() -> Option<PathBuf> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR")?);
    let dir = out.ancestors().nth(3)?.to_path_buf();
    let layout = out.ancestors().nth(2).and_then(|b| b.file_name()) == Some("build".as_ref());
    if layout && dir.join("deps").is_dir() {
        Some(dir)
    } else {
        println!(
            "cargo:warning=no liblensdiff.so.0 link beside the library (unusual build layout); \
             link against an installed copy (scripts/install.sh)"
        );
        None
    }
}

/// A relative symlink `dir/soname -> liblensdiff.so` (made before the library
/// itself is linked; it resolves once it is). An existing link is replaced; any
/// other file of that name is left alone.
#[cfg(unix)]
fn soname_link(dir: &Path, soname: &str) -> std::io::Result<()> {
    let link = dir.join(soname);
    match std::fs::symlink_metadata(&link) {
        Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&link)?,
        Ok(_) => return Ok(()),
        Err(_) => {}
    }
    std::os::unix::fs::symlink("liblensdiff.so", &link)
}

#[cfg(not(unix))]
fn soname_link(_dir: &Path, _soname: &str) -> std::io::Result<()> {
    Ok(())
}
