//! Named-tensor store for network weights, read and written in the
//! [safetensors](https://github.com/huggingface/safetensors) format.
//!
//! A [`Weights`] value maps tensor names to dense row-major `f32` tensors
//! ([`Tensor`]) and carries free-form string metadata (for example the network
//! architecture as JSON text under a key such as `"architecture"`).
//!
//! # Naming convention
//!
//! Tensor names are dot-separated paths from the network root to a parameter,
//! with the parameter kind last, e.g. `down.0.conv1.weight`,
//! `down.0.conv1.bias`, `down.0.norm1.gamma`, `mid.attn.proj.weight`,
//! `embed.linear.weight`. Numeric components index repeated blocks
//! (`down.0`, `down.1`, ...). The layouts are:
//!
//! | layer                 | name suffix | shape                        |
//! |-----------------------|-------------|------------------------------|
//! | 2-D convolution       | `.weight`   | `[out][in][k][k]`            |
//! | 2-D convolution       | `.bias`     | `[out]`                      |
//! | dense (linear) layer  | `.weight`   | `[out][in]`                  |
//! | dense (linear) layer  | `.bias`     | `[out]`                      |
//! | GroupNorm             | `.gamma`    | `[channels]` (scale)         |
//! | GroupNorm             | `.beta`     | `[channels]` (shift)         |
//!
//! These are exactly the layouts of PyTorch's `state_dict` for `nn.Conv2d`
//! (`weight` is `[out_channels, in_channels, kH, kW]`), `nn.Linear` (`weight`
//! is `[out_features, in_features]`) and `nn.GroupNorm`, so a PyTorch model can
//! be exported with `safetensors.torch.save_file(model.state_dict(), path)`
//! after one renaming step: PyTorch's GroupNorm `weight` becomes our `gamma`
//! and its `bias` becomes our `beta` (convolution and linear names are kept
//! as they are). JAX/Flax users must transpose their kernels (`HWIO` for
//! convolutions, `[in][out]` for dense layers) into these layouts before
//! saving.
//!
//! # Data types
//!
//! [`Weights::save`] writes every tensor as little-endian `F32`.
//! [`Weights::load`] accepts `F32` as is and converts `F16`, `BF16` (both
//! exactly) and `F64` (rounded to nearest) to `f32`; a finite `F64` value
//! outside the `f32` range is a [`Error::Format`] error rather than a silent
//! infinity. Every other dtype (integers, booleans, FP8, ...) is rejected with
//! [`Error::Format`].
//!
//! # Non-finite values
//!
//! NaN and infinite values are stored and loaded unchanged (NaN payloads of
//! `F32`, `F16` and `BF16` data are preserved): this module is a container and
//! does not judge values. Callers that need finite weights should check them,
//! e.g. with [`crate::error::check_finite`].
//!
//! # Errors
//!
//! Nothing here panics on bad input: unreadable or unwritable files give
//! [`Error::Io`], and malformed files (truncated data, bad header, overlapping
//! offsets, unsupported dtype) give [`Error::Format`]; both carry the path.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors, View};

use crate::error::{Error, Result};

/// Metadata key under which safetensors stores its own string map; not a legal
/// tensor name.
const RESERVED_NAME: &str = "__metadata__";

/// One dense row-major `f32` tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Extents, outermost first (`[]` is a scalar).
    pub shape: Vec<usize>,
    /// Elements in row-major order; `data.len()` equals the product of `shape`.
    pub data: Vec<f32>,
}

/// Named tensors plus string metadata, stored as a safetensors file.
///
/// See the [module documentation](self) for the naming convention.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weights {
    /// Tensors by name (sorted, so iteration order is deterministic).
    pub tensors: BTreeMap<String, Tensor>,
    /// Free-form string metadata (e.g. `"architecture"` → JSON text).
    pub metadata: BTreeMap<String, String>,
}

/// Product of `shape` with overflow checking.
fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &e| acc.checked_mul(e))
}

impl Weights {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts (or replaces) the tensor `name` with the given shape and data.
    ///
    /// Fails with [`Error::ShapeMismatch`] when `data.len()` differs from the
    /// product of `shape`, and with [`Error::InvalidArgument`] when `name` is
    /// empty or is the reserved safetensors key `__metadata__`, or when the
    /// shape's element count overflows `usize`.
    pub fn insert(&mut self, name: &str, shape: &[usize], data: Vec<f32>) -> Result<()> {
        if name.is_empty() {
            return Err(Error::invalid("name", "tensor names must not be empty"));
        }
        if name == RESERVED_NAME {
            return Err(Error::invalid(
                "name",
                format!("`{RESERVED_NAME}` is reserved by the safetensors format"),
            ));
        }
        let expected = element_count(shape).ok_or_else(|| {
            Error::invalid(
                "shape",
                format!("shape {shape:?} of tensor `{name}` overflows usize"),
            )
        })?;
        if data.len() != expected {
            return Err(Error::ShapeMismatch {
                name: "data",
                expected: format!("{expected} elements (shape {shape:?}) for tensor `{name}`"),
                got: format!("{} elements", data.len()),
            });
        }
        self.tensors.insert(
            name.to_owned(),
            Tensor {
                shape: shape.to_vec(),
                data,
            },
        );
        Ok(())
    }

    /// The data of tensor `name`, checked to have exactly the given shape.
    ///
    /// A missing name is an [`Error::InvalidArgument`] and a different shape an
    /// [`Error::ShapeMismatch`]; both messages name the tensor.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let tensor = self.tensors.get(name).ok_or_else(|| {
            Error::invalid(
                "name",
                format!(
                    "no tensor named `{name}` in the weights ({} tensors present)",
                    self.tensors.len()
                ),
            )
        })?;
        if tensor.shape != shape {
            return Err(Error::ShapeMismatch {
                name: "weights",
                expected: format!("{shape:?} for tensor `{name}`"),
                got: format!("{:?}", tensor.shape),
            });
        }
        Ok(&tensor.data)
    }

    /// Writes all tensors as little-endian `F32` plus the string metadata to a
    /// safetensors file at `path` (replacing it).
    pub fn save(&self, path: &Path) -> Result<()> {
        let views = self
            .tensors
            .iter()
            .map(|(name, t)| (name.as_str(), F32View(t)));
        let metadata = if self.metadata.is_empty() {
            None
        } else {
            Some(
                self.metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<HashMap<_, _>>(),
            )
        };
        let bytes = safetensors::serialize(views, metadata).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            reason: format!("cannot serialise weights: {e}"),
        })?;
        std::fs::write(path, bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a safetensors file, converting `F16`, `BF16` and `F64` tensors to
    /// `f32` (see the [module documentation](self)).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses the bytes of a safetensors file (e.g. one embedded in a binary);
    /// `path` only labels errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let format = |reason: String| Error::Format {
            path: path.to_path_buf(),
            reason,
        };
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| format(format!("not a valid safetensors file: {e}")))?;
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| format(format!("not a valid safetensors file: {e}")))?;

        let mut weights = Weights::new();
        if let Some(meta) = header.metadata() {
            weights.metadata = meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        for (name, view) in file.iter() {
            let data = convert(name, &view).map_err(format)?;
            let shape = view.shape().to_vec();
            if element_count(&shape) != Some(data.len()) {
                return Err(format(format!(
                    "tensor `{name}`: shape {shape:?} does not match its {} elements",
                    data.len()
                )));
            }
            weights
                .tensors
                .insert(name.to_owned(), Tensor { shape, data });
        }
        Ok(weights)
    }
}

/// Borrowed `f32` tensor presented to the safetensors serialiser.
struct F32View<'a>(&'a Tensor);

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.0.data.len() * std::mem::size_of::<f32>()
    }
}

/// Decodes one tensor's little-endian bytes to `f32`.
fn convert(name: &str, view: &TensorView<'_>) -> std::result::Result<Vec<f32>, String> {
    let raw = view.data();
    let out = match view.dtype() {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
            .collect(),
        Dtype::F64 => {
            let mut out = Vec::with_capacity(raw.len() / 8);
            for (i, c) in raw.chunks_exact(8).enumerate() {
                let v = f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                let r = v as f32;
                if v.is_finite() && !r.is_finite() {
                    return Err(format!(
                        "tensor `{name}`: F64 value {v:e} at index {i} is outside the f32 range"
                    ));
                }
                out.push(r);
            }
            out
        }
        other => {
            return Err(format!(
                "tensor `{name}` has unsupported dtype {other:?} (expected F32, F16, BF16 or F64)"
            ))
        }
    };
    Ok(out)
}

/// Exact conversion of an IEEE 754 binary16 bit pattern to `f32`.
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    match exp {
        // Zero or subnormal: mant × 2^-24, exact in f32.
        0 => {
            let mag = mant as f32 * f32::from_bits(0x3380_0000); // 2^-24
            f32::from_bits(sign | mag.to_bits())
        }
        // Infinity or NaN (payload kept in the high mantissa bits).
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (mant << 13)),
        // Normal: rebias the exponent from 15 to 127.
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (mant << 13)),
    }
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn f16_special_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
