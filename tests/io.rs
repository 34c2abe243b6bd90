//! Tests of `lensdiff::io`: FITS and `.npy` round trips, files written by hand
//! (to check the on-disk conventions independently of our writers), the
//! reference data in `../shared/data` (`#[ignore]`d: module `needs_data`), and
//! every error path.

mod common;

use common::TempDir;

use lensdiff::io::{self, Wcs};
use lensdiff::{Error, Grid};
use ndarray::{Array2, Array3, ArrayD, IxDyn};

// ---------------------------------------------------------------- helpers

/// Values that exercise every bit pattern class of f32 (no NaN: NaN != NaN).
fn awkward_values(n: usize) -> Vec<f32> {
    let special = [
        0.0f32,
        -0.0,
        1.0,
        -1.5,
        f32::MIN_POSITIVE,
        1.0e-42, // subnormal
        f32::MAX,
        f32::MIN,
        f32::EPSILON,
        std::f32::consts::PI,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    (0..n)
        .map(|i| {
            if i < special.len() {
                special[i]
            } else {
                ((i as f32) * 0.618_034).sin() * 10f32.powi((i % 7) as i32 - 3)
            }
        })
        .collect()
}

fn assert_bitwise_eq(a: &ArrayD<f32>, b: &ArrayD<f32>) {
    assert_eq!(a.shape(), b.shape());
    for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "element {i}: {x} vs {y}");
    }
}

/// One 80-character FITS header card.
fn card(key: &str, value: &str) -> String {
    let c = if value.is_empty() {
        format!("{key:<8}")
    } else {
        format!("{key:<8}= {value:>20}")
    };
    assert!(c.len() <= 80);
    format!("{c:<80}")
}

/// A FITS header block (padded to 2880 bytes) from `(key, value)` pairs.
fn header(cards: &[(&str, &str)]) -> Vec<u8> {
    let mut h: String = cards.iter().map(|(k, v)| card(k, v)).collect();
    h.push_str(&card("END", ""));
    while !h.len().is_multiple_of(2880) {
        h.push(' ');
    }
    h.into_bytes()
}

/// Pads a FITS data unit with zeros to a multiple of 2880 bytes.
fn pad(mut data: Vec<u8>) -> Vec<u8> {
    while !data.len().is_multiple_of(2880) {
        data.push(0);
    }
    data
}

/// An `.npy` file (format 1.0) written by hand.
fn npy_bytes(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let shape_txt = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape_txt}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A gzip member holding `data` in stored (uncompressed) deflate blocks.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let chunks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// The value of an integer card in a FITS header we wrote.
fn header_int(bytes: &[u8], key: &str) -> Option<i64> {
    bytes[..2880.min(bytes.len())]
        .chunks(80)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .find(|c| c[..8].trim_end() == key)
        .and_then(|c| c[10..].split('/').next()?.trim().parse().ok())
}

// ---------------------------------------------------------------- FITS round trips

#[test]
fn fits_map_round_trip_is_bitwise_and_x_is_naxis1() {
    let dir = TempDir::new("fits-map");
    let (ny, nx) = (5, 7);
    let map = ArrayD::from_shape_vec(IxDyn(&[ny, nx]), awkward_values(ny * nx)).expect("shape");
    let path = dir.path("map.fits");
    io::write_array(&path, map.view(), None).expect("write");
    let back = io::read_array(&path).expect("read");
    assert_bitwise_eq(&map, &back);
    assert_bitwise_eq(&map, &io::fits::read_f32(&path).expect("fits::read_f32"));

    // On disk: NAXIS1 = nx (fastest), big-endian f32 pixels in row-major order.
    let bytes = std::fs::read(&path).expect("bytes");
    assert_eq!(header_int(&bytes, "BITPIX"), Some(-32));
    assert_eq!(header_int(&bytes, "NAXIS"), Some(2));
    assert_eq!(header_int(&bytes, "NAXIS1"), Some(nx as i64));
    assert_eq!(header_int(&bytes, "NAXIS2"), Some(ny as i64));
    assert_eq!(bytes.len() % 2880, 0);
    let data = &bytes[2880..];
    for (k, &v) in map.iter().enumerate().take(nx + 2) {
        let raw = f32::from_be_bytes([
            data[4 * k],
            data[4 * k + 1],
            data[4 * k + 2],
            data[4 * k + 3],
        ]);
        assert_eq!(raw.to_bits(), v.to_bits(), "pixel {k} on disk");
    }
    // f64 reading of an f32 file is exact.
    let wide = io::read_array_f64(&path).expect("read f64");
    for (a, b) in wide.iter().zip(map.iter()) {
        assert_eq!(*a, f64::from(*b));
    }
    // No temporary file is left behind.
    assert_eq!(dir.entries(), vec!["map.fits".to_string()]);
}

#[test]
fn fits_cube_round_trip_is_bitwise() {
    let dir = TempDir::new("fits-cube");
    let shape = [3, 4, 6];
    let cube = ArrayD::from_shape_vec(IxDyn(&shape), awkward_values(72)).expect("shape");
    let path = dir.path("cube.FITS");
    io::write_array(&path, cube.view(), None).expect("write");
    assert_bitwise_eq(&cube, &io::read_array(&path).expect("read"));
    let bytes = std::fs::read(&path).expect("bytes");
    assert_eq!(header_int(&bytes, "NAXIS"), Some(3));
    assert_eq!(header_int(&bytes, "NAXIS1"), Some(6));
    assert_eq!(header_int(&bytes, "NAXIS3"), Some(3));

    // A non-contiguous view is written in logical (C) order.
    let t = cube.view().permuted_axes(IxDyn(&[2, 1, 0]));
    let tpath = dir.path("transposed.fts");
    io::write_array(&tpath, t.view(), None).expect("write transposed");
    assert_bitwise_eq(
        &t.to_owned(),
        &io::read_array(&tpath).expect("read transposed"),
    );

    // read_stack keeps a 3-D file as is and lifts a 2-D file to [1, ny, nx].
    let finite = cube.mapv(|v| if v.is_finite() { v } else { 0.0 });
    io::write_array(&path, finite.view(), None).expect("overwrite");
    let stack = io::read_stack(&path).expect("stack");
    assert_eq!(stack.shape(), &[3, 4, 6]);
    assert_eq!(stack.into_dyn(), finite);
    let map = Array2::from_shape_fn((4, 5), |(y, x)| (10 * y + x) as f32);
    let mpath = dir.path("map.fit");
    io::write_array(&mpath, map.view().into_dyn(), None).expect("write map");
    let lifted = io::read_stack(&mpath).expect("lift");
    assert_eq!(lifted.shape(), &[1, 4, 5]);
    assert_eq!(lifted.index_axis(ndarray::Axis(0), 0), map);
}

#[test]
fn fits_overwrite_and_literal_file_names() {
    let dir = TempDir::new("fits-names");
    // cfitsio's extended syntax would read these characters as filters.
    let path = dir.path("odd[1]+(x) !name.fits");
    let a = Array2::from_elem((3, 3), 1.0f32).into_dyn();
    let b = Array2::from_shape_fn((2, 5), |(y, x)| (y * 5 + x) as f32).into_dyn();
    io::write_array(&path, a.view(), None).expect("first write");
    io::write_array(&path, b.view(), None).expect("overwrite");
    assert_eq!(io::read_array(&path).expect("read"), b);
    assert_eq!(dir.entries(), vec!["odd[1]+(x) !name.fits".to_string()]);
}

#[test]
fn fits_concurrent_round_trips() {
    let dir = TempDir::new("fits-threads");
    std::thread::scope(|s| {
        for t in 0..6 {
            let path = dir.path(&format!("t{t}.fits"));
            s.spawn(move || {
                for round in 0..5 {
                    let m = Array2::from_shape_fn((16, 9 + t), |(y, x)| {
                        (t * 1000 + round * 100 + y * 9 + x) as f32
                    })
                    .into_dyn();
                    io::write_array(&path, m.view(), None).expect("write");
                    assert_eq!(io::read_array(&path).expect("read"), m);
                }
            });
        }
    });
}

#[test]
fn wcs_round_trip() {
    let dir = TempDir::new("wcs");
    let grid = Grid::new(36, 24, 0.29).expect("grid");
    let mut wcs = Wcs::centred(&grid, 150.116_102_5, 2.242_177_3, false);
    wcs.bunit = Some("convergence 'kappa'".into());
    assert_eq!(wcs.crpix, [18.5, 12.5]);
    assert!(wcs.cdelt[0] < 0.0 && wcs.cdelt[1] > 0.0);
    let map = Array2::from_shape_fn((24, 36), |(y, x)| (y as f32) - 0.5 * x as f32).into_dyn();
    let path = dir.path("with_wcs.fits");
    io::write_array(&path, map.view(), Some(&wcs)).expect("write");
    assert_eq!(
        io::fits::read_wcs(&path).expect("read wcs"),
        Some(wcs.clone())
    );
    assert_eq!(io::read_array(&path).expect("data"), map);

    // The keys are the standard ones, readable by any FITS tool.
    let text = String::from_utf8_lossy(&std::fs::read(&path).expect("bytes")[..2880]).into_owned();
    for key in [
        "CTYPE1  = 'RA---TAN'",
        "CTYPE2  = 'DEC--TAN'",
        "CUNIT1  = 'deg",
        "CUNIT2  = 'deg",
    ] {
        assert!(text.contains(key), "missing {key}");
    }
    for key in [
        "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "BUNIT",
    ] {
        assert!(text.contains(&format!("{key:<8}= ")), "missing {key}");
    }

    // RA increasing with x flips CDELT1; no BUNIT reads back as None.
    let east = Wcs::centred(&grid, 10.0, -45.0, true);
    io::write_array(&path, map.view(), Some(&east)).expect("rewrite");
    let back = io::fits::read_wcs(&path).expect("read").expect("some");
    assert_eq!(back, east);
    assert!(back.cdelt[0] > 0.0 && back.bunit.is_none());

    // No WCS written => None.
    io::write_array(&path, map.view(), None).expect("plain");
    assert_eq!(io::fits::read_wcs(&path).expect("read"), None);

    // A non-finite WCS is refused.
    let bad = Wcs::centred(&grid, f64::NAN, 0.0, true);
    let err = io::write_array(&path, map.view(), Some(&bad)).expect_err("nan wcs");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");

    // Written by hand: a CD matrix, and an unsupported projection.
    let hand = |extra: &[(&str, &str)]| {
        let mut cards = vec![
            ("SIMPLE", "T"),
            ("BITPIX", "-32"),
            ("NAXIS", "2"),
            ("NAXIS1", "2"),
            ("NAXIS2", "2"),
        ];
        cards.extend_from_slice(extra);
        let mut bytes = header(&cards);
        bytes.extend(pad(vec![0; 16]));
        bytes
    };
    let cd = dir.path("cd.fits");
    std::fs::write(
        &cd,
        hand(&[
            ("CTYPE1", "'RA---TAN'"),
            ("CTYPE2", "'DEC--TAN'"),
            ("CRVAL1", "150.5"),
            ("CRVAL2", "2.25"),
            ("CRPIX1", "1.5"),
            ("CRPIX2", "1.5"),
            ("CD1_1", "-0.01"),
            ("CD2_2", "0.02"),
        ]),
    )
    .expect("write cd");
    let w = io::fits::read_wcs(&cd).expect("cd").expect("some");
    assert_eq!(w.crval, [150.5, 2.25]);
    assert_eq!(w.crpix, [1.5, 1.5]);
    assert_eq!(w.cdelt, [-0.01, 0.02]);
    let sin = dir.path("sin.fits");
    std::fs::write(
        &sin,
        hand(&[
            ("CTYPE1", "'RA---SIN'"),
            ("CTYPE2", "'DEC--SIN'"),
            ("CRVAL1", "1.0"),
        ]),
    )
    .expect("write sin");
    let err = io::fits::read_wcs(&sin).expect_err("SIN projection");
    assert!(matches!(err, Error::Format { .. }), "{err}");
}

// ---------------------------------------------------------------- FITS written by hand

#[test]
fn fits_integer_bitpix_and_scaling() {
    let dir = TempDir::new("bitpix");
    // 2 rows x 3 columns: NAXIS1 = 3.
    let raw: [i64; 6] = [0, 1, 2, -3, 100, -7];
    let write = |name: &str, bitpix: i64, scale: Option<(&str, &str)>, blank: Option<&str>| {
        let bp = bitpix.to_string();
        let mut cards = vec![
            ("SIMPLE", "T"),
            ("BITPIX", bp.as_str()),
            ("NAXIS", "2"),
            ("NAXIS1", "3"),
            ("NAXIS2", "2"),
        ];
        if let Some((bscale, bzero)) = scale {
            cards.push(("BSCALE", bscale));
            cards.push(("BZERO", bzero));
        }
        if let Some(b) = blank {
            cards.push(("BLANK", b));
        }
        let mut data = Vec::new();
        for &v in &raw {
            match bitpix {
                8 => data.push((v + 7) as u8),
                16 => data.extend_from_slice(&(v as i16).to_be_bytes()),
                32 => data.extend_from_slice(&((v * 1000) as i32).to_be_bytes()),
                -64 => data.extend_from_slice(&(v as f64 / 10.0).to_be_bytes()),
                _ => unreachable!(),
            }
        }
        let mut bytes = header(&cards);
        bytes.extend(pad(data));
        let path = dir.path(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };

    let p8 = write("u8.fits", 8, None, None);
    let a = io::read_array(&p8).expect("bitpix 8");
    assert_eq!(a.shape(), &[2, 3]);
    let want: Vec<f32> = raw.iter().map(|&v| (v + 7) as f32).collect();
    assert_eq!(a.iter().copied().collect::<Vec<_>>(), want);

    let p16 = write("i16.fits", 16, Some(("0.5", "10.0")), None);
    let a = io::read_map(&p16, Some([2, 3])).expect("bitpix 16 scaled");
    let want: Vec<f32> = raw.iter().map(|&v| 10.0 + 0.5 * v as f32).collect();
    assert_eq!(a.iter().copied().collect::<Vec<_>>(), want);
    assert_eq!(a[[1, 0]], 10.0 - 1.5, "row 1, column 0");

    let p32 = write("i32.fits", 32, Some(("0.001", "0.0")), None);
    let a = io::read_array_f64(&p32).expect("bitpix 32 scaled");
    for (got, &v) in a.iter().zip(&raw) {
        assert!((got - v as f64).abs() < 1e-12, "{got} vs {v}");
    }

    let p64 = write("f64.fits", -64, None, None);
    let a = io::read_array_f64(&p64).expect("bitpix -64");
    let want: Vec<f64> = raw.iter().map(|&v| v as f64 / 10.0).collect();
    assert_eq!(
        a.iter().copied().collect::<Vec<_>>(),
        want,
        "f8 read exactly"
    );
    let a32 = io::read_array(&p64).expect("bitpix -64 as f32");
    let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    assert_eq!(a32.iter().copied().collect::<Vec<_>>(), want32);

    // BLANK pixels (raw value 100) are undefined: NaN, and read_map refuses them.
    let pb = write("blank.fits", 16, None, Some("100"));
    let a = io::read_array(&pb).expect("read with blank");
    assert!(a[[1, 1]].is_nan());
    assert_eq!(a[[1, 2]], -7.0);
    match io::read_map(&pb, None) {
        Err(Error::NonFinite { index, .. }) => assert_eq!(index, 4),
        other => panic!("expected NonFinite, got {other:?}"),
    }
}

#[test]
fn fits_image_in_first_extension_and_gzip() {
    let dir = TempDir::new("ext");
    let mut bytes = header(&[
        ("SIMPLE", "T"),
        ("BITPIX", "8"),
        ("NAXIS", "0"),
        ("EXTEND", "T"),
    ]);
    bytes.extend(header(&[
        ("XTENSION", "'IMAGE   '"),
        ("BITPIX", "-32"),
        ("NAXIS", "2"),
        ("NAXIS1", "4"),
        ("NAXIS2", "3"),
        ("PCOUNT", "0"),
        ("GCOUNT", "1"),
        ("CTYPE1", "'RA---TAN'"),
        ("CTYPE2", "'DEC--TAN'"),
        ("CRVAL1", "12.0"),
        ("CRVAL2", "-3.0"),
        ("CRPIX1", "2.5"),
        ("CRPIX2", "2.0"),
        ("CDELT1", "-0.5"),
        ("CDELT2", "0.5"),
    ]));
    let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
    bytes.extend(pad(values.iter().flat_map(|v| v.to_be_bytes()).collect()));
    let path = dir.path("ext.fits");
    std::fs::write(&path, &bytes).expect("write");
    let a = io::read_array(&path).expect("read extension");
    assert_eq!(a.shape(), &[3, 4]);
    assert_eq!(a.iter().copied().collect::<Vec<_>>(), values);
    let w = io::fits::read_wcs(&path).expect("wcs").expect("some");
    assert_eq!(w.crval, [12.0, -3.0]);
    assert_eq!(w.crpix, [2.5, 2.0]);
    assert_eq!(w.cdelt, [-0.5, 0.5]);

    // The same file gzip-compressed reads the same.
    let gz = dir.path("ext.fits.gz");
    std::fs::write(&gz, gzip_stored(&bytes)).expect("write gz");
    assert_eq!(io::read_array(&gz).expect("read gz"), a);
    let err = io::write_array(&gz, a.view(), None).expect_err("writing .gz");
    assert!(matches!(err, Error::UnsupportedFormat { .. }), "{err}");

    // Only an empty primary: no image data.
    let empty = dir.path("empty.fits");
    std::fs::write(
        &empty,
        header(&[("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "0")]),
    )
    .expect("write");
    match io::read_array(&empty) {
        Err(Error::Format { path, reason }) => {
            assert_eq!(path, empty);
            assert!(reason.contains("no HDU holds image data"), "{reason}");
        }
        other => panic!("expected Format, got {other:?}"),
    }

    // A header promising far more data than the file holds.
    let huge = dir.path("truncated.fits");
    let mut t = header(&[
        ("SIMPLE", "T"),
        ("BITPIX", "-32"),
        ("NAXIS", "2"),
        ("NAXIS1", "100000"),
        ("NAXIS2", "100000"),
    ]);
    t.extend(pad(vec![0; 8]));
    std::fs::write(&huge, t).expect("write");
    let err = io::read_array(&huge).expect_err("truncated");
    assert!(matches!(err, Error::Format { .. }), "{err}");
}

// ---------------------------------------------------------------- npy

#[test]
fn npy_round_trip_2d_and_3d() {
    let dir = TempDir::new("npy");
    let map = ArrayD::from_shape_vec(IxDyn(&[6, 5]), awkward_values(30)).expect("shape");
    let p2 = dir.path("map.npy");
    io::write_array(&p2, map.view(), None).expect("write 2-D");
    assert_bitwise_eq(&map, &io::read_array(&p2).expect("read 2-D"));
    assert_bitwise_eq(&map, &io::npy::read_f32(&p2).expect("npy::read_f32"));
    // Our writer produces '<f4' in C order.
    let head = String::from_utf8_lossy(&std::fs::read(&p2).expect("bytes")[..128]).into_owned();
    assert!(
        head.contains("'descr': '<f4'") && head.contains("'fortran_order': False"),
        "{head}"
    );

    let cube = ArrayD::from_shape_vec(IxDyn(&[2, 3, 4]), awkward_values(24)).expect("shape");
    let p3 = dir.path("cube.NPY");
    let grid = Grid::square(4, 1.0).expect("grid");
    let wcs = Wcs::centred(&grid, 0.0, 0.0, true); // ignored for npy
    io::write_array(&p3, cube.view(), Some(&wcs)).expect("write 3-D");
    assert_bitwise_eq(&cube, &io::read_array(&p3).expect("read 3-D"));

    let finite = Array3::from_shape_fn((2, 3, 4), |(b, y, x)| (b * 100 + y * 10 + x) as f32);
    io::write_array(&p3, finite.view().into_dyn(), None).expect("overwrite");
    assert_eq!(io::read_stack(&p3).expect("stack"), finite);
    assert_eq!(
        dir.entries(),
        vec!["cube.NPY".to_string(), "map.npy".to_string()]
    );
}

#[test]
fn npy_dtypes_endianness_and_fortran_order() {
    let dir = TempDir::new("npy-dtypes");
    let values = [0.1f64, -2.5, 3.0e-300, 7.0, 1.0 / 3.0, -0.0];
    let write = |name: &str, bytes: Vec<u8>| {
        let p = dir.path(name);
        std::fs::write(&p, bytes).expect("write");
        p
    };

    // '<f8' in C order, read as f64 exactly and as f32 rounded.
    let le: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let p = write("f8.npy", npy_bytes("<f8", false, &[2, 3], &le));
    let a = io::read_array_f64(&p).expect("f8");
    assert_eq!(a.shape(), &[2, 3]);
    for (got, want) in a.iter().zip(&values) {
        assert_eq!(got.to_bits(), want.to_bits());
    }
    let a32 = io::npy::read_f32(&p).expect("f8 as f32");
    for (got, want) in a32.iter().zip(&values) {
        assert_eq!(got.to_bits(), (*want as f32).to_bits());
    }

    // '>f8' big-endian.
    let be: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    let p = write("f8be.npy", npy_bytes(">f8", false, &[6], &be));
    assert_eq!(
        io::read_column_f64(&p).expect("f8 big-endian"),
        values.to_vec()
    );

    // '>f4' big-endian.
    let v32: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    let be32: Vec<u8> = v32.iter().flat_map(|v| v.to_be_bytes()).collect();
    let p = write("f4be.npy", npy_bytes(">f4", false, &[3, 2], &be32));
    let a = io::read_array(&p).expect("f4 big-endian");
    assert_eq!(a.shape(), &[3, 2]);
    assert_eq!(a.iter().copied().collect::<Vec<_>>(), v32);

    // Fortran order: element [i][j] of a (2, 3) array is stored at j * 2 + i.
    let c_order = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // [[1, 2, 3], [4, 5, 6]]
    let f_order = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0];
    let fb: Vec<u8> = f_order.iter().flat_map(|v| v.to_le_bytes()).collect();
    let p = write("fortran.npy", npy_bytes("<f4", true, &[2, 3], &fb));
    let a = io::read_map(&p, Some([2, 3])).expect("fortran");
    assert_eq!(
        a,
        Array2::from_shape_vec((2, 3), c_order.to_vec()).expect("shape")
    );
    assert!(a.is_standard_layout());
    let a64 = io::npy::read_f64(&p).expect("fortran f64");
    assert_eq!(
        a64.iter().copied().collect::<Vec<_>>(),
        c_order.map(f64::from).to_vec()
    );

    // Integers and booleans (a mask).
    let p = write("u1.npy", npy_bytes("|u1", false, &[2, 2], &[0, 1, 255, 7]));
    assert_eq!(
        io::read_array(&p)
            .expect("u1")
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![0.0, 1.0, 255.0, 7.0]
    );
    let i2: Vec<u8> = [-3i16, 300, 0, -32768]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let p = write("i2.npy", npy_bytes("<i2", false, &[4], &i2));
    assert_eq!(
        io::read_column_f64(&p).expect("i2"),
        vec![-3.0, 300.0, 0.0, -32768.0]
    );
    let i8: Vec<u8> = [1i64 << 40, -5]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let p = write("i8.npy", npy_bytes(">i8", false, &[2], &i8));
    assert_eq!(
        io::read_column_f64(&p).expect("i8"),
        vec![(1i64 << 40) as f64, -5.0]
    );
    let p = write("mask.npy", npy_bytes("|b1", false, &[1, 3], &[1, 0, 1]));
    assert_eq!(
        io::read_map(&p, None)
            .expect("bool")
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![1.0, 0.0, 1.0]
    );
}

#[test]
fn npy_malformed_files() {
    let dir = TempDir::new("npy-bad");
    let data: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.npy",
            npy_bytes("<f4", false, &[2, 3], &data[..20]),
            "bytes of data",
        ),
        (
            "extra.npy",
            npy_bytes("<f4", false, &[5], &data),
            "bytes of data",
        ),
        (
            "huge.npy",
            npy_bytes("<f4", false, &[1 << 40, 1 << 20], &data),
            "bytes of data",
        ),
        (
            "complex.npy",
            npy_bytes("<c8", false, &[3], &data),
            "unsupported dtype",
        ),
        (
            "half.npy",
            npy_bytes("<f2", false, &[12], &data),
            "unsupported dtype",
        ),
        ("empty.npy", npy_bytes("<f4", false, &[0, 3], &[]), "empty"),
        (
            "text.npy",
            b"hello, this is not numpy\n".to_vec(),
            "not a valid .npy",
        ),
        ("short.npy", b"\x93NU".to_vec(), "not a valid .npy"),
    ];
    for (name, bytes, expect) in cases {
        let p = dir.path(name);
        std::fs::write(&p, bytes).expect("write");
        match io::read_array(&p) {
            Err(Error::Format { path, reason }) => {
                assert_eq!(path, p);
                assert!(reason.contains(expect), "{name}: {reason}");
            }
            other => panic!("{name}: expected Format, got {other:?}"),
        }
    }
    // Structured dtype.
    let p = dir.path("structured.npy");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let mut dict = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }".to_string();
    while !(10 + dict.len() + 1).is_multiple_of(64) {
        dict.push(' ');
    }
    dict.push('\n');
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.extend_from_slice(&data);
    std::fs::write(&p, bytes).expect("write");
    let err = io::read_array(&p).expect_err("structured");
    assert!(matches!(err, Error::Format { .. }), "{err}");
}

// ---------------------------------------------------------------- errors

#[test]
fn missing_file_is_io_error_with_path() {
    let dir = TempDir::new("missing");
    for name in ["nothing.fits", "nothing.npy", "nothing.fits.gz"] {
        let p = dir.path(name);
        match io::read_array(&p) {
            Err(Error::Io { path, source }) => {
                assert_eq!(path, p);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{name}: expected Io, got {other:?}"),
        }
        let err = io::read_map(&p, None).expect_err("map");
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert!(err.to_string().contains(name), "{err}");
    }
    let err = io::fits::read_wcs(&dir.path("nothing.fits")).expect_err("wcs");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let err = io::read_column_f64(&dir.path("nothing.npy")).expect_err("column");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    // A folder is not a file.
    let folder = dir.path("folder.fits");
    std::fs::create_dir(&folder).expect("mkdir");
    let err = io::read_array(&folder).expect_err("folder");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    // Writing into a folder that does not exist.
    let m = Array2::<f32>::zeros((2, 2)).into_dyn();
    for name in ["no/such/dir/x.fits", "no/such/dir/x.npy"] {
        let err = io::write_array(&dir.path(name), m.view(), None).expect_err("no folder");
        assert!(matches!(err, Error::Io { .. }), "{name}: {err}");
    }
}

#[test]
fn unsupported_extensions() {
    let dir = TempDir::new("ext-bad");
    let m = Array2::<f32>::zeros((2, 2)).into_dyn();
    for name in ["map.txt", "map", "map.npz", "map.npy.gz", "map.fits.bz2"] {
        let p = dir.path(name);
        std::fs::write(&p, b"SIMPLE").expect("write");
        let err = io::read_array(&p).expect_err("read");
        assert!(
            matches!(err, Error::UnsupportedFormat { ref path } if *path == p),
            "{name}: {err}"
        );
        let err = io::write_array(&p, m.view(), None).expect_err("write");
        assert!(
            matches!(err, Error::UnsupportedFormat { .. }),
            "{name}: {err}"
        );
    }
}

#[test]
fn garbage_fits_is_format_error_with_cfitsio_message() {
    let dir = TempDir::new("garbage");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "text.fits",
            b"this is certainly not a FITS file\n".repeat(200),
        ),
        ("zeros.fit", vec![0; 5760]),
        ("empty.fts", Vec::new()),
        ("bad_bitpix.fits", {
            let mut b = header(&[
                ("SIMPLE", "T"),
                ("BITPIX", "12"),
                ("NAXIS", "1"),
                ("NAXIS1", "4"),
            ]);
            b.extend(pad(vec![0; 8]));
            b
        }),
        (
            "not_gzip.fits.gz",
            b"\x1f\x8bnot really gzip data".repeat(10),
        ),
    ];
    for (name, bytes) in cases {
        let p = dir.path(name);
        std::fs::write(&p, bytes).expect("write");
        match io::read_array(&p) {
            Err(Error::Format { path, reason }) => {
                assert_eq!(path, p, "{name}");
                assert!(reason.contains("cfitsio error"), "{name}: {reason}");
            }
            other => panic!("{name}: expected Format, got {other:?}"),
        }
        let err = io::fits::read_wcs(&p).expect_err("wcs of garbage");
        assert!(matches!(err, Error::Format { .. }), "{name}: {err}");
    }
}

#[test]
fn shape_nan_and_negative_checks() {
    let dir = TempDir::new("checks");
    let map = Array2::from_shape_fn((4, 6), |(y, x)| (y * 6 + x) as f32 * 0.1);
    for ext in ["fits", "npy"] {
        let p = dir.path(&format!("map.{ext}"));
        io::write_array(&p, map.view().into_dyn(), None).expect("write");
        assert_eq!(io::read_map(&p, Some([4, 6])).expect("right shape"), map);
        assert_eq!(io::read_map(&p, None).expect("any shape"), map);
        match io::read_map(&p, Some([6, 4])) {
            Err(Error::ShapeMismatch { expected, got, .. }) => {
                assert_eq!(expected, "[6, 4]");
                assert_eq!(got, "[4, 6]");
            }
            other => panic!("expected ShapeMismatch, got {other:?}"),
        }
        let err = io::read_nonnegative_map(&p, Some([4, 5])).expect_err("wrong shape");
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");

        // 3-D data is not a map; 1-D data is neither a map nor a stack; 2-D is not a column.
        let cube = dir.path(&format!("cube.{ext}"));
        io::write_array(
            &cube,
            Array3::<f32>::zeros((2, 4, 6)).view().into_dyn(),
            None,
        )
        .expect("cube");
        let err = io::read_map(&cube, None).expect_err("cube as map");
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
        let line = dir.path(&format!("line.{ext}"));
        io::write_array(
            &line,
            ndarray::arr1(&[1.0f32, 2.0, 3.0]).view().into_dyn(),
            None,
        )
        .expect("line");
        let err = io::read_stack(&line).expect_err("line as stack");
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
        assert_eq!(
            io::read_column_f64(&line).expect("column"),
            vec![1.0, 2.0, 3.0]
        );
        let err = io::read_column_f64(&p).expect_err("map as column");
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");

        // NaN and infinity.
        for (bad, at) in [(f32::NAN, [2, 3]), (f32::NEG_INFINITY, [0, 1])] {
            let mut m = map.clone();
            m[at] = bad;
            io::write_array(&p, m.view().into_dyn(), None).expect("write bad");
            let want = at[0] * 6 + at[1];
            for result in [
                io::read_map(&p, None).map(|_| ()),
                io::read_nonnegative_map(&p, None).map(|_| ()),
                io::read_stack(&p).map(|_| ()),
            ] {
                match result {
                    Err(Error::NonFinite { index, .. }) => assert_eq!(index, want),
                    other => panic!("expected NonFinite, got {other:?}"),
                }
            }
            // read_array itself does not judge values.
            assert!(!io::read_array(&p).expect("raw")[[at[0], at[1]]].is_finite());
        }

        // Negative variance.
        let mut m = map.clone();
        m[[3, 2]] = -0.25;
        io::write_array(&p, m.view().into_dyn(), None).expect("write negative");
        match io::read_nonnegative_map(&p, Some([4, 6])) {
            Err(Error::NegativeVariance { index, value, .. }) => {
                assert_eq!(index, 3 * 6 + 2);
                assert_eq!(value, -0.25);
            }
            other => panic!("expected NegativeVariance, got {other:?}"),
        }
        assert!(
            io::read_map(&p, None).is_ok(),
            "a plain map may be negative"
        );
        let mut m = map.clone();
        m[[0, 0]] = -0.0;
        io::write_array(&p, m.view().into_dyn(), None).expect("write -0");
        assert!(
            io::read_nonnegative_map(&p, None).is_ok(),
            "-0 is not negative"
        );
    }
    // Empty arrays cannot be written.
    let empty = ArrayD::<f32>::zeros(IxDyn(&[0, 3]));
    for name in ["e.fits", "e.npy"] {
        let err = io::write_array(&dir.path(name), empty.view(), None).expect_err("empty");
        assert!(
            matches!(err, Error::InvalidArgument { .. }),
            "{name}: {err}"
        );
    }
}

// ---------------------------------------------------------------- real data

/// Tests on ../shared/data: scripts/test.sh runs them when the folder exists.
mod needs_data {
    use super::*;

    #[test]
    #[ignore = "needs ../shared/data: scripts/test.sh runs it when present"]
    fn real_cosmos_maps() {
        let data = common::shared_data("real_cosmos_maps");
        let cosmos = data.join("cosmos");

        let e1 = io::read_map(
            &cosmos.join("cosmos_full_e1_0.29arcmin360.fits"),
            Some([360, 360]),
        )
        .expect("e1");
        assert_eq!(e1.iter().filter(|v| **v != 0.0).count(), 69_191);
        let sum: f64 = e1.iter().map(|&v| f64::from(v)).sum();
        assert!((sum - 48.856_782_529).abs() < 1e-6, "sum e1 = {sum}");
        assert_eq!(e1[[180, 180]], 0.121_119_03);
        assert_eq!(e1[[100, 200]], 0.264_660_42);

        let mask_path = cosmos.join("cosmos_full_mask_0.29arcmin360.fits");
        let mask = io::read_map(&mask_path, Some([360, 360])).expect("mask");
        assert_eq!(mask.iter().filter(|v| **v != 0.0).count(), 69_191);
        assert!(mask.iter().all(|&v| v == 0.0 || v == 1.0));
        assert_eq!(io::fits::read_wcs(&mask_path).expect("wcs"), None);

        // std1 is f8 on disk: exact through read_array_f64.
        let std_path = cosmos.join("std1.fits");
        let std1 = io::read_nonnegative_map(&std_path, Some([360, 360])).expect("std1");
        assert_eq!(std1.iter().filter(|v| **v > 0.0).count(), 69_191);
        let std64 = io::read_array_f64(&std_path).expect("std1 f64");
        assert_eq!(std64[[100, 200]], 0.115_340_147_645_645_35);
        assert_eq!(
            std64.iter().copied().fold(0.0, f64::max),
            0.305_161_346_851_849_65
        );
        assert_eq!(std1[[100, 200]], 0.115_340_147_645_645_35_f64 as f32);
        // Zeros of std1 are exactly the empty pixels of the mask.
        assert!(std1
            .iter()
            .zip(mask.iter())
            .all(|(s, m)| (*s > 0.0) == (*m != 0.0)));

        // A 3-D FITS cube: NAXIS1 = 2 is the last axis.
        let e = io::read_stack(&data.join("ktng/ktng_cosmos_e360.fits")).expect("e360");
        assert_eq!(e.shape(), &[360, 360, 2]);
    }

    #[test]
    #[ignore = "needs ../shared/data: scripts/test.sh runs it when present"]
    fn real_catalogue_column() {
        let data = common::shared_data("real_catalogue_column");
        let ra = io::read_column_f64(&data.join("cosmos/ra.fits")).expect("ra");
        assert_eq!(ra.len(), 417_117);
        assert_eq!(ra[0], 149.495_965_1);
        assert_eq!(ra[ra.len() - 1], 150.736_264_9);
        let min = ra.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ra.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!((min, max), (149.431_739_6, 150.794_629));
        let mut sorted = ra.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(sorted[sorted.len() / 2], 150.116_102_5, "median RA");
        let dec = io::read_column_f64(&data.join("cosmos/dec.fits")).expect("dec");
        assert_eq!(dec.len(), ra.len());
    }

    #[test]
    #[ignore = "needs ../shared/data: scripts/test.sh runs it when present"]
    fn real_npy_files() {
        let data = common::shared_data("real_npy_files");
        // ktng_PS_theory.npy is '<f8' (2, 50): ell from 10 to 1e5, then C_ell.
        let ps_path = data.join("ktng/ktng_PS_theory.npy");
        let ps = io::read_array_f64(&ps_path).expect("ps");
        assert_eq!(ps.shape(), &[2, 50]);
        assert_eq!(ps[[0, 0]], 10.0);
        assert!(
            (ps[[0, 49]] / 1.0e5 - 1.0).abs() < 1e-12,
            "last ell {}",
            ps[[0, 49]]
        );
        let ratio = ps[[0, 1]] / ps[[0, 0]];
        assert!(
            (ratio - 10f64.powf(4.0 / 49.0)).abs() < 1e-9,
            "log spacing {ratio}"
        );
        assert_eq!(ps[[1, 0]], 4.277_142_551_245_561e-8);
        assert_eq!(ps[[1, 10]], 1.631_268_276_014_452_6e-8);
        let ps32 = io::read_map(&ps_path, Some([2, 50])).expect("ps as f32");
        assert_eq!(ps32[[1, 10]], 1.631_268_276_014_452_6e-8_f64 as f32);

        let kappa = io::read_map(
            &data.join("kappa_maps/ktng_kappa_512.npy"),
            Some([512, 512]),
        )
        .expect("kappa");
        let n = kappa.len() as f64;
        let mean = kappa.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = kappa
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!((mean - 0.003_177_195_3).abs() < 1e-8, "mean {mean}");
        assert!(
            (var.sqrt() - 0.026_017_593).abs() < 1e-8,
            "std {}",
            var.sqrt()
        );
        assert_eq!(kappa[[0, 0]], 0.001_321_795);
        assert_eq!(kappa[[10, 20]], -0.019_349_199);
    }

    #[test]
    #[ignore = "needs ../shared/data: scripts/test.sh runs it when present"]
    fn real_data_survives_a_round_trip() {
        let data = common::shared_data("real_data_survives_a_round_trip");
        let dir = TempDir::new("real-round-trip");
        let e1 =
            io::read_array(&data.join("cosmos/cosmos_full_e1_0.29arcmin360.fits")).expect("e1");
        let grid = Grid::square(360, 0.29).expect("grid");
        let wcs = Wcs::centred(&grid, 150.116_102_5, 2.24, true);
        for name in ["e1.fits", "e1.npy"] {
            let p = dir.path(name);
            io::write_array(&p, e1.view(), Some(&wcs)).expect("write");
            assert_bitwise_eq(&e1, &io::read_array(&p).expect("read"));
        }
        assert_eq!(
            io::fits::read_wcs(&dir.path("e1.fits")).expect("wcs"),
            Some(wcs)
        );
    }
}

#[test]
fn error_messages_name_the_file() {
    let dir = TempDir::new("messages");
    let p = dir.path("garbage.fits");
    std::fs::write(&p, b"garbage").expect("write");
    let msg = io::read_array(&p).expect_err("garbage").to_string();
    assert!(msg.contains("garbage.fits"), "{msg}");
}

#[test]
fn f8_beyond_f32_range_becomes_infinite() {
    let dir = TempDir::new("overflow");
    let values = [1.0e300f64, -1.0e300, 0.5];
    let le: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let npy = dir.path("big.npy");
    std::fs::write(&npy, npy_bytes("<f8", false, &[1, 3], &le)).expect("write npy");
    let mut fits = header(&[
        ("SIMPLE", "T"),
        ("BITPIX", "-64"),
        ("NAXIS", "2"),
        ("NAXIS1", "3"),
        ("NAXIS2", "1"),
    ]);
    fits.extend(pad(values.iter().flat_map(|v| v.to_be_bytes()).collect()));
    let fpath = dir.path("big.fits");
    std::fs::write(&fpath, fits).expect("write fits");
    for p in [npy, fpath] {
        let a = io::read_array(&p).expect("read f32");
        assert_eq!(
            a.iter().copied().collect::<Vec<_>>(),
            vec![f32::INFINITY, f32::NEG_INFINITY, 0.5]
        );
        assert_eq!(
            io::read_array_f64(&p)
                .expect("read f64")
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            values.to_vec()
        );
        match io::read_map(&p, None) {
            Err(Error::NonFinite { index, .. }) => assert_eq!(index, 0),
            other => panic!("expected NonFinite, got {other:?}"),
        }
    }
}
