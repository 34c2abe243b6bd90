//! Typed errors for every fallible operation in lensdiff.
//!
//! Library code never panics on user input: each failure becomes one of these
//! variants, with a message that names the offending argument or file.

use std::path::PathBuf;

/// Every error lensdiff returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument is out of its documented domain (negative size, NaN, ...).
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// Name of the argument, as in the API or CLI flag.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A buffer or array does not have the shape the geometry needs.
    #[error("shape mismatch for `{name}`: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which array.
        name: &'static str,
        /// Expected shape, e.g. `[360, 360]`.
        expected: String,
        /// Actual shape.
        got: String,
    },
    /// Data contain NaN or infinite values where finite values are required.
    #[error("non-finite value in `{name}` at index {index}")]
    NonFinite {
        /// Which array.
        name: &'static str,
        /// Flat index of the first offending element.
        index: usize,
    },
    /// A variance (or standard deviation) is negative.
    #[error("negative variance in `{name}` at index {index} (value {value})")]
    NegativeVariance {
        /// Which array.
        name: &'static str,
        /// Flat index of the first offending element.
        index: usize,
        /// The value found.
        value: f64,
    },
    /// A scalar argument is NaN or infinite.
    #[error("`{name}` must be finite, got {value}")]
    NonFiniteValue {
        /// Which argument.
        name: &'static str,
        /// The value found.
        value: f64,
    },
    /// A scalar noise level (standard deviation, variance, galaxy density) is negative.
    #[error("negative noise level `{name}` = {value}")]
    NegativeNoise {
        /// Which argument.
        name: &'static str,
        /// The value found.
        value: f64,
    },
    /// Every pixel is masked: the data carry no information.
    #[error("the field is fully masked: no pixel has a finite noise variance")]
    FullyMasked,
    /// An iterative solver did not reach its tolerance.
    #[error("{solver} did not converge: relative residual {residual:.3e} after {iterations} iterations (tolerance {tolerance:.1e})")]
    NotConverged {
        /// Solver name.
        solver: &'static str,
        /// Iterations performed.
        iterations: usize,
        /// Final relative residual.
        residual: f64,
        /// Requested tolerance.
        tolerance: f64,
    },
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file exists but its content is not what was expected.
    #[error("{path}: {reason}")]
    Format {
        /// File path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A compute device is missing, unusable or failed (CUDA libraries not
    /// found, no such GPU, a kernel that does not compile or launch, ...).
    #[error("{device}: {reason}")]
    Device {
        /// The device, as the user named it (`cuda:0`).
        device: String,
        /// What went wrong, and where possible what to do about it.
        reason: String,
    },
    /// The file extension does not name a supported format.
    #[error("{path}: unsupported file type (expected .fits, .fit, .fts or .npy)")]
    UnsupportedFormat {
        /// File path.
        path: PathBuf,
    },
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Device`].
    pub fn device(device: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Device {
            device: device.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::ShapeMismatch`].
    pub fn shape(
        name: &'static str,
        expected: impl std::fmt::Debug,
        got: impl std::fmt::Debug,
    ) -> Self {
        Error::ShapeMismatch {
            name,
            expected: format!("{expected:?}"),
            got: format!("{got:?}"),
        }
    }
}

/// Fails with [`Error::NonFinite`] at the first NaN or infinity in `data`.
pub fn check_finite<T: rustfft::num_traits::Float>(name: &'static str, data: &[T]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite { name, index }),
        None => Ok(()),
    }
}

/// Fails with [`Error::ShapeMismatch`] unless `data.len() == expected`.
pub fn check_len<T>(name: &'static str, data: &[T], expected: usize) -> Result<()> {
    if data.len() == expected {
        Ok(())
    } else {
        Err(Error::shape(name, expected, data.len()))
    }
}
