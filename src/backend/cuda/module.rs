//! The kernels of `kernels/`: embedded sources, `// uses:` assembly, NVRTC
//! compilation for the device's architecture, the choice between PTX and
//! CUBIN, and the in-memory and on-disk caches of compiled images.
//!
//! Each `kernels/*.cu` becomes one module. Its program text is the `.cuh`
//! files it names in `// uses:` lines (recursively, dependencies first, each
//! once, each after `#line 1 "<name>"`), then the file itself, exactly as
//! `scripts/check_kernels.py` assembles it (kernels/README.md).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys, Ptx};

use super::kernels::{kernel_names, ELEMENTWISE_PROGRAM, PROGRAMS};

/// The shared `.cuh` files of `kernels/` as `(name, text)`, embedded in the
/// binary (the `.cu` files are the kernel table's [`PROGRAMS`]).
pub(crate) const HEADERS: &[(&str, &str)] = &[
    ("common.cuh", include_str!("../../../kernels/common.cuh")),
    ("philox.cuh", include_str!("../../../kernels/philox.cuh")),
];

/// NVRTC options besides `-arch` (those of `scripts/check_kernels.py`, less
/// its `--ptxas-options=-v` report).
pub const OPTIONS: &[&str] = &["--std=c++17", "-lineinfo"];

/// The text of a kernel file: a `.cuh` or `.cu` of `kernels/` (embedded), or
/// the program generated from the elementwise table.
pub(crate) fn source(name: &str) -> Option<&'static str> {
    if name == ELEMENTWISE_PROGRAM {
        static GENERATED: OnceLock<String> = OnceLock::new();
        return Some(GENERATED.get_or_init(crate::backend::elementwise::cuda_source));
    }
    (HEADERS.iter().chain(PROGRAMS))
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// The programs (one module each): the `.cu` files in the order of the
/// kernel table, then the generated elementwise program.
pub(crate) fn programs() -> impl Iterator<Item = &'static str> {
    PROGRAMS
        .iter()
        .map(|(n, _)| *n)
        .chain([ELEMENTWISE_PROGRAM])
}

/// The files a text names in its `// uses: a.cuh b.cuh` lines (separated by
/// spaces or commas; several lines allowed).
pub fn uses_of(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("//"))
        .filter_map(|l| l.trim_start().strip_prefix("uses:"))
        .flat_map(|l| l.split([' ', '\t', ',']).filter(|n| !n.is_empty()))
        .collect()
}

/// The program text of `file`: its `// uses:` dependencies (recursively,
/// dependencies first, each once), then the file, each preceded by
/// `#line 1 "<name>"`. `lookup` gives a file's text. Fails on a missing or
/// non-`.cuh` dependency, a cycle, or an `#include` (NVRTC has no headers).
pub fn assemble_source<'a>(
    file: &'a str,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Result<String, String> {
    fn visit<'a>(
        name: &'a str,
        origin: &str,
        lookup: &dyn Fn(&str) -> Option<&'a str>,
        visiting: &mut Vec<&'a str>,
        order: &mut Vec<(&'a str, &'a str)>,
    ) -> Result<(), String> {
        if order.iter().any(|(n, _)| *n == name) {
            return Ok(());
        }
        if visiting.contains(&name) {
            return Err(format!("{origin}: circular `// uses: {name}`"));
        }
        let text = lookup(name)
            .filter(|_| name.ends_with(".cuh"))
            .ok_or_else(|| format!("{origin}: `// uses: {name}` names no kernels/*.cuh file"))?;
        visiting.push(name);
        for dep in uses_of(text) {
            visit(dep, name, lookup, visiting, order)?;
        }
        visiting.retain(|n| *n != name);
        order.push((name, text));
        Ok(())
    }

    let text = lookup(file).ok_or_else(|| format!("no kernel file {file}"))?;
    let mut order = Vec::new();
    for dep in uses_of(text) {
        visit(dep, file, &lookup, &mut Vec::new(), &mut order)?;
    }
    order.push((file, text));
    let mut out = String::new();
    for (name, text) in order {
        if let Some(no) = text.lines().position(is_include) {
            return Err(format!(
                "{name}:{}: #include is not allowed (NVRTC has no headers; use `// uses:`)",
                no + 1
            ));
        }
        out.push_str(&format!("#line 1 \"{name}\"\n{text}\n"));
    }
    Ok(out)
}

/// Whether a line is an `#include` directive.
fn is_include(line: &str) -> bool {
    line.trim_start()
        .strip_prefix('#')
        .is_some_and(|r| r.trim_start().starts_with("include"))
}

/// The PTX ISA version `(major, minor)` of a `.version X.Y` line.
pub fn parse_ptx_version(ptx: &str) -> Option<(u32, u32)> {
    let line = ptx
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(".version"))?;
    let (major, minor) = line[".version".len()..].trim().split_once('.')?;
    Some((major.trim().parse().ok()?, minor.trim().parse().ok()?))
}

/// `(major, minor)` of a CUDA version number as `cuDriverGetVersion` and
/// `nvrtcVersion` report it (`13000` is 13.0, `12080` is 12.8).
pub fn cuda_version(v: i32) -> (i32, i32) {
    (v / 1000, (v % 1000) / 10)
}

/// The highest PTX ISA the driver of CUDA version `driver` (`12080`) can JIT:
/// that of the newest CUDA release not newer than it (the first entry for
/// older drivers), or `None` for a driver newer than this table (assumed to
/// accept any PTX this NVRTC emits).
pub fn max_ptx_for_driver(driver: i32) -> Option<(u32, u32)> {
    /// `((CUDA major, minor), PTX ISA)`, from the PTX ISA release notes.
    type Entry = ((i32, i32), (u32, u32));
    const TABLE: &[Entry] = &[
        ((11, 0), (7, 0)),
        ((11, 1), (7, 1)),
        ((11, 2), (7, 2)),
        ((11, 3), (7, 3)),
        ((11, 4), (7, 4)),
        ((11, 5), (7, 5)),
        ((11, 6), (7, 6)),
        ((11, 7), (7, 7)),
        ((11, 8), (7, 8)),
        ((12, 0), (8, 0)),
        ((12, 1), (8, 1)),
        ((12, 2), (8, 2)),
        ((12, 3), (8, 3)),
        ((12, 4), (8, 4)),
        ((12, 5), (8, 5)),
        ((12, 6), (8, 5)),
        ((12, 8), (8, 7)),
        ((12, 9), (8, 8)),
        ((13, 0), (9, 0)),
        ((13, 1), (9, 1)),
        ((13, 2), (9, 2)),
    ];
    let v = cuda_version(driver);
    if TABLE.last().is_some_and(|(last, _)| v > *last) {
        return None;
    }
    TABLE
        .iter()
        .rev()
        .find(|(cuda, _)| *cuda <= v)
        .or(TABLE.first())
        .map(|(_, ptx)| *ptx)
}

/// 64-bit FNV-1a.
pub(super) fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The disk-cache key of a compiled program: FNV-1a 64 of the assembled
/// source, the architecture (`sm_90`), the NVRTC version and [`OPTIONS`],
/// separated by NUL bytes.
pub fn cache_key(source: &str, arch: &str, nvrtc_version: (i32, i32)) -> u64 {
    let version = format!("{}.{}", nvrtc_version.0, nvrtc_version.1);
    let mut parts = vec![source, arch, &version];
    parts.extend_from_slice(OPTIONS);
    fnv1a(
        parts
            .iter()
            .flat_map(|p| p.bytes().chain(std::iter::once(0))),
    )
}

/// A compiled module, in the form the driver loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Image {
    /// PTX text, JIT-compiled by the driver.
    Ptx(String),
    /// Machine code for the device's architecture.
    Cubin(Vec<u8>),
}

/// What the compiler and the driver are: fixes which image a module gets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Toolchain {
    /// Compute capability `(major, minor)`.
    pub cc: (i32, i32),
    /// `cuDriverGetVersion` (`13000`).
    pub driver: i32,
    /// `nvrtcVersion` `(major, minor)`.
    pub nvrtc: (i32, i32),
}

impl Toolchain {
    /// The NVRTC architecture, `sm_XY`.
    pub fn arch(&self) -> String {
        format!("sm_{}{}", self.cc.0, self.cc.1)
    }

    /// Whether the driver can JIT this PTX.
    fn accepts(&self, ptx: &str) -> bool {
        match (parse_ptx_version(ptx), max_ptx_for_driver(self.driver)) {
            (Some(isa), Some(max)) => isa <= max,
            _ => true,
        }
    }

    /// The advice when neither image loads: the PTX/driver versions.
    pub fn mismatch(&self, ptx: &str) -> Option<String> {
        let isa = parse_ptx_version(ptx)?;
        let max = max_ptx_for_driver(self.driver)?;
        let (dm, dn) = cuda_version(self.driver);
        (isa > max).then(|| {
            format!(
                "NVRTC {}.{} emits PTX ISA {}.{} but the driver (CUDA {dm}.{dn}) accepts up to \
                 {}.{}: install an NVRTC no newer than the driver, or update the driver",
                self.nvrtc.0, self.nvrtc.1, isa.0, isa.1, max.0, max.1
            )
        })
    }
}

/// The NVRTC version `(major, minor)`.
pub(crate) fn nvrtc_version() -> Result<(i32, i32), String> {
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    // SAFETY: two valid out-pointers; the library was probed by the caller.
    unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| format!("nvrtcVersion: {e}"))?;
    Ok((major, minor))
}

/// The real architectures NVRTC can compile for (`[75, 80, ..., 120]`).
fn supported_archs() -> Result<Vec<i32>, String> {
    let mut n: c_int = 0;
    // SAFETY: a valid out-pointer.
    unsafe { nvrtc_sys::nvrtcGetNumSupportedArchs(&mut n) }
        .result()
        .map_err(|e| format!("nvrtcGetNumSupportedArchs: {e}"))?;
    let mut archs = vec![0 as c_int; n.max(0) as usize];
    // SAFETY: `archs` has room for the `n` values NVRTC writes.
    unsafe { nvrtc_sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) }
        .result()
        .map_err(|e| format!("nvrtcGetSupportedArchs: {e}"))?;
    Ok(archs)
}

/// An NVRTC program, destroyed on drop.
struct Program(nvrtc_sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: created by `create_program`, destroyed once. A failure
        // leaks the program; there is nothing to do about it here.
        let _ = unsafe { nvrtc::destroy_program(self.0) };
    }
}

/// A NUL-terminated buffer from NVRTC as text.
fn c_text(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Compiles one assembled program for `arch` (`sm_90`): its PTX and CUBIN.
pub(crate) fn compile(name: &str, source: &str, arch: &str) -> Result<(String, Vec<u8>), String> {
    let src = CString::new(source).map_err(|_| format!("{name}: NUL byte in the source"))?;
    let cname = CString::new(name).map_err(|_| format!("{name}: NUL byte in the name"))?;
    let prog = Program(
        nvrtc::create_program(&src, Some(&cname))
            .map_err(|e| format!("nvrtcCreateProgram({name}): {e}"))?,
    );
    let mut opts: Vec<String> = OPTIONS.iter().map(|o| o.to_string()).collect();
    opts.push(format!("-arch={arch}"));
    // SAFETY: `prog` is a live program; the options contain no NUL byte.
    if let Err(e) = unsafe { nvrtc::compile_program(prog.0, &opts) } {
        // SAFETY: as above.
        let log = unsafe { nvrtc::get_program_log(prog.0) }
            .map(|l| c_text(&l))
            .unwrap_or_default();
        return Err(format!(
            "nvrtcCompileProgram({name}, {}): {e}\n{}",
            opts.join(" "),
            log.trim_end()
        ));
    }
    // SAFETY: compiled above.
    let ptx = unsafe { nvrtc::get_ptx(prog.0) }.map_err(|e| format!("nvrtcGetPTX({name}): {e}"))?;
    let mut size = 0usize;
    // SAFETY: a live, compiled program and a valid out-pointer.
    unsafe { nvrtc_sys::nvrtcGetCUBINSize(prog.0, &mut size) }
        .result()
        .map_err(|e| format!("nvrtcGetCUBINSize({name}): {e}"))?;
    let mut cubin = vec![0u8; size];
    if size > 0 {
        // SAFETY: `cubin` has the `size` bytes NVRTC writes.
        unsafe { nvrtc_sys::nvrtcGetCUBIN(prog.0, cubin.as_mut_ptr() as *mut c_char) }
            .result()
            .map_err(|e| format!("nvrtcGetCUBIN({name}): {e}"))?;
    }
    Ok((c_text(&ptx), cubin))
}

/// The disk-cache folder, `$LENSDIFF_KERNEL_CACHE` (no cache when unset).
fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("LENSDIFF_KERNEL_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// `<dir>/lensdiff-<file stem>-<key>.<ext>`.
fn cache_path(dir: &Path, file: &str, key: u64, ext: &str) -> PathBuf {
    let stem = file.trim_end_matches(".cu");
    dir.join(format!("lensdiff-{stem}-{key:016x}.{ext}"))
}

/// A cached image the driver can load, if any: the PTX when the driver
/// accepts its version, else the CUBIN.
pub(super) fn load_cached(dir: &Path, file: &str, key: u64, tc: &Toolchain) -> Option<Image> {
    if let Ok(ptx) = std::fs::read_to_string(cache_path(dir, file, key, "ptx")) {
        // (A NUL byte would make it unloadable: treat such a file as absent.)
        if tc.accepts(&ptx) && !ptx.contains('\0') {
            return Some(Image::Ptx(ptx));
        }
    }
    let cubin = std::fs::read(cache_path(dir, file, key, "cubin")).ok()?;
    (!cubin.is_empty()).then_some(Image::Cubin(cubin))
}

/// Stores an image in the disk cache (written to a temporary file, then
/// renamed, so a concurrent reader never sees part of one). The cache is an
/// optimisation: a failure to write it is not an error.
pub(super) fn store_cached(dir: &Path, file: &str, key: u64, image: &Image) {
    let (ext, bytes) = match image {
        Image::Ptx(p) => ("ptx", p.as_bytes()),
        Image::Cubin(c) => ("cubin", c.as_slice()),
    };
    let path = cache_path(dir, file, key, ext);
    let tmp = path.with_extension(format!("{ext}.{}.tmp", std::process::id()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&tmp, bytes))
        .and_then(|_| std::fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// A kernel file's image and where it came from.
struct Built {
    image: Image,
    /// The PTX NVRTC just produced; `None` for an image from the disk cache.
    fresh_ptx: Option<String>,
}

impl Built {
    /// What to add to the error of a module that does not load.
    fn advice(&self, tc: &Toolchain) -> String {
        match &self.fresh_ptx {
            Some(ptx) => tc
                .mismatch(ptx)
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            None => " (image from $LENSDIFF_KERNEL_CACHE: delete it to recompile)".into(),
        }
    }
}

/// The image of one kernel file for this toolchain: PTX when the driver can
/// JIT it, else the CUBIN; from the disk cache when that holds one.
fn build(file: &'static str, tc: &Toolchain) -> Result<Built, String> {
    let source = assemble_source(file, source)?;
    let arch = tc.arch();
    let key = cache_key(&source, &arch, tc.nvrtc);
    let dir = cache_dir();
    if let Some(image) = dir.as_deref().and_then(|d| load_cached(d, file, key, tc)) {
        return Ok(Built {
            image,
            fresh_ptx: None,
        });
    }
    let (ptx, cubin) = compile(file, &source, &arch)?;
    let image = if tc.accepts(&ptx) || cubin.is_empty() {
        Image::Ptx(ptx.clone())
    } else {
        Image::Cubin(cubin)
    };
    if let Some(d) = &dir {
        store_cached(d, file, key, &image);
    }
    Ok(Built {
        image,
        fresh_ptx: Some(ptx),
    })
}

/// Compiled images, per process, by (architecture, file).
type ImageCache = Mutex<HashMap<(String, &'static str), Arc<Built>>>;

fn images() -> &'static ImageCache {
    static IMAGES: OnceLock<ImageCache> = OnceLock::new();
    IMAGES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Every kernel of every program ([`kernel_names`]), loaded into one context,
/// by name.
pub(crate) struct Kernels(HashMap<&'static str, CudaFunction>);

impl Kernels {
    /// Compiles (once per process and architecture) and loads every module.
    pub fn load(ctx: &Arc<CudaContext>, tc: &Toolchain) -> Result<Kernels, String> {
        let arch = tc.arch();
        let (nvrtc_major, nvrtc_minor) = tc.nvrtc;
        let supported = supported_archs()?;
        if !supported.contains(&(tc.cc.0 * 10 + tc.cc.1)) {
            let list: Vec<String> = supported.iter().map(|a| format!("sm_{a}")).collect();
            return Err(format!(
                "NVRTC {nvrtc_major}.{nvrtc_minor} cannot compile for {arch} (it supports {}): \
                 install an NVRTC that supports this GPU",
                list.join(", ")
            ));
        }
        let mut map = HashMap::new();
        for file in programs() {
            let built = {
                let mut cache = images().lock().unwrap_or_else(|p| p.into_inner());
                match cache.get(&(arch.clone(), file)) {
                    Some(b) => b.clone(),
                    None => {
                        let b = Arc::new(build(file, tc)?);
                        cache.insert((arch.clone(), file), b.clone());
                        b
                    }
                }
            };
            let ptx_obj = match &built.image {
                Image::Ptx(p) => Ptx::from_src(p.clone()),
                Image::Cubin(c) => Ptx::from_binary(c.clone()),
            };
            let module = ctx
                .load_module(ptx_obj)
                .map_err(|e| format!("cuModuleLoadData({file}): {e}{}", built.advice(tc)))?;
            for name in kernel_names(file) {
                let f = (module.load_function(name))
                    .map_err(|e| format!("cuModuleGetFunction({name}): {e}"))?;
                map.insert(name, f);
            }
        }
        Ok(Kernels(map))
    }

    /// The kernel called `name`.
    pub fn get(&self, name: &str) -> Option<&CudaFunction> {
        self.0.get(name)
    }
}
