//! Models shipped inside the library, by name (`models/README.md` gives the
//! `lensdiff train` command that made each and its held-out errors), so that a
//! program can sample with a learned prior without any file.

use std::path::Path;

use super::Denoiser;
use crate::error::{Error, Result};

/// `demo-lognormal-hybrid`: the Gaussian + neural hybrid of `lensdiff demo`
/// (the demo U-Net on log-normal fields at 0.5' pixels).
const DEMO_LOGNORMAL_HYBRID: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/models/demo-lognormal-hybrid.safetensors"
));

/// The names of the built-in models (`demo` is an alias of the first).
pub fn builtin_model_names() -> &'static [&'static str] {
    &["demo-lognormal-hybrid"]
}

/// The safetensors bytes of built-in model `name` ([`builtin_model_names`],
/// or `demo`).
pub fn builtin_model_bytes(name: &str) -> Result<&'static [u8]> {
    match name {
        "demo" | "demo-lognormal-hybrid" => Ok(DEMO_LOGNORMAL_HYBRID),
        _ => Err(Error::invalid(
            "model",
            format!(
                "no built-in model {name:?}: the built-in models are {} (or demo)",
                builtin_model_names().join(", ")
            ),
        )),
    }
}

/// Built-in model `name`, loaded.
pub fn builtin_model(name: &str) -> Result<Denoiser> {
    Denoiser::from_bytes(
        builtin_model_bytes(name)?,
        Path::new(&format!("<built-in model {name}>")),
    )
}
