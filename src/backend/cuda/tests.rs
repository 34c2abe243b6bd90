//! Tests that need no GPU: source assembly, PTX versions, the cache key and
//! cache files, launch shapes, and opening a device where CUDA is missing.
//! One test, `#[ignore]`d because it needs libnvrtc on LD_LIBRARY_PATH (no
//! GPU), compiles every kernel file through [`module::compile`]:
//! scripts/test.sh runs it with the NVRTC of the pip wheel
//! (`cargo test --release --lib nvrtc_compiles_every_kernel_file -- --ignored`).

use std::collections::HashMap;

use super::module::{
    assemble_source, cache_key, compile, kernel_names, max_ptx_for_driver, parse_ptx_version,
    programs, source, uses_of, Toolchain, SOURCES,
};
use super::*;
use crate::backend::Backend;

/// The `#line 1 "<name>"` markers of an assembled program, in order.
fn parts(assembled: &str) -> Vec<&str> {
    assembled
        .lines()
        .filter_map(|l| l.strip_prefix("#line 1 \""))
        .filter_map(|l| l.strip_suffix('"'))
        .collect()
}

#[test]
fn every_kernel_file_assembles_with_its_dependencies_once_and_first() {
    let on_disk: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".cu") || n.ends_with(".cuh"))
                .collect()
        })
        .unwrap_or_default();
    for f in &on_disk {
        assert!(
            source(f).is_some(),
            "kernels/{f} is not embedded in SOURCES"
        );
    }
    assert_eq!(on_disk.len(), SOURCES.len());
    for file in programs() {
        let text = assemble_source(file, source).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!text.contains("#include"), "{file}");
        let order = parts(&text);
        assert_eq!(order.last(), Some(&file), "{file}: the file comes last");
        for (i, name) in order.iter().enumerate() {
            assert_eq!(
                order.iter().filter(|n| *n == name).count(),
                1,
                "{file}: {name} twice"
            );
            for dep in uses_of(source(name).unwrap_or_default()) {
                let at = order.iter().position(|n| *n == dep);
                assert!(at.is_some_and(|a| a < i), "{file}: {dep} not before {name}");
            }
        }
        assert!(order.contains(&"common.cuh"), "{file}");
    }
    let philox = assemble_source("philox.cu", source).unwrap_or_default();
    assert_eq!(parts(&philox), ["common.cuh", "philox.cuh", "philox.cu"]);
}

#[test]
fn assembly_rejects_missing_circular_and_included_files() {
    let files: HashMap<&str, &str> = [
        ("a.cu", "// uses: b.cuh, c.cuh\nA"),
        ("b.cuh", "// uses: c.cuh\nB"),
        ("c.cuh", "C"),
        ("loop.cu", "// uses: x.cuh"),
        ("x.cuh", "// uses: y.cuh"),
        ("y.cuh", "// uses: x.cuh"),
        ("missing.cu", "// uses: nope.cuh"),
        ("notcuh.cu", "// uses: a.cu"),
        ("inc.cu", "// uses: c.cuh\n  #  include <cuda.h>"),
    ]
    .into_iter()
    .collect();
    let lookup = |n: &str| -> Option<&'static str> { files.get(n).copied() };
    let a = assemble_source("a.cu", lookup).unwrap_or_default();
    assert_eq!(parts(&a), ["c.cuh", "b.cuh", "a.cu"]);
    assert!(a.starts_with("#line 1 \"c.cuh\"\nC\n#line 1 \"b.cuh\"\n"));
    let err = |f: &'static str| assemble_source(f, lookup).err().unwrap_or_default();
    assert!(err("loop.cu").contains("circular"));
    assert!(err("missing.cu").contains("nope.cuh"));
    assert!(err("notcuh.cu").contains("names no kernels/*.cuh"));
    assert!(err("inc.cu").contains("inc.cu:2: #include"));
    assert!(err("absent.cu").contains("absent.cu"));
}

#[test]
fn kernel_names_are_found_listed_and_launched() {
    let readme = include_str!("../../../kernels/README.md");
    let mut all = Vec::new();
    for file in programs() {
        let names = kernel_names(source(file).unwrap_or_default());
        assert!(!names.is_empty(), "{file}");
        for k in &names {
            assert!(
                readme.contains(&format!("`{k}`")),
                "{k} not in kernels/README.md"
            );
        }
        all.extend(names);
    }
    assert_eq!(all.len(), 40);
    assert!(all.contains(&"chain_norms") && all.contains(&"cg_update_direction"));
    let lb = "extern \"C\" __global__ void __launch_bounds__(256)\n  foo_bar(int x)";
    assert_eq!(kernel_names(lb), ["foo_bar"]);
    // Every kernel the backend launches exists.
    let ops = include_str!("ops.rs");
    let launched: Vec<&str> = ops
        .split("launch!(")
        .skip(1)
        .filter_map(|s| s.split('"').nth(1))
        .collect();
    assert!(launched.len() > 40);
    for k in &launched {
        assert!(all.contains(k), "ops.rs launches unknown kernel {k}");
    }
    // ...and every kernel is launched: no dead kernels
    for k in &all {
        assert!(launched.contains(k), "kernel {k} is never launched");
    }
    // ...by a Backend method that something outside tests calls
    let dead = uncalled(&backend_methods(), &library_sources());
    for f in rust_fns(&strip_comments(ops)) {
        for k in f
            .body
            .split("launch!(")
            .skip(1)
            .filter_map(|s| s.split('"').nth(1))
        {
            assert!(
                !dead.contains(&f.name),
                "kernel {k} is launched only by Backend::{}, which nothing outside tests calls",
                f.name
            );
        }
    }
}

// ---------------------------------------------------------------- callers outside tests
//
// A Backend operation (and the kernel it launches) must have a caller in the
// library or the binaries: `src/` outside `src/backend/` and outside
// `#[cfg(test)]` items (inline `mod tests { .. }` and out-of-line
// `mod tests;` files). tests/ (the parity harness) does not count. A call is
// the text `.name(`, `.name::<` or `::name(` with comments stripped; the scan
// does not resolve types, so a method of another type with the same name
// (`Philox::fill_normal`) counts as a caller.

/// `text` without its `#[cfg(test)]` items, and the names of the modules it
/// declares out of line under `#[cfg(test)]` (`mod tests;`).
fn without_test_items(text: &str) -> (String, Vec<String>) {
    let text = strip_comments(text);
    let (mut out, mut files, mut from) = (String::new(), Vec::new(), 0);
    while let Some(at) = text[from..].find("#[cfg(test)]").map(|a| from + a) {
        out.push_str(&text[from..at]);
        let item = at + "#[cfg(test)]".len();
        let d = depths(&text);
        let end = (item..text.len())
            .find(|&i| d[i] == d[at] && matches!(text.as_bytes()[i], b'{' | b';'));
        let Some(end) = end else {
            from = text.len();
            break;
        };
        if text.as_bytes()[end] == b'{' {
            from = close_of(&text, end) + 1;
        } else {
            if let Some(m) = text[item..end].trim().strip_prefix("mod ") {
                files.push(m.trim().to_string());
            }
            from = end + 1;
        }
    }
    out.push_str(&text[from..]);
    (out, files)
}

/// The Backend methods in `methods` that no text of `files` (`(path, text)`,
/// test code already removed) calls.
fn uncalled<'a>(methods: &[&'a str], files: &[(String, String)]) -> Vec<&'a str> {
    (methods.iter().copied())
        .filter(|m| {
            let pats = [format!(".{m}("), format!(".{m}::<"), format!("::{m}(")];
            !files
                .iter()
                .any(|(_, t)| pats.iter().any(|p| t.contains(p.as_str())))
        })
        .collect()
}

/// Every `.rs` file under `dir` (recursively) but those under `skip`, as
/// `(path, text)`, with its `#[cfg(test)]` items and out-of-line test modules
/// left out.
fn non_test_sources(dir: &std::path::Path, skip: &std::path::Path) -> Vec<(String, String)> {
    let mut paths = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap_or_else(|e| panic!("{e}")).path();
            if p.starts_with(skip) {
                continue;
            } else if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                paths.push(p);
            }
        }
    }
    let (mut files, mut tests) = (Vec::new(), Vec::new());
    for p in paths {
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let (code, test_mods) = without_test_items(&text);
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let parent = p.parent().unwrap_or(dir);
        let base = match stem {
            "mod" | "lib" | "main" => parent.to_path_buf(),
            _ => parent.join(stem),
        };
        for m in test_mods {
            tests.push(base.join(format!("{m}.rs")));
            tests.push(base.join(&m).join("mod.rs"));
        }
        files.push((p, code));
    }
    files
        .into_iter()
        .filter(|(p, _)| !tests.contains(p))
        .map(|(p, t)| (p.display().to_string(), t))
        .collect()
}

/// The methods of the `Backend` trait (src/backend/mod.rs).
fn backend_methods() -> Vec<&'static str> {
    let src = include_str!("../mod.rs");
    let at = src.find("pub trait Backend").expect("the Backend trait");
    let open = at + src[at..].find('{').expect("its body");
    let body = &src[open..=close_of(src, open)];
    rust_fns(body).iter().map(|f| f.name).collect()
}

/// The library and binary sources that may call the backend: `src/` less
/// `src/backend/` and test code.
fn library_sources() -> Vec<(String, String)> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    non_test_sources(&src, &src.join("backend"))
}

#[test]
fn every_backend_method_and_kernel_has_a_caller_outside_tests() {
    let files = library_sources();
    assert!(files.len() > 20, "{} files", files.len());
    assert!(files.iter().all(|(p, _)| !p.contains("backend")));
    assert!(files.iter().any(|(p, _)| p.ends_with("bench_cmd.rs")));
    let methods = backend_methods();
    assert!(methods.len() > 40 && methods.contains(&"fill_normal"));
    let dead = uncalled(&methods, &files);
    // the kernels those methods launch
    let ops = strip_comments(include_str!("ops.rs"));
    let dead_kernels: Vec<String> = rust_fns(&ops)
        .iter()
        .filter(|f| dead.contains(&f.name))
        .flat_map(|f| {
            f.body
                .split("launch!(")
                .skip(1)
                .filter_map(|s| s.split('"').nth(1))
        })
        .map(|k| format!("`{k}`"))
        .collect();
    assert!(
        dead.is_empty(),
        "Backend methods called only from tests (or not at all): {dead:?}; kernels kept alive \
         only by them: {}",
        dead_kernels.join(", ")
    );
}

/// The `shape::name(args)` call (whitespace removed) of the first statement
/// of each method of the `impl Backend for` block of `text`.
fn first_shape_checks(text: &str) -> HashMap<&str, String> {
    let text = text
        .split("impl Backend for")
        .nth(1)
        .expect("a Backend impl");
    let mut checks = HashMap::new();
    for f in rust_fns(text) {
        let d = depths(f.body);
        let end = (1..f.body.len())
            .find(|&i| f.body.as_bytes()[i] == b';' && d[i] == d[0] + 1)
            .unwrap_or(0);
        let stmt = &f.body[..end];
        let Some(at) = stmt.find("shape::") else {
            continue;
        };
        let open = at + stmt[at..].find('(').unwrap_or(0);
        let call: String = stmt[at..=close_of(stmt, open)]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        // rustfmt's trailing comma of a call split over lines
        checks.insert(f.name, call.replace(",)", ")"));
    }
    checks
}

#[test]
fn both_backends_check_shapes_first_with_the_same_call() {
    let cpu = strip_comments(include_str!("../cpu.rs"));
    let ops = strip_comments(include_str!("ops.rs"));
    let (cpu, cuda) = (first_shape_checks(&cpu), first_shape_checks(&ops));
    let unshaped = [
        "describe",
        "alloc",
        "upload",
        "download",
        "len",
        "synchronize",
    ];
    let methods: Vec<&str> = (backend_methods().into_iter())
        .filter(|m| !unshaped.contains(m))
        .collect();
    assert!(methods.len() > 40, "{methods:?}");
    for m in methods {
        let (c, g) = (cpu.get(m), cuda.get(m));
        assert!(c.is_some(), "Cpu::{m} does not start with a shape:: check");
        assert!(g.is_some(), "Cuda::{m} does not start with a shape:: check");
        assert_eq!(c, g, "{m}: the backends check different shapes");
    }
    // the parse sees a check that is missing or differs
    let missing =
        first_shape_checks("impl Backend for X { fn a(&self) { let n = 1; shape::a(n)?; } }");
    assert!(missing.is_empty());
    let found = first_shape_checks(
        "impl Backend for X { fn a(&self, x: V) { let c = shape::a(x.len(),\n 3)?; } }",
    );
    assert_eq!(
        found.get("a").map(String::as_str),
        Some("shape::a(x.len(),3)")
    );
}

#[test]
fn the_caller_scan_ignores_test_code() {
    let lib = "pub fn run(be: &B) { be.live_a(1); B::live_b(x); be.live_c::<f32>(3); }
        // be.commented(1);
        #[cfg(test)]
        mod tests {
            fn t(be: &B) { be.only_in_tests(1); if x { be.tested_too(2); } }
        }
        #[cfg(test)]
        mod more_tests;
        fn after(be: &B) { be.after_a_test_module(1); }";
    let (code, mods) = without_test_items(lib);
    assert_eq!(mods, ["more_tests"]);
    assert!(!code.contains("only_in_tests") && !code.contains("tested_too"));
    assert!(code.contains("after_a_test_module"));
    let files = [("src/x.rs".to_string(), code)];
    let methods = [
        "live_a",
        "live_b",
        "live_c",
        "commented",
        "only_in_tests",
        "tested_too",
        "after_a_test_module",
        "never",
    ];
    assert_eq!(
        uncalled(&methods, &files),
        ["commented", "only_in_tests", "tested_too", "never"]
    );
}

#[test]
fn ptx_versions_and_the_driver_table() {
    let ptx = "//\n// Generated by NVIDIA NVVM Compiler\n\n.version 9.5\n.target sm_90\n";
    assert_eq!(parse_ptx_version(ptx), Some((9, 5)));
    assert_eq!(parse_ptx_version("  .version 8.10 \n"), Some((8, 10)));
    assert_eq!(parse_ptx_version(".target sm_90"), None);
    assert_eq!(parse_ptx_version(".version x.y"), None);
    for (driver, max) in [
        (11080, Some((7, 8))),
        (12000, Some((8, 0))),
        (12040, Some((8, 4))),
        (12060, Some((8, 5))),
        (12070, Some((8, 5))),
        (12080, Some((8, 7))),
        (12090, Some((8, 8))),
        (13000, Some((9, 0))),
        (13010, Some((9, 1))),
        (13020, Some((9, 2))),
        (13030, None),
        (14000, None),
        (10020, Some((7, 0))),
    ] {
        assert_eq!(max_ptx_for_driver(driver), max, "driver {driver}");
    }
}

#[test]
fn the_toolchain_accepts_or_explains_a_ptx_version() {
    let tc = Toolchain {
        cc: (9, 0),
        driver: 13000,
        nvrtc: (13, 5),
    };
    assert_eq!(tc.arch(), "sm_90");
    assert_eq!(tc.mismatch(".version 9.0\n"), None);
    let m = tc.mismatch(".version 9.5\n").unwrap_or_default();
    assert_eq!(
        m,
        "NVRTC 13.5 emits PTX ISA 9.5 but the driver (CUDA 13.0) accepts up to 9.0: install an \
         NVRTC no newer than the driver, or update the driver"
    );
    let newer = Toolchain {
        driver: 13090,
        ..tc
    };
    assert_eq!(newer.mismatch(".version 9.5\n"), None);
}

#[test]
fn the_cache_key_is_stable_and_sees_every_input() {
    let k = cache_key("src", "sm_90", (13, 5));
    assert_eq!(k, cache_key("src", "sm_90", (13, 5)));
    assert_ne!(k, cache_key("src ", "sm_90", (13, 5)));
    assert_ne!(k, cache_key("src", "sm_89", (13, 5)));
    assert_ne!(k, cache_key("src", "sm_90", (13, 4)));
    assert_ne!(k, cache_key("src", "sm_90", (12, 5)));
    // The separators keep the fields apart.
    assert_ne!(cache_key("ab", "c", (1, 0)), cache_key("a", "bc", (1, 0)));
    // A fixed value: the key does not depend on the build or the process.
    assert_eq!(
        format!("{:016x}", cache_key("kernel", "sm_90", (13, 5))),
        "979bab77cd53f777"
    );
    assert_eq!(
        format!("{:016x}", super::module::fnv1a(*b"a")),
        "af63dc4c8601ec8c"
    );
    assert_eq!(super::module::fnv1a([]), 0xcbf2_9ce4_8422_2325);
}

#[test]
fn cache_files_round_trip_and_respect_the_driver() {
    use super::module::{load_cached, store_cached, Image};
    let dir = std::env::temp_dir().join(format!("lensdiff-cache-test-{}", std::process::id()));
    let old = Toolchain {
        cc: (9, 0),
        driver: 13000,
        nvrtc: (13, 5),
    };
    let new = Toolchain {
        driver: 13020,
        ..old
    };
    let ptx = Image::Ptx(".version 9.1\n.target sm_90\n".into());
    assert_eq!(load_cached(&dir, "update.cu", 7, &new), None);
    store_cached(&dir, "update.cu", 7, &ptx);
    assert_eq!(load_cached(&dir, "update.cu", 7, &new), Some(ptx));
    assert_eq!(load_cached(&dir, "update.cu", 7, &old), None);
    let cubin = Image::Cubin(vec![0x7f, b'E', b'L', b'F']);
    store_cached(&dir, "update.cu", 7, &cubin);
    assert_eq!(load_cached(&dir, "update.cu", 7, &old), Some(cubin));
    assert_eq!(load_cached(&dir, "update.cu", 8, &old), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn launch_shapes_follow_the_readme() {
    let c = flat(1000);
    assert_eq!((c.grid_dim, c.block_dim), ((4, 1, 1), (256, 1, 1)));
    assert_eq!(flat(0).grid_dim.0, 0);
    let c = per_map(65536, 100_000);
    assert_eq!((c.grid_dim, c.block_dim), ((256, 65535, 1), (256, 1, 1)));
    assert_eq!(per_chain(12).grid_dim, (12, 1, 1));
    assert!(u32_arg("n", u32::MAX as usize).is_ok());
    assert!(u32_arg("n", u32::MAX as usize + 1).is_err());
}

#[test]
fn opening_a_device_without_cuda_is_an_error_not_a_panic() {
    let missing = runtime::missing_library();
    match Cuda::new(0) {
        Err(Error::Device { device, reason }) => {
            assert_eq!(device, "cuda:0");
            if let Some(m) = missing {
                assert_eq!(reason, m);
                assert!(reason.contains("LD_LIBRARY_PATH") && reason.contains(".so"));
            }
        }
        Err(e) => panic!("not a device error: {e}"),
        // A machine with a GPU and the libraries.
        Ok(cuda) => assert!(missing.is_none() && cuda.describe().starts_with("cuda:0 (")),
    }
}

#[test]
#[ignore = "needs libnvrtc on LD_LIBRARY_PATH (no GPU): scripts/test.sh runs it"]
fn nvrtc_compiles_every_kernel_file() {
    // SAFETY: only tries to load the library.
    assert!(
        unsafe { cudarc::nvrtc::sys::is_culib_present() },
        "nvrtc_compiles_every_kernel_file needs libnvrtc: add its folder to LD_LIBRARY_PATH \
         (pip install nvidia-cuda-nvrtc; scripts/check_kernels.py prints where it is)"
    );
    let version = super::module::nvrtc_version().unwrap_or_else(|e| panic!("{e}"));
    for file in programs() {
        let text = assemble_source(file, source).unwrap_or_else(|e| panic!("{e}"));
        let (ptx, cubin) = compile(file, &text, "sm_90").unwrap_or_else(|e| panic!("{e}"));
        let isa = parse_ptx_version(&ptx);
        assert!(isa.is_some(), "{file}: no .version in the PTX");
        assert!(cubin.starts_with(b"\x7fELF"), "{file}: no CUBIN");
        for k in kernel_names(source(file).unwrap_or_default()) {
            assert!(
                ptx.contains(&format!(".entry {k}(")),
                "{file}: {k} not in the PTX"
            );
        }
        eprintln!(
            "{file}: NVRTC {version:?}, PTX ISA {isa:?}, CUBIN {} bytes",
            cubin.len()
        );
    }
    let bad = compile("bad.cu", "extern \"C\" __global__ void k( {", "sm_90");
    assert!(bad.is_err_and(|e| e.contains("nvrtcCompileProgram(bad.cu") && e.contains("error")));
}

// ---------------------------------------------------------------- launch! against the kernels
//
// A static check of every `launch!(self, "name", cfg, args..)` of ops.rs
// against the C signature of its kernel: a mismatch would otherwise only show
// on a GPU, as wrong numbers or a crash. The signatures come from the
// assembled kernel programs; what each argument is comes from the Rust text
// of its method (parameter types, `let` bindings, `as` casts, struct fields
// and the return types of the helpers of ops.rs, mod.rs, fft.rs and
// src/backend/mod.rs). Checked:
// - the kernel exists and takes as many parameters as the launch passes;
// - a buffer goes to a pointer of its element type (`float*` / `cf32*` take a
//   `CudaSlice<f32>`, `double*` / `cf64*` a `CudaSlice<f64>`, `u32*` a
//   `CudaSlice<u32>`), a `&mut` buffer to a non-const pointer and a shared
//   one to a `const` pointer;
// - a scalar goes as `&x` with `x` of exactly the C type (`float` f32,
//   `double` f64, `u32`, `u64`; never a `usize`);
// - a `u64` zero stands for a pointer (null) only where the kernel tests that
//   pointer (`if (p)`);
// - the launch shape: `per_map` for a kernel with a `LD_FOR_MAPS` loop (in
//   its body or a `__device__` function it calls), `flat` for `LD_FOR_1D`,
//   `per_chain` otherwise (the reductions), sized from the same Rust values
//   as the kernel's `n`/`spec_len` and `maps`/`chains` (`per_map`), `len`/`n`
//   (`flat`) or `chains` (`per_chain`) arguments.
// Not checked: values beyond that tracing (e.g. that a `u32` is the right
// length), buffer lengths (the methods check them at run time as the CPU
// does), the aliasing of `__restrict__` pointers, and Rust the small parser
// does not model: arguments other than `x`, `&x`, `&mut x`, `&(e as T)` or
// `&x.field` (an argument whose type cannot be inferred fails the test:
// annotate its `let`), char literals holding brackets or quotes, `let`s of
// other match arms (they are seen as if in scope).

/// What a kernel parameter or a launch argument is to the kernel: a device
/// pointer to elements of a Rust type (`cf32` values are pairs of `f32`),
/// written or `const`, or a scalar of a Rust type.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Class {
    Ptr { elem: String, write: bool },
    Scalar(String),
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Class::Ptr { elem, write: true } => write!(f, "a writable {elem} buffer"),
            Class::Ptr { elem, write: false } => write!(f, "a const {elem} buffer"),
            Class::Scalar(t) => write!(f, "a {t} scalar"),
        }
    }
}

/// The bracket depth (`()`, `[]`, `{}`; one more inside a string literal) at
/// each byte of `s`; a closing bracket has the depth of what it encloses.
fn depths(s: &str) -> Vec<i32> {
    let (mut d, mut in_str, mut esc) = (0, false, false);
    s.bytes()
        .map(|c| {
            let here = d + i32::from(in_str);
            match (in_str, c) {
                (true, _) if esc => esc = false,
                (true, b'\\') => esc = true,
                (true, b'"') => in_str = false,
                (false, b'"') => in_str = true,
                (false, b'(' | b'[' | b'{') => d += 1,
                (false, b')' | b']' | b'}') => d -= 1,
                _ => {}
            }
            here
        })
        .collect()
}

/// The index of the bracket closing the one at `open`.
fn close_of(s: &str, open: usize) -> usize {
    let d = depths(s);
    (open + 1..s.len())
        .find(|&i| d[i] == d[open] + 1 && matches!(s.as_bytes()[i], b')' | b']' | b'}'))
        .unwrap_or_else(|| panic!("unbalanced: {}", &s[open..(open + 60).min(s.len())]))
}

/// `s` split at its top-level commas, trimmed, empty pieces dropped.
fn split_top(s: &str) -> Vec<&str> {
    let d = depths(s);
    let mut from = 0;
    let mut parts = Vec::new();
    for (i, c) in s.bytes().enumerate() {
        if c == b',' && d[i] == 0 {
            parts.push(s[from..i].trim());
            from = i + 1;
        }
    }
    parts.push(s[from..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

/// `s` without its `//` comments (a `//` inside a string literal stays).
fn strip_comments(s: &str) -> String {
    let code = |l: &str| {
        let cut = l.match_indices("//").map(|(i, _)| i);
        let cut = cut
            .into_iter()
            .find(|&i| l[..i].matches('"').count() % 2 == 0);
        l[..cut.unwrap_or(l.len())].to_string()
    };
    s.lines().map(code).collect::<Vec<_>>().join("\n")
}

fn is_ident(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The identifier that ends `s` (`self.ks_shape` -> `ks_shape`).
fn last_ident(s: &str) -> &str {
    let s = s.trim_end();
    let start = s.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
    &s[start.map_or(0, |i| i + 1)..]
}

/// `callee(args..)` (callee `""` for a parenthesised or tuple expression).
fn call(e: &str) -> Option<(&str, Vec<&str>)> {
    let open = e.find('(')?;
    let whole = e.ends_with(')') && close_of(e, open) == e.len() - 1;
    whole.then(|| (e[..open].trim(), split_top(&e[open + 1..e.len() - 1])))
}

/// `(e, T)` of a top-level `e as T`.
fn cast(e: &str) -> Option<(&str, &str)> {
    let d = depths(e);
    let at = e
        .match_indices(" as ")
        .map(|(i, _)| i)
        .filter(|&i| d[i] == 0)
        .last()?;
    let ty = e[at + 4..].trim();
    is_ident(ty).then(|| (e[..at].trim(), ty))
}

/// A C function at `at` (`__global__` / `__device__`): name, parameters
/// (an optional `__launch_bounds__(..)` skipped) and `{ body }`.
fn c_function(text: &str, at: usize) -> Option<(&str, &str, &str)> {
    let rest = &text[at..];
    let mut open = rest.find('(')?;
    if rest[..open].contains([';', '{']) {
        return None;
    }
    if last_ident(&rest[..open]) == "__launch_bounds__" {
        let c = close_of(rest, open);
        open = c + 1 + rest[c + 1..].find('(')?;
    }
    let close = close_of(rest, open);
    let brace = close + rest[close..].find(['{', ';'])?;
    let body = (rest.as_bytes()[brace] == b'{').then(|| &rest[brace..=close_of(rest, brace)])?;
    Some((last_ident(&rest[..open]), &rest[open + 1..close], body))
}

/// The name and [`Class`] of a C parameter declaration (`const cf32* __restrict__ x`).
fn c_param(decl: &str) -> (String, Class) {
    let spaced = decl.replace('*', " * ");
    let words: Vec<&str> = spaced
        .split_whitespace()
        .filter(|w| *w != "__restrict__")
        .collect();
    let (name, ty) = words
        .split_last()
        .unwrap_or_else(|| panic!("parameter `{decl}`"));
    let stars = ty.iter().filter(|w| **w == "*").count();
    let base = ty
        .iter()
        .find(|w| !matches!(**w, "const" | "*"))
        .copied()
        .unwrap_or("");
    let rust = match base {
        "float" | "cf32" => "f32",
        "double" | "cf64" => "f64",
        "u32" | "u64" => base,
        "int" => "i32",
        _ => panic!("kernel parameter `{decl}`: teach c_param its type"),
    };
    let class = match stars {
        0 => Class::Scalar(rust.into()),
        1 => Class::Ptr {
            elem: rust.into(),
            write: !ty[..ty.iter().position(|w| *w == "*").unwrap_or(0)].contains(&"const"),
        },
        _ => panic!("kernel parameter `{decl}`: a pointer to a pointer"),
    };
    (name.to_string(), class)
}

/// A kernel's parameters and its body followed by those of the `__device__`
/// functions it calls (recursively, each once).
struct Kernel {
    params: Vec<(String, Class)>,
    body: String,
}

fn parse_kernels(programs: &[String]) -> HashMap<String, Kernel> {
    let mut kernels = HashMap::new();
    for text in programs.iter().map(|t| strip_comments(t)) {
        let device: HashMap<&str, &str> = (text.match_indices("__device__"))
            .filter_map(|(at, _)| c_function(&text, at).map(|(n, _, b)| (n, b)))
            .collect();
        for (at, _) in text.match_indices("extern \"C\" __global__") {
            let (name, params, body) = c_function(&text, at).expect("a kernel definition");
            let (mut full, mut todo, mut seen) = (String::new(), vec![body], Vec::new());
            while let Some(b) = todo.pop() {
                full.push_str(b);
                for (f, fb) in &device {
                    if !seen.contains(f) && b.contains(&format!("{f}(")) {
                        seen.push(f);
                        todo.push(fb);
                    }
                }
            }
            let params = split_top(params).into_iter().map(c_param).collect();
            kernels.insert(name.to_string(), Kernel { params, body: full });
        }
    }
    kernels
}

/// A Rust function: its parameters `(name, type)`, return type (`Result`
/// unwrapped) and `{ body }`.
struct RustFn<'a> {
    name: &'a str,
    params: Vec<(&'a str, &'a str)>,
    ret: &'a str,
    body: &'a str,
}

fn rust_fns(text: &str) -> Vec<RustFn<'_>> {
    let mut fns = Vec::new();
    for (at, _) in text.match_indices("fn ") {
        if at > 0 && !text.as_bytes()[at - 1].is_ascii_whitespace() {
            continue;
        }
        let rest = &text[at + 3..];
        let Some(open) = rest.find('(') else {
            continue;
        };
        let close = close_of(rest, open);
        let Some(brace) = rest[close..].find(['{', ';']).map(|b| close + b) else {
            continue;
        };
        let ret = rest[close + 1..brace]
            .trim()
            .strip_prefix("->")
            .unwrap_or("")
            .trim();
        let params = split_top(&rest[open + 1..close])
            .into_iter()
            .filter_map(|p| {
                let (n, t) = p.split_once(':')?;
                Some((n.trim().trim_start_matches("mut ").trim(), t.trim()))
            });
        fns.push(RustFn {
            name: last_ident(rest[..open].split('<').next().unwrap_or("")),
            params: params.collect(),
            ret: ret
                .strip_prefix("Result<")
                .and_then(|r| r.strip_suffix('>'))
                .unwrap_or(ret),
            body: match rest.as_bytes()[brace] {
                b'{' => &rest[brace..=close_of(rest, brace)],
                _ => "",
            },
        });
    }
    fns
}

/// `(is a reference, is `&mut`, the rest)` of `&mut x`, `&x` or `x` (an
/// expression or a type).
fn refs(s: &str) -> (bool, bool, &str) {
    match (s.strip_prefix("&mut "), s.strip_prefix('&')) {
        (Some(r), _) => (true, true, r),
        (None, Some(r)) => (true, false, r),
        _ => (false, false, s),
    }
}

/// What is known, at a launch, of the names of its method: types and the
/// value each traces back to (through `u32_arg`, `len64`, casts and `let`s).
struct Scope<'a> {
    types: HashMap<&'a str, String>,
    values: HashMap<&'a str, String>,
    rets: &'a HashMap<&'a str, &'a str>,
    fields: &'a HashMap<String, String>,
}

impl<'a> Scope<'a> {
    /// The scope of `f` at the end of `before` (its body up to the launch).
    fn new(
        f: &RustFn<'a>,
        before: &'a str,
        rets: &'a HashMap<&'a str, &'a str>,
        fields: &'a HashMap<String, String>,
    ) -> Self {
        let (types, values) = (HashMap::new(), HashMap::new());
        let mut s = Scope {
            types,
            values,
            rets,
            fields,
        };
        for &(name, ty) in &f.params {
            s.types.insert(name, ty.to_string());
        }
        // `Some(x)` of the method's `Option` parameters (if of one type).
        let options: Vec<&str> = (f.params.iter())
            .filter_map(|(_, t)| t.strip_prefix("Option<")?.strip_suffix('>'))
            .collect();
        if let [inner] = options.as_slice() {
            for (at, _) in before.match_indices("Some(") {
                let x = before[at + 5..].split(')').next().unwrap_or("");
                if is_ident(x) {
                    s.types.insert(x, inner.to_string());
                }
            }
        }
        let d = depths(before);
        for (at, _) in before.match_indices("let ") {
            let stmt_end =
                (at..before.len()).find(|&j| before.as_bytes()[j] == b';' && d[j] == d[at]);
            let stmt = &before[at + 4..stmt_end.unwrap_or(at + 4)];
            let Some((pat, expr)) = stmt.split_once(" = ") else {
                continue;
            };
            let (pat, expr) = (pat.trim().trim_start_matches("mut "), expr.trim());
            if let Some(names) = pat.strip_prefix('(').and_then(|p| p.strip_suffix(')')) {
                let names = split_top(names);
                let tuple = call(expr).filter(|(c, p)| c.is_empty() && p.len() == names.len());
                let bound: Vec<(Option<String>, Option<String>)> = match tuple {
                    Some((_, parts)) => (parts.iter())
                        .map(|p| (s.type_of(p), Some(s.source(p))))
                        .collect(),
                    None => {
                        let tys = s.type_of(expr).unwrap_or_default();
                        let tys = tys.trim_start_matches('(').trim_end_matches(')');
                        let tys: Vec<String> =
                            split_top(tys).iter().map(|t| t.to_string()).collect();
                        (0..names.len())
                            .map(|i| (tys.get(i).cloned(), None))
                            .collect()
                    }
                };
                for (n, (t, v)) in names.into_iter().zip(bound) {
                    s.bind(n, t, v);
                }
            } else if let Some((name, ty)) = pat.split_once(':') {
                let v = s.source(expr);
                s.bind(name.trim(), Some(ty.trim().to_string()), Some(v));
            } else if is_ident(pat) {
                let (t, v) = (s.type_of(expr), s.source(expr));
                s.bind(pat, t, Some(v));
            }
        }
        s
    }

    /// A `let` of `name` (shadowing what it was).
    fn bind(&mut self, name: &'a str, ty: Option<String>, value: Option<String>) {
        self.types.remove(name);
        self.values.remove(name);
        if let Some(t) = ty {
            self.types.insert(name, t);
        }
        if let Some(v) = value {
            self.values.insert(name, v);
        }
    }

    /// The Rust type of an expression, where the text shows it.
    fn type_of(&self, e: &str) -> Option<String> {
        let e = e.trim().trim_end_matches('?');
        if let Some((_, ty)) = cast(e) {
            return Some(ty.into());
        }
        if let Some(t) = self.types.get(e) {
            return Some(t.clone());
        }
        if let Some((callee, args)) = call(e) {
            return match (callee, args.as_slice()) {
                ("", [inner]) => self.type_of(inner),
                _ if callee.ends_with(".len") => Some("usize".into()),
                _ => self.rets.get(last_ident(callee)).map(|t| t.to_string()),
            };
        }
        let (obj, field) = e.rsplit_once('.')?;
        let ty = self.type_of(obj)?;
        self.fields
            .get(&format!("{}.{field}", ty.trim_start_matches('&')))
            .cloned()
    }

    /// The value an expression traces back to.
    fn source(&self, e: &str) -> String {
        let e = refs(e.trim()).2.trim().trim_end_matches('?');
        if let Some((base, _)) = cast(e) {
            return self.source(base);
        }
        if let Some((callee, args)) = call(e) {
            if let ("", [v]) | ("u32_arg", [_, v]) | ("len64", [v]) =
                (last_ident(callee), &args[..])
            {
                return self.source(v);
            }
        }
        self.values.get(e).cloned().unwrap_or_else(|| e.to_string())
    }

    /// What a launch argument is to the kernel.
    fn class_of(&self, arg: &str) -> Result<Class, String> {
        let (by_ref, by_mut, e) = refs(arg);
        let ty = self.type_of(e);
        let ty =
            ty.ok_or_else(|| format!("cannot infer the type of `{e}` (annotate its `let`)"))?;
        let (ty_ref, ty_mut, inner) = refs(&ty);
        match inner
            .strip_prefix("CudaSlice<")
            .and_then(|t| t.strip_suffix('>'))
        {
            Some(elem) if by_ref != ty_ref => Ok(Class::Ptr {
                elem: elem.into(),
                write: by_mut || ty_mut,
            }),
            None if by_ref && !by_mut && !ty_ref => Ok(Class::Scalar(inner.into())),
            _ => Err(format!(
                "`{arg}` (`{e}`: {ty}): pass buffers as `&`/`&mut CudaSlice`, scalars as `&x`"
            )),
        }
    }
}

/// Checks every `launch!` of `ops` against `programs` (assembled kernel
/// texts), with the helpers' return types and struct fields from `rust`;
/// returns the number of launches and the mismatches.
fn check_launches(programs: &[String], rust: &[&str], ops: &str) -> (usize, Vec<String>) {
    let kernels = parse_kernels(programs);
    let rust: Vec<String> = rust.iter().map(|t| strip_comments(t)).collect();
    let mut fields = HashMap::new();
    for text in &rust {
        for (at, _) in text.match_indices("struct ") {
            let rest = &text[at + 7..];
            let name = rest
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next();
            let Some(open) = rest
                .find(['{', ';', '('])
                .filter(|&o| rest.as_bytes()[o] == b'{')
            else {
                continue;
            };
            for f in split_top(&rest[open + 1..close_of(rest, open)]) {
                if let Some((n, t)) = f.split_once(':') {
                    let key = format!("{}.{}", name.unwrap_or(""), last_ident(n));
                    fields.insert(key, t.trim().to_string());
                }
            }
        }
    }
    let rets: HashMap<&str, &str> = rust
        .iter()
        .rev()
        .flat_map(|t| rust_fns(t))
        .map(|f| (f.name, f.ret))
        .collect();
    let ops = strip_comments(ops);
    let (mut launches, mut errors) = (0, Vec::new());
    for f in rust_fns(&ops) {
        for (at, _) in f.body.match_indices("launch!(") {
            launches += 1;
            let open = at + "launch!".len();
            let parts = split_top(&f.body[open + 1..close_of(f.body, open)]);
            let [_, name, cfg, args @ ..] = parts.as_slice() else {
                errors.push(format!("{}: a launch! without kernel and shape", f.name));
                continue;
            };
            let name = name.trim_matches('"');
            let Some(k) = kernels.get(name) else {
                errors.push(format!("{name}: no such kernel"));
                continue;
            };
            if args.len() != k.params.len() {
                let (a, p) = (args.len(), k.params.len());
                errors.push(format!("{name}: {a} arguments for {p} parameters"));
                continue;
            }
            let scope = Scope::new(&f, &f.body[..at], &rets, &fields);
            for ((param, want), arg) in k.params.iter().zip(args) {
                match scope.class_of(arg) {
                    Err(e) => errors.push(format!("{name}({param}): {e}")),
                    Ok(got) if got == *want => {}
                    // A null pointer: a u64 zero where the kernel tests the pointer.
                    Ok(Class::Scalar(t))
                        if matches!(want, Class::Ptr { .. })
                            && t == "u64"
                            && scope.source(arg) == "0"
                            && k.body.contains(&format!("if ({param})")) => {}
                    Ok(got) => {
                        errors.push(format!("{name}({param}): takes {want}, `{arg}` is {got}"))
                    }
                }
            }
            // The launch shape and the values it is sized from.
            let (shape, dims): (&str, &[&[&str]]) = if k.body.contains("LD_FOR_MAPS") {
                ("per_map", &[&["n", "spec_len"], &["maps", "chains"]])
            } else if k.body.contains("LD_FOR_1D") {
                ("flat", &[&["len", "n"]])
            } else {
                ("per_chain", &[&["chains"]])
            };
            let cfg = scope.source(cfg);
            let sizes = call(&cfg).filter(|(c, s)| *c == shape && s.len() == dims.len());
            let Some((_, sizes)) = sizes else {
                errors.push(format!(
                    "{name}: launched with `{cfg}`, its loops want `{shape}(..)`"
                ));
                continue;
            };
            for (size, names) in sizes.into_iter().zip(dims) {
                let Some(i) = k
                    .params
                    .iter()
                    .position(|(p, _)| names.contains(&p.as_str()))
                else {
                    errors.push(format!(
                        "{name}: no parameter {names:?} to size `{shape}` by"
                    ));
                    continue;
                };
                // fill_normal: one thread per block of four elements.
                let size = size.strip_suffix(".div_ceil(4)").unwrap_or(size);
                let (s, a) = (scope.source(size), scope.source(args[i]));
                if s != a {
                    let p = &k.params[i].0;
                    errors.push(format!(
                        "{name}: `{shape}` sized by `{s}`, its `{p}` is `{a}`"
                    ));
                }
            }
        }
    }
    (launches, errors)
}

#[test]
fn every_launch_matches_its_kernel_signature() {
    let programs: Vec<String> = programs()
        .map(|f| assemble_source(f, source).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let ops = include_str!("ops.rs");
    let rust = [
        ops,
        include_str!("mod.rs"),
        include_str!("fft.rs"),
        include_str!("../mod.rs"),
    ];
    let (launches, errors) = check_launches(&programs, &rust, ops);
    assert_eq!(launches, strip_comments(ops).matches("launch!(").count());
    assert!(launches > 40, "{launches} launches");
    assert!(
        errors.is_empty(),
        "ops.rs against kernels/:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_launch_check_finds_each_kind_of_mismatch() {
    let kernels = "extern \"C\" __global__ void scale(float* __restrict__ x, const double* w,
                                                      float a, u32 n, u32 chains) {
            LD_FOR_MAPS(c, chains) { LD_FOR_ELEMS(k, n) { x[c * n + k] *= a; } }
        }
        extern \"C\" __global__ void save(const float* x, float* prev, u64 len) {
            LD_FOR_1D(i, len) { if (prev) prev[i] = x[i]; }
        }";
    let ops = "fn u32_arg(name: &'static str, v: usize) -> Result<u32> { todo!() }
        impl Backend for Cuda {
            fn scale(&self, x: &mut CudaSlice<f32>, w: &CudaSlice<f64>, a: f32, n: usize)
                -> Result<()> {
                let chains = x.len() / n; // (x, w)
                let (n32, chains32) = (u32_arg(\"n\", n)?, u32_arg(\"chains\", chains)?);
                launch!(self, \"scale\", per_map(n, chains), x, w, &a, &n32, &chains32)
            }
            fn save(&self, x: &CudaSlice<f32>, prev: Option<&mut CudaSlice<f32>>) -> Result<()> {
                let len: u64 = x.len() as u64;
                match prev {
                    Some(p) => launch!(self, \"save\", flat(x.len()), x, p, &len),
                    None => {
                        let null: u64 = 0;
                        launch!(self, \"save\", flat(x.len()), x, &null, &len)
                    }
                }
            }
        }";
    let check = |k: &str, o: &str| check_launches(&[k.to_string()], &[o], o);
    assert_eq!(check(kernels, ops), (3, vec![]));
    for (from, to, error) in [
        (
            "x, w, &a",
            "w, x, &a",
            "scale(x): takes a writable f32 buffer, `w` is a const f64",
        ),
        (
            "&n32, &chains32",
            "&n, &chains32",
            "scale(n): takes a u32 scalar, `&n` is a usize",
        ),
        (
            "&a, &n32",
            "&(a as f64), &n32",
            "scale(a): takes a f32 scalar, `&(a as f64)` is a f64",
        ),
        (
            "x, w, &a",
            "&x, w, &a",
            "scale(x): `&x` (`x`: &mut CudaSlice<f32>): pass buffers",
        ),
        (", &chains32)", ")", "scale: 4 arguments for 5 parameters"),
        (
            "per_map(n, chains)",
            "flat(n)",
            "scale: launched with `flat(n)`, its loops want",
        ),
        (
            "per_map(n, chains)",
            "per_map(chains, n)",
            "scale: `per_map` sized by `x.len() / n`",
        ),
        (
            "x, &null",
            "&null, &null",
            "save(x): takes a const f32 buffer, `&null` is a u64",
        ),
        (
            "flat(x.len()), x, p",
            "flat(x.len()), x, x",
            "save(prev): takes a writable f32 buffer",
        ),
        (
            "let null: u64 = 0;",
            "let null = 0;",
            "save(prev): cannot infer the type of `null`",
        ),
        (
            "flat(x.len()), x, &null, &len",
            "flat(x.len()), x, &len, &len",
            "save(prev): takes",
        ),
    ] {
        assert!(ops.contains(from), "{from}");
        let (_, errors) = check(kernels, &ops.replacen(from, to, 1));
        assert!(
            errors.iter().any(|e| e.starts_with(error)),
            "{to}: {errors:?}"
        );
    }
    let unchecked_null = kernels.replace("if (prev) ", "");
    let (_, errors) = check(&unchecked_null, ops);
    assert_eq!(
        errors,
        ["save(prev): takes a writable f32 buffer, `&null` is a u64 scalar"]
    );
}
