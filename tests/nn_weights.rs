//! Tests of the safetensors weight store (`lensdiff::nn::weights`).

mod common;

use std::collections::HashMap;
use std::path::Path;

use lensdiff::error::Error;
use lensdiff::nn::Weights;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use common::temp_dir;

/// Writes one tensor with raw little-endian bytes through the safetensors crate.
fn write_raw(path: &Path, name: &str, dtype: Dtype, shape: &[usize], bytes: &[u8]) {
    let view = TensorView::new(dtype, shape.to_vec(), bytes).unwrap();
    safetensors::serialize_to_file([(name, view)], None, path).unwrap();
}

fn assert_format_error(err: Error, path: &Path) {
    match err {
        Error::Format { path: p, reason } => {
            assert_eq!(p, path);
            assert!(!reason.is_empty());
        }
        other => panic!("expected a Format error, got {other:?}"),
    }
}

fn sample() -> Weights {
    let mut w = Weights::new();
    let conv: Vec<f32> = (0..2 * 3 * 3 * 3)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    w.insert("down.0.conv1.weight", &[2, 3, 3, 3], conv)
        .unwrap();
    // Awkward values must survive bit for bit: subnormal, -0, extremes, NaN, inf.
    w.insert(
        "down.0.conv1.bias",
        &[6],
        vec![
            f32::from_bits(1),
            -0.0,
            f32::MAX,
            f32::MIN_POSITIVE,
            f32::from_bits(0x7fc0_1234),
            f32::NEG_INFINITY,
        ],
    )
    .unwrap();
    w.insert("down.0.norm1.gamma", &[2], vec![1.0, 1.5])
        .unwrap();
    w.insert("down.0.norm1.beta", &[2], vec![0.0, -0.25])
        .unwrap();
    w.insert(
        "embed.linear.weight",
        &[4, 2],
        (0..8).map(|i| i as f32 - 3.5).collect(),
    )
    .unwrap();
    w.insert("scale", &[], vec![0.5]).unwrap();
    w.metadata.insert(
        "architecture".into(),
        r#"{"channels":[2,4],"groups":1,"kernel":3}"#.into(),
    );
    w.metadata.insert("format".into(), "pt".into());
    w
}

#[test]
fn round_trip_is_bitwise_with_metadata() {
    let dir = temp_dir("round_trip");
    let path = dir.join("w.safetensors");
    let w = sample();
    w.save(&path).unwrap();
    let r = Weights::load(&path).unwrap();

    assert_eq!(r.metadata, w.metadata);
    assert_eq!(
        r.tensors.keys().collect::<Vec<_>>(),
        w.tensors.keys().collect::<Vec<_>>()
    );
    for (name, t) in &w.tensors {
        let got = r.get(name, &t.shape).unwrap();
        let a: Vec<u32> = t.data.iter().map(|v| v.to_bits()).collect();
        let b: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
        assert_eq!(a, b, "tensor {name}");
    }

    // The file is plain safetensors: the reference crate reads it as F32.
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let v = st.tensor("down.0.conv1.weight").unwrap();
    assert_eq!(v.dtype(), Dtype::F32);
    assert_eq!(v.shape(), &[2, 3, 3, 3]);

    // Saving an empty store (no metadata) also round-trips.
    let empty = dir.join("empty.safetensors");
    Weights::new().save(&empty).unwrap();
    assert_eq!(Weights::load(&empty).unwrap(), Weights::new());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn f64_tensors_are_converted() {
    let dir = temp_dir("f64");
    let path = dir.join("f64.safetensors");
    let vals = [1.0f64, -2.5, 0.15625, 1.0 / 3.0, 1e-3];
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut meta = HashMap::new();
    meta.insert("source".to_string(), "f64 test".to_string());
    let view = TensorView::new(Dtype::F64, vec![5], &bytes).unwrap();
    safetensors::serialize_to_file([("lin.weight", view)], Some(meta), &path).unwrap();

    let w = Weights::load(&path).unwrap();
    assert_eq!(
        w.metadata.get("source").map(String::as_str),
        Some("f64 test")
    );
    let got = w.get("lin.weight", &[5]).unwrap();
    let want: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
    assert_eq!(got, &want[..]);

    // A finite f64 beyond the f32 range is rejected, not turned into infinity.
    let big = dir.join("big.safetensors");
    write_raw(&big, "x", Dtype::F64, &[1], &1e300f64.to_le_bytes());
    assert_format_error(Weights::load(&big).unwrap_err(), &big);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn f16_and_bf16_tensors_are_converted_exactly() {
    let dir = temp_dir("half");
    let want = [1.0f32, -2.5, 0.15625, 0.0];

    // binary16 bit patterns: 1.0, -2.5, 0.15625, +0.
    let f16_bits: [u16; 4] = [0x3c00, 0xc100, 0x3100, 0x0000];
    let f16_path = dir.join("f16.safetensors");
    let bytes: Vec<u8> = f16_bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    write_raw(&f16_path, "norm.gamma", Dtype::F16, &[2, 2], &bytes);
    let w = Weights::load(&f16_path).unwrap();
    assert_eq!(w.get("norm.gamma", &[2, 2]).unwrap(), &want[..]);

    // bfloat16 bit patterns (upper halves of the f32 patterns).
    let bf16_bits: [u16; 4] = [0x3f80, 0xc020, 0x3e20, 0x0000];
    let bf16_path = dir.join("bf16.safetensors");
    let bytes: Vec<u8> = bf16_bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    write_raw(&bf16_path, "norm.beta", Dtype::BF16, &[4], &bytes);
    let w = Weights::load(&bf16_path).unwrap();
    assert_eq!(w.get("norm.beta", &[4]).unwrap(), &want[..]);

    // f16 subnormal, largest finite, and -inf.
    let special = dir.join("f16_special.safetensors");
    let bits: [u16; 3] = [0x0001, 0x7bff, 0xfc00];
    let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    write_raw(&special, "s", Dtype::F16, &[3], &bytes);
    let w = Weights::load(&special).unwrap();
    assert_eq!(
        w.get("s", &[3]).unwrap(),
        &[2f32.powi(-24), 65504.0, f32::NEG_INFINITY][..]
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn other_dtypes_are_rejected() {
    let dir = temp_dir("dtype");
    let path = dir.join("i32.safetensors");
    let bytes: Vec<u8> = [1i32, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    write_raw(&path, "counts", Dtype::I32, &[3], &bytes);
    let err = Weights::load(&path).unwrap_err();
    assert!(err.to_string().contains("counts"), "{err}");
    assert_format_error(err, &path);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn missing_tensor_wrong_shape_wrong_length() {
    let w = sample();
    let err = w.get("up.0.conv1.weight", &[2, 3, 3, 3]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains("up.0.conv1.weight"), "{err}");

    let err = w.get("down.0.conv1.weight", &[3, 2, 3, 3]).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("down.0.conv1.weight"), "{err}");
    // Same element count, different rank: still a mismatch.
    assert!(w.get("embed.linear.weight", &[8]).is_err());

    let mut w = Weights::new();
    let err = w.insert("lin.weight", &[3, 4], vec![0.0; 11]).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("lin.weight"), "{err}");
    assert!(w.tensors.is_empty());
    assert!(matches!(
        w.insert("x", &[usize::MAX, 2], vec![]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(w.insert("", &[1], vec![0.0]).is_err());
    assert!(w.insert("__metadata__", &[1], vec![0.0]).is_err());
}

#[test]
fn bad_files_give_typed_errors_with_the_path() {
    let dir = temp_dir("bad");

    // Missing file: Io error.
    let missing = dir.join("missing.safetensors");
    match Weights::load(&missing).unwrap_err() {
        Error::Io { path, .. } => assert_eq!(path, missing),
        other => panic!("expected Io, got {other:?}"),
    }

    // Garbage, empty, and too-short files.
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"this is certainly not a safetensors file at all").unwrap();
    assert_format_error(Weights::load(&garbage).unwrap_err(), &garbage);
    let empty = dir.join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    assert_format_error(Weights::load(&empty).unwrap_err(), &empty);
    let short = dir.join("short.safetensors");
    std::fs::write(&short, [1u8, 0, 0]).unwrap();
    assert_format_error(Weights::load(&short).unwrap_err(), &short);

    // Header length pointing past the end; header that is not JSON.
    let huge = dir.join("huge.safetensors");
    std::fs::write(&huge, u64::MAX.to_le_bytes()).unwrap();
    assert_format_error(Weights::load(&huge).unwrap_err(), &huge);
    let notjson = dir.join("notjson.safetensors");
    let mut b = 8u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{{{{{{{{");
    std::fs::write(&notjson, b).unwrap();
    assert_format_error(Weights::load(&notjson).unwrap_err(), &notjson);

    // A valid file truncated at every length is rejected, never accepted or panicking.
    let good = dir.join("good.safetensors");
    sample().save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.join("cut.safetensors");
    for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        assert_format_error(Weights::load(&cut).unwrap_err(), &cut);
    }
    // Trailing junk is rejected too.
    let mut long = bytes.clone();
    long.extend_from_slice(&[0; 4]);
    std::fs::write(&cut, &long).unwrap();
    assert_format_error(Weights::load(&cut).unwrap_err(), &cut);

    // Saving into a directory that does not exist is an Io error.
    let nowhere = dir.join("no/such/dir/w.safetensors");
    match sample().save(&nowhere).unwrap_err() {
        Error::Io { path, .. } => assert_eq!(path, nowhere),
        other => panic!("expected Io, got {other:?}"),
    }
    std::fs::remove_dir_all(dir).ok();
}
