//! Tests that need no GPU: source assembly, the kernel table against the
//! kernels' C signatures, the callers of the Backend methods, PTX versions,
//! the cache key and cache files, launch shapes, and opening a device where
//! CUDA is missing.
//! One test, `#[ignore]`d because it needs libnvrtc on LD_LIBRARY_PATH (no
//! GPU), compiles every kernel file through [`module::compile`]:
//! scripts/test.sh runs it with the NVRTC of the pip wheel
//! (`cargo test --release --lib nvrtc_compiles_every_kernel_file -- --ignored`).

use std::collections::HashMap;

use super::kernels as k;
use super::module::{
    assemble_source, cache_key, compile, max_ptx_for_driver, parse_ptx_version, programs, source,
    uses_of, Toolchain, HEADERS,
};
use super::*;
use crate::backend::elementwise::OPERATIONS;
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
            "kernels/{f} is neither a HEADERS file nor a file of the kernel table"
        );
    }
    assert_eq!(on_disk.len(), HEADERS.len() + k::PROGRAMS.len());
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
    let names: Vec<&str> = k::kernels().map(|r| r.name).collect();
    assert!(names.len() > 25 && names.contains(&"chain_norms"));
    assert!(names.contains(&"spectral_scale") && names.contains(&"spectral_scale_f64"));
    let every: Vec<&str> = programs().flat_map(k::kernel_names).collect();
    assert!(every.contains(&"axpby") && every.contains(&"axpby_f64"));
    for (i, name) in every.iter().enumerate() {
        assert!(!every[..i].contains(name), "{name} twice in the programs");
    }
    // (that the table lists every kernel of kernels/*.cu, and only those, is
    // every_table_row_matches_its_kernel)
    assert_eq!(
        launches("k::a(x, k::b); mask::c(); k::d_2(y)"),
        ["a", "b", "d_2"]
    );
    let ops = strip_comments(include_str!("ops.rs"));
    // `k::elementwise` launches the generated kernels (by the row's name)
    let launched: Vec<&str> = (launches(&ops).into_iter())
        .filter(|n| *n != "elementwise")
        .collect();
    let generic = names.iter().filter(|n| n.ends_with("_f64")).count();
    assert!(launched.len() + generic >= names.len(), "{launched:?}");
    for name in &launched {
        assert!(
            names.contains(name),
            "ops.rs launches unknown kernel {name}"
        );
    }
    // ...and every kernel is launched: no dead kernels (a generic row's
    // wrapper launches both of its kernels)
    for name in &names {
        let row = name.strip_suffix("_f64").filter(|r| names.contains(r));
        assert!(
            launched.contains(name) || row.is_some_and(|r| launched.contains(&r)),
            "kernel {name} is never launched"
        );
    }
    // ...by Backend methods that something outside tests calls
    let mut dead = uncalled(&backend_methods(), &library_sources());
    // (the elementwise rows' callers: every_backend_method_and_kernel_has_a_caller_outside_tests)
    dead.retain(|m| *m != "elementwise");
    for f in rust_fns(&ops) {
        for name in launches(f.body) {
            assert!(
                !dead.contains(&f.name),
                "kernel {name} is launched by Backend::{}, which nothing outside tests calls",
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
    assert!(methods.len() > 25 && methods.contains(&"fill_normal"));
    let mut dead = uncalled(&methods, &files);
    // `elementwise` is called through the methods of the elementwise rows;
    // each row needs a caller outside tests (or in a backend: `scale`
    // normalises cuFFT's inverse)
    let rows: Vec<&str> = OPERATIONS.iter().map(|r| r.name).collect();
    let backends = vec![
        (
            "cpu.rs".to_string(),
            strip_comments(include_str!("../cpu.rs")),
        ),
        ("ops.rs".to_string(), strip_comments(include_str!("ops.rs"))),
    ];
    let dead_rows: Vec<&str> = (uncalled(&rows, &files).into_iter())
        .filter(|r| uncalled(&[*r], &backends).contains(r))
        .collect();
    assert!(
        dead_rows.is_empty(),
        "elementwise rows nothing calls: {dead_rows:?}"
    );
    dead.retain(|m| *m != "elementwise");
    // the kernels those methods launch and no other method does
    let ops = strip_comments(include_str!("ops.rs"));
    let fns = rust_fns(&ops);
    let (dead_fns, live_fns): (Vec<&RustFn>, Vec<&RustFn>) =
        fns.iter().partition(|f| dead.contains(&f.name));
    let live: Vec<&str> = live_fns.iter().flat_map(|f| launches(f.body)).collect();
    let dead_kernels: Vec<String> = (dead_fns.iter())
        .flat_map(|f| launches(f.body))
        .filter(|name| !live.contains(name))
        .map(|name| format!("`{name}`"))
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
    assert!(methods.len() > 25, "{methods:?}");
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
        for name in k::kernel_names(file) {
            assert!(
                ptx.contains(&format!(".entry {name}(")),
                "{file}: {name} not in the PTX"
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

// ---------------------------------------------------------------- Rust and C text

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

/// `s` without its `//` comments (a `//` inside a string literal stays).
fn strip_comments(s: &str) -> String {
    let code = |l: &str| {
        let cut = l.match_indices("//").map(|(i, _)| i);
        let cut = cut
            .into_iter()
            .find(|&i| l[..i].matches('"').count().is_multiple_of(2));
        l[..cut.unwrap_or(l.len())].to_string()
    };
    s.lines().map(code).collect::<Vec<_>>().join("\n")
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier that ends `s` (`self.ks_shape` -> `ks_shape`).
fn last_ident(s: &str) -> &str {
    let s = s.trim_end();
    let start = s.rfind(|c: char| !is_ident_char(c));
    &s[start.map_or(0, |i| i + 1)..]
}

/// The identifier that starts `s`.
fn first_ident(s: &str) -> &str {
    &s[..s.find(|c: char| !is_ident_char(c)).unwrap_or(s.len())]
}

/// A Rust function: its name and `{ body }` (empty for a declaration).
struct RustFn<'a> {
    name: &'a str,
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
        fns.push(RustFn {
            name: last_ident(rest[..open].split('<').next().unwrap_or("")),
            body: match rest.as_bytes()[brace] {
                b'{' => &rest[brace..=close_of(rest, brace)],
                _ => "",
            },
        });
    }
    fns
}

/// The kernels a piece of ops.rs launches: its `k::name(..)` calls.
fn launches(code: &str) -> Vec<&str> {
    (code.match_indices("k::"))
        .filter(|(at, _)| !code[..*at].ends_with(is_ident_char))
        .map(|(at, _)| first_ident(&code[at + 3..]))
        .collect()
}

// ---------------------------------------------------------------- the table against the kernels
//
// Each row of the kernel table (kernels.rs) against the kernel's C source:
// - the `.cu` file of the row defines `extern "C" __global__ void name(..)`,
//   and defines no kernel the table leaves out;
// - the parameters agree in number, order, name and C type (`*const f32` is
//   `const float*`, `*mut cf32` is `cf32*`, `f64` is `double`, ...);
// - a nullable parameter (`Option<*mut T>`) is tested by the kernel,
//   `if (name)`;
// - the shape sizes the loops of the kernel (in its body or in the
//   functions it calls): `flat(s)` an `LD_FOR_1D(i, s)`, `per_map(e, m)` an
//   `LD_FOR_MAPS(c, m)` and an `LD_FOR_ELEMS(k, e)` (`e` an identifier; any
//   elements loop otherwise), `per_chain(c)` a loop of blocks
//   (`= blockIdx.x; .. < c;`) and no grid-stride macro.
// The Rust side of a launch needs no check: the wrappers are typed by the
// rows, so the compiler checks every call of ops.rs.

/// A kernel as its `.cu` source defines it.
struct CKernel<'a> {
    name: &'a str,
    /// `(C type, name)`, `__restrict__` dropped: `("const cf32*", "x_hat")`.
    params: Vec<(String, String)>,
    /// `{ .. }`.
    body: &'a str,
}

/// The `extern "C" __global__` kernels that `text` (comments stripped)
/// defines; parameter lists are simple (no brackets inside).
fn c_kernels(text: &str) -> Vec<CKernel<'_>> {
    const MARK: &str = "extern \"C\" __global__";
    let mut kernels = Vec::new();
    for (at, _) in text.match_indices(MARK) {
        let from = at + MARK.len();
        let mut head = text[from..].trim_start();
        head = head.strip_prefix("void").unwrap_or(head).trim_start();
        if let Some(lb) = head.strip_prefix("__launch_bounds__") {
            head = lb.split_once(')').map_or("", |(_, r)| r).trim_start();
        }
        let start = text.len() - head.len();
        let (Some(open), Some(close)) = (head.find('('), head.find(')')) else {
            continue;
        };
        // (a declaration without a body is no definition)
        let Some(brace) = (head[close + 1..].find(|c: char| !c.is_whitespace()))
            .map(|b| close + 1 + b)
            .filter(|&b| head.as_bytes()[b] == b'{')
            .map(|b| start + b)
        else {
            continue;
        };
        let params = (head[open + 1..close].split(','))
            .filter(|p| !p.trim().is_empty())
            .map(|decl| {
                let spaced = decl.replace('*', "* ");
                let mut words: Vec<&str> = (spaced.split_whitespace())
                    .filter(|w| *w != "__restrict__")
                    .collect();
                let name = words.pop().unwrap_or_default().to_string();
                (words.join(" ").replace(" *", "*"), name)
            });
        kernels.push(CKernel {
            name: head[..open].trim(),
            params: params.collect(),
            body: &text[brace..=close_of(text, brace)],
        });
    }
    kernels
}

/// The body `{ .. }` of the C function `name` that `text` defines.
fn c_body<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    (text.match_indices(&format!("{name}(")))
        .filter(|(at, _)| !text[..*at].ends_with(is_ident_char))
        .find_map(|(at, _)| {
            let close = close_of(text, at + name.len());
            let brace = text.len() - text[close + 1..].trim_start().len();
            (text.as_bytes().get(brace) == Some(&b'{'))
                .then(|| &text[brace..=close_of(text, brace)])
        })
}

/// `body` followed by the bodies of the functions of `text` it calls
/// (recursively, each once).
fn with_callees(text: &str, body: &str) -> String {
    let (mut all, mut todo, mut seen) = (String::new(), vec![body.to_string()], Vec::new());
    while let Some(b) = todo.pop() {
        for (at, _) in b.match_indices('(') {
            let f = last_ident(&b[..at]);
            let skip = ["if", "for", "while", "switch", "return", "sizeof"];
            if f.starts_with(|c: char| c.is_ascii_lowercase())
                && !skip.contains(&f)
                && !seen.contains(&f.to_string())
            {
                seen.push(f.to_string());
                todo.extend(c_body(text, f).map(str::to_string));
            }
        }
        all.push_str(&b);
    }
    all
}

/// `(macro, bound)` of the grid-stride loops of `code`:
/// `("LD_FOR_MAPS", "chains")`.
fn loops(code: &str) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    for m in ["LD_FOR_1D", "LD_FOR_MAPS", "LD_FOR_ELEMS"] {
        for (at, _) in code.match_indices(&format!("{m}(")) {
            let args = &code[at + m.len() + 1..];
            let args = &args[..args.find(')').unwrap_or(0)];
            let bound = args.split_once(',').map_or("", |(_, b)| b.trim());
            found.push((m, bound.to_string()));
        }
    }
    found
}

/// The mismatches between a table row and `program` (its `.cu` file, or the
/// assembled program, comments stripped).
fn check_row(row: &k::Kernel, program: &str) -> Vec<String> {
    let name = row.name;
    let Some(c) = c_kernels(program).into_iter().find(|c| c.name == name) else {
        return vec![format!("{name}: no such kernel in {}", row.file)];
    };
    let mut errors = Vec::new();
    let table: Vec<(&str, &str)> = row.params.iter().map(|p| (p.c, p.name)).collect();
    let source: Vec<(&str, &str)> = (c.params.iter())
        .map(|(t, n)| (t.as_str(), n.as_str()))
        .collect();
    if table != source {
        let show = |ps: &[(&str, &str)]| {
            let ps: Vec<String> = ps.iter().map(|(t, n)| format!("{t} {n}")).collect();
            ps.join(", ")
        };
        errors.push(format!(
            "{name}: the table says ({}), the kernel ({})",
            show(&table),
            show(&source)
        ));
    }
    for p in row.params.iter().filter(|p| p.nullable) {
        if !c.body.contains(&format!("if ({})", p.name)) {
            errors.push(format!(
                "{name}({}): may be null, the kernel never tests it",
                p.name
            ));
        }
    }
    let code = with_callees(program, c.body);
    let found = loops(&code);
    let has = |m: &str, bound: Option<&str>| {
        (found.iter()).any(|(fm, fb)| *fm == m && bound.is_none_or(|b| b == fb))
    };
    let is_ident = |s: &str| !s.is_empty() && first_ident(s) == s;
    let ok = match (row.shape, row.sizes) {
        ("flat", [len]) => has("LD_FOR_1D", Some(len)) && !has("LD_FOR_MAPS", None),
        ("per_map", [elems, maps]) => {
            has("LD_FOR_MAPS", Some(maps))
                && has("LD_FOR_ELEMS", Some(*elems).filter(|e| is_ident(e)))
                && !has("LD_FOR_1D", None)
        }
        ("per_chain", [chains]) => {
            // a loop of blocks `for (u64 c = blockIdx.x; c < chains; ..)`
            let over = |(at, _): (usize, &str)| {
                let cond = code[at..].split(';').nth(1).unwrap_or("");
                cond.trim().ends_with(&format!("< {chains}"))
            };
            found.is_empty() && code.match_indices("= blockIdx.x;").any(over)
        }
        _ => false,
    };
    if !ok {
        errors.push(format!(
            "{name}: launched as {}({}), its loops are {found:?}",
            row.shape,
            row.sizes.join(", ")
        ));
    }
    errors
}

/// The kernel-table rows of the generated elementwise kernels, in the order
/// `k::elementwise` pushes their arguments: `out`, the inputs, the scalars,
/// `len`; launched `flat(len)`.
fn elementwise_rows() -> Vec<k::Kernel> {
    fn arg(name: &'static str, c: &'static str) -> k::Arg {
        k::Arg {
            name,
            c,
            nullable: false,
        }
    }
    fn rows_of<T: crate::backend::Real>(out: &mut Vec<k::Kernel>) {
        let [ptr, const_ptr, _, _] = T::C_POINTERS;
        for row in OPERATIONS {
            // the buffers are `name_` in C (the element at `i` is `name`)
            let buffer = |name: &str| -> &'static str { Box::leak(format!("{name}_").into()) };
            let mut params = vec![arg(buffer(row.out), ptr)];
            params.extend(row.inputs.iter().map(|&name| arg(buffer(name), const_ptr)));
            params.extend(row.scalars.iter().map(|&name| arg(name, T::C)));
            params.push(arg("len", "u64"));
            out.push(k::Kernel {
                name: row.kernel::<T>(),
                file: k::ELEMENTWISE_PROGRAM,
                params: Box::leak(params.into_boxed_slice()),
                shape: "flat",
                sizes: &["len"],
            });
        }
    }
    let mut rows = Vec::new();
    rows_of::<f32>(&mut rows);
    rows_of::<f64>(&mut rows);
    rows
}

#[test]
fn every_table_row_matches_its_kernel() {
    let mut errors = Vec::new();
    for file in programs() {
        let text = strip_comments(&assemble_source(file, source).unwrap_or_else(|e| panic!("{e}")));
        let own = strip_comments(source(file).unwrap_or_default());
        let defined: Vec<&str> = c_kernels(&own).iter().map(|c| c.name).collect();
        if file == k::ELEMENTWISE_PROGRAM {
            // generated from the rows: the kernels of the rows, each with the
            // parameters `k::elementwise` pushes (out, inputs, scalars, len)
            assert_eq!(defined, k::kernel_names(file), "{file}");
            for row in elementwise_rows() {
                errors.extend(check_row(&row, &text));
            }
            continue;
        }
        let rows: Vec<&k::Kernel> = k::kernels().filter(|r| r.file == file).collect();
        assert!(!defined.is_empty(), "{file}: no kernel");
        for name in &defined {
            if !rows.iter().any(|r| r.name == *name) {
                errors.push(format!("{file}: kernel {name} is not in the table"));
            }
        }
        for row in rows {
            errors.extend(check_row(row, &text));
        }
    }
    assert!(
        errors.is_empty(),
        "kernels.rs against kernels/:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_table_check_finds_each_kind_of_mismatch() {
    let program = "extern \"C\" __global__ void scale(float* __restrict__ x, const double* w,
                                                      float a, u32 n, u32 chains) {
            LD_FOR_MAPS(c, chains) { scale_one(x + c * n, w, a, n); }
        }
        __device__ void scale_one(float* x, const double* w, float a, u32 n) {
            LD_FOR_ELEMS(k, n) { x[k] *= a; }
        }
        extern \"C\" __global__ void __launch_bounds__(256)
            save(const float *x, float* prev, u64 len) {
            LD_FOR_1D(i, len) { if (prev) prev[i] = x[i]; }
        }
        extern \"C\" __global__ void declared_only(float* x);
        extern \"C\" __global__ void sum(const float* x, u32 chains, double* out) {
            for (u64 c = blockIdx.x; c < chains; c += gridDim.x) { out[c] = x[c]; }
        }";
    // rows as the table makes them (`'static`: leaked)
    let row = |name, params: &[(&'static str, &'static str)], shape, sizes: &[&'static str]| {
        let params = (params.iter())
            .map(|&(name, c)| k::Arg {
                name,
                c,
                nullable: name == "prev",
            })
            .collect::<Vec<_>>();
        k::Kernel {
            name,
            file: "x.cu",
            params: params.leak(),
            shape,
            sizes: sizes.to_vec().leak(),
        }
    };
    let scale = row(
        "scale",
        &[
            ("x", "float*"),
            ("w", "const double*"),
            ("a", "float"),
            ("n", "u32"),
            ("chains", "u32"),
        ],
        "per_map",
        &["n", "chains"],
    );
    let save_params = [("x", "const float*"), ("prev", "float*"), ("len", "u64")];
    let save = row("save", &save_params, "flat", &["len"]);
    let sum_params = [("x", "const float*"), ("chains", "u32"), ("out", "double*")];
    let sum = row("sum", &sum_params, "per_chain", &["chains"]);
    for r in [&scale, &save, &sum] {
        assert_eq!(check_row(r, program), Vec::<String>::new(), "{}", r.name);
    }
    let edit = |r: k::Kernel, f: &dyn Fn(&mut Vec<k::Arg>)| {
        let mut params = r.params.to_vec();
        f(&mut params);
        k::Kernel {
            params: params.leak(),
            ..r
        }
    };
    let shaped = |r: k::Kernel, shape, sizes: &[&'static str]| k::Kernel {
        shape,
        sizes: sizes.to_vec().leak(),
        ..r
    };
    let renamed = k::Kernel {
        name: "scales",
        ..scale
    };
    let table = "scale: the table says";
    for (r, error) in [
        (renamed, "scales: no such kernel in x.cu"),
        (
            edit(scale, &|p| p.swap(0, 1)),
            "scale: the table says (const double* w, float* x,",
        ),
        (edit(scale, &|p| p.truncate(4)), table),
        (edit(scale, &|p| p[0].c = "const float*"), table),
        (edit(scale, &|p| p[2].c = "double"), table),
        (edit(scale, &|p| p[3].name = "len"), table),
        (
            edit(save, &|p| p[0].nullable = true),
            "save(x): may be null, the kernel never tests it",
        ),
        (
            shaped(scale, "per_map", &["chains", "n"]),
            "scale: launched as per_map(chains, n)",
        ),
        (shaped(scale, "flat", &["n"]), "scale: launched as flat(n)"),
        (
            shaped(save, "per_chain", &["len"]),
            "save: launched as per_chain(len)",
        ),
        (
            shaped(sum, "per_chain", &["n"]),
            "sum: launched as per_chain(n)",
        ),
    ] {
        let errors = check_row(&r, program);
        assert!(
            errors.iter().any(|e| e.starts_with(error)),
            "{error}: {errors:?}"
        );
    }
    let names: Vec<&str> = c_kernels(program).iter().map(|c| c.name).collect();
    assert_eq!(names, ["scale", "save", "sum"]);
    let unchecked = program.replace("if (prev) ", "");
    assert_eq!(
        check_row(&save, &unchecked),
        ["save(prev): may be null, the kernel never tests it"]
    );
}
