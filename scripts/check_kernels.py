#!/usr/bin/env python3
"""Compile-check the CUDA kernels of kernels/ with NVRTC, without a GPU.

Every kernels/*.cu is compiled standalone, as the CUDA backend (issue #7) will
compile it at run time: the shared kernels/*.cuh files that it names in a
`// uses: a.cuh b.cuh` comment line are prepended (recursively, dependencies
first, each once; see kernels/README.md). NVRTC ships no CUDA headers, so an
`#include` anywhere in kernels/ is an error. Each program is compiled for
sm_90a and its CUBIN requested, so ptxas runs; its `-v` report gives the
registers and spills of every kernel.

Fails (exit 1) on a compile error or warning, a kernel with nonzero spill
stores or loads, a .cu file without an `extern "C" __global__` kernel, a kernel
missing from the ptxas report, or a kernel that is not a row of its file in the kernel table of the CUDA backend
(`kernels!` in src/backend/cuda/kernels.rs; a row without a kernel too). The
table's parameter types and launch shapes are checked by the Rust tests.
Exits 3 when no NVRTC library can be found (install the PyPI wheel
`nvidia-cuda-nvrtc`, or point LENSDIFF_NVRTC at libnvrtc.so).

Usage: python3 scripts/check_kernels.py [--arch sm_90a] [file.cu ...]
"""

import argparse
import ctypes
import ctypes.util
import glob
import os
import re
import site
import sys
import sysconfig

EXIT_NO_NVRTC = 3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(ROOT, "kernels")
NVRTC_SUCCESS = 0

LIB_NAME = re.compile(r"^libnvrtc\.so(\.\d+)*$")
USES = re.compile(r"^\s*//\s*uses:\s*(.+?)\s*$")
INCLUDE = re.compile(r"^\s*#\s*include\b")
_LB = r"(?:__launch_bounds__\s*\([^)]*\)\s*)?"
KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+' + _LB + r"void\s+" + _LB + r"(\w+)\s*\(")
FRONTEND_WARNING = re.compile(r"\(\d+\): warning\b")
TABLE = os.path.join(ROOT, "src", "backend", "cuda", "kernels.rs")
TABLE_FILE = re.compile(r'^\s*"(\w+\.cu)"\s*\{', re.M)
TABLE_ROW = re.compile(r"^\s*fn\s+(\w+)\s*(<\s*\w+\s*>)?\s*\(", re.M)


def _version_key(path):
    """Sort key preferring the newest `libnvrtc.so.MAJOR[.MINOR]`."""
    nums = re.findall(r"\d+", os.path.basename(path).split(".so", 1)[1])
    return tuple(int(n) for n in nums)


def candidate_libraries():
    """Paths that may hold libnvrtc, best first."""
    env = os.environ.get("LENSDIFF_NVRTC")
    if env:
        if os.path.isdir(env):
            found = [p for p in glob.glob(os.path.join(env, "libnvrtc.so*"))
                     if LIB_NAME.match(os.path.basename(p))]
            return sorted(found, key=_version_key, reverse=True) or [os.path.join(env, "libnvrtc.so")]
        return [env]
    roots = []
    # the wheel: nvidia/cuda_nvrtc/lib (CUDA 12 wheels) or nvidia/cuNN/lib (CUDA 13+)
    try:
        import nvidia  # namespace package of the NVIDIA wheels
        roots.extend(list(getattr(nvidia, "__path__", [])))
    except ImportError:
        pass
    sp = []
    try:
        sp.extend(site.getsitepackages())
    except AttributeError:
        pass
    try:
        sp.append(site.getusersitepackages())
    except AttributeError:
        pass
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            sp.append(p)
    sp.extend(p for p in sys.path if p)
    roots.extend(os.path.join(p, "nvidia") for p in sp)
    found, seen = [], set()
    for r in roots:
        for p in glob.glob(os.path.join(r, "*", "lib", "libnvrtc.so*")):
            real = os.path.realpath(p)
            if LIB_NAME.match(os.path.basename(p)) and real not in seen:
                seen.add(real)
                found.append(p)
    found.sort(key=_version_key, reverse=True)
    # a system CUDA toolkit, last
    sys_lib = ctypes.util.find_library("nvrtc")
    if sys_lib:
        found.append(sys_lib)
    for d in ("/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"):
        found.extend(sorted(glob.glob(os.path.join(d, "libnvrtc.so*")), key=_version_key, reverse=True))
    return found


def load_nvrtc():
    """(library handle, path) or (None, list of tried paths)."""
    tried = candidate_libraries()
    for path in tried:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setup_prototypes(lib)
        return lib, path
    return None, tried


def setup_prototypes(lib):
    c_int, c_size_t, c_char_p, c_void_p = ctypes.c_int, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p
    lib.nvrtcGetErrorString.restype = c_char_p
    lib.nvrtcGetErrorString.argtypes = [c_int]
    lib.nvrtcVersion.argtypes = [ctypes.POINTER(c_int), ctypes.POINTER(c_int)]
    lib.nvrtcCreateProgram.argtypes = [ctypes.POINTER(c_void_p), c_char_p, c_char_p, c_int,
                                       ctypes.POINTER(c_char_p), ctypes.POINTER(c_char_p)]
    lib.nvrtcDestroyProgram.argtypes = [ctypes.POINTER(c_void_p)]
    lib.nvrtcCompileProgram.argtypes = [c_void_p, c_int, ctypes.POINTER(c_char_p)]
    lib.nvrtcGetProgramLogSize.argtypes = [c_void_p, ctypes.POINTER(c_size_t)]
    lib.nvrtcGetProgramLog.argtypes = [c_void_p, c_char_p]
    lib.nvrtcGetCUBINSize.argtypes = [c_void_p, ctypes.POINTER(c_size_t)]
    lib.nvrtcGetCUBIN.argtypes = [c_void_p, c_char_p]
    for f in ("nvrtcVersion", "nvrtcCreateProgram", "nvrtcDestroyProgram", "nvrtcCompileProgram",
              "nvrtcGetProgramLogSize", "nvrtcGetProgramLog", "nvrtcGetCUBINSize", "nvrtcGetCUBIN"):
        getattr(lib, f).restype = c_int


def uses_of(path):
    """The .cuh files a source names in `// uses:` lines."""
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = USES.match(line)
            if m:
                names.extend(n for n in re.split(r"[\s,]+", m.group(1)) if n)
    return names


def assemble(path, errors):
    """The program text: the used headers (dependencies first), then the file,
    each after a `#line` directive so that messages name the right file."""
    order, visiting = [], set()

    def visit(name, origin):
        full = os.path.join(KERNELS, name)
        if full in order:
            return
        if full in visiting:
            errors.append(f"{origin}: circular `// uses: {name}`")
            return
        if not (name.endswith(".cuh") and os.path.isfile(full)):
            errors.append(f"{origin}: `// uses: {name}` names no kernels/*.cuh file")
            return
        visiting.add(full)
        for dep in uses_of(full):
            visit(dep, name)
        visiting.discard(full)
        order.append(full)

    for name in uses_of(path):
        visit(name, os.path.basename(path))
    parts = []
    for f in order + [path]:
        with open(f, encoding="utf-8") as fh:
            text = fh.read()
        for no, line in enumerate(text.splitlines(), 1):
            if INCLUDE.match(line):
                errors.append(f"{os.path.basename(f)}:{no}: #include is not allowed "
                              "(NVRTC has no headers; use `// uses:`)")
        parts.append(f'#line 1 "{os.path.basename(f)}"\n{text}\n')
    return "".join(parts)


def compile_file(lib, path, arch):
    """(kernels declared, ptxas entries {name: info}, log, errors, compiled)."""
    errors = []
    name = os.path.basename(path)
    source = assemble(path, errors)
    with open(path, encoding="utf-8") as f:
        declared = KERNEL.findall(f.read())
    if not declared:
        errors.append(f'{name}: no `extern "C" __global__` kernel')
    opts = [b"--std=c++17", f"-arch={arch}".encode(), b"--ptxas-options=-v", b"-lineinfo"]
    prog = ctypes.c_void_p()
    res = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None)
    if res != NVRTC_SUCCESS:
        errors.append(f"{name}: nvrtcCreateProgram: {lib.nvrtcGetErrorString(res).decode()}")
        return declared, {}, "", errors, False
    log = ""
    try:
        arr = (ctypes.c_char_p * len(opts))(*opts)
        res = lib.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        if lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)) == NVRTC_SUCCESS and size.value > 1:
            buf = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(prog, buf)
            log = buf.value.decode(errors="replace")
        if res != NVRTC_SUCCESS:
            errors.append(f"{name}: compilation failed: {lib.nvrtcGetErrorString(res).decode()}")
            return declared, {}, log, errors, False
        if any(FRONTEND_WARNING.search(l) for l in log.splitlines()):
            errors.append(f"{name}: compiler warnings (see log)")
        cubin = ctypes.c_size_t()
        res = lib.nvrtcGetCUBINSize(prog, ctypes.byref(cubin))
        if res != NVRTC_SUCCESS or cubin.value == 0:
            errors.append(f"{name}: no CUBIN (ptxas did not run): {lib.nvrtcGetErrorString(res).decode()}")
        else:
            buf = ctypes.create_string_buffer(cubin.value)
            if lib.nvrtcGetCUBIN(prog, buf) != NVRTC_SUCCESS:
                errors.append(f"{name}: nvrtcGetCUBIN failed")
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return declared, parse_ptxas(log), log, errors, True


def table_rows(path=TABLE):
    """{file.cu: [kernel, ...]} of the `kernels! { "file.cu" { fn name(..) => ..; } }`
    invocation in the CUDA backend's kernel table, or None without that file."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    at = text.rfind("\nkernels! {")
    if at < 0:
        return {}
    body = text[at:]
    files = list(TABLE_FILE.finditer(body))
    rows = {}
    for i, m in enumerate(files):
        end = files[i + 1].start() if i + 1 < len(files) else len(body)
        names = []
        for name, generic in TABLE_ROW.findall(body, m.end(), end):
            # a generic row `fn name<R>(..)`: the f32 kernel `name`, the f64 `name_f64`
            names += [name, name + "_f64"] if generic else [name]
        rows[m.group(1)] = names
    return rows


def parse_ptxas(log):
    """{function: {entry, regs, stack, spill_st, spill_ld}} from a ptxas -v log."""
    funcs, cur = {}, None
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            cur = m.group(1)
            funcs.setdefault(cur, {"entry": True})
            continue
        m = re.search(r"Function properties for (\S+)", line)
        if m:
            cur = m.group(1)
            funcs.setdefault(cur, {"entry": False})
            continue
        if cur is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            funcs[cur].update(stack=int(m.group(1)), spill_st=int(m.group(2)), spill_ld=int(m.group(3)))
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m:
            funcs[cur]["regs"] = int(m.group(1))
    return funcs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="sm_90a", help="target architecture (default sm_90a)")
    ap.add_argument("files", nargs="*", help="kernels/*.cu files (default: all)")
    args = ap.parse_args()

    lib, where = load_nvrtc()
    if lib is None:
        print("check_kernels: NVRTC not found (no loadable libnvrtc.so). Install it with\n"
              "  python3 -m pip install nvidia-cuda-nvrtc\n"
              "or set LENSDIFF_NVRTC to the library (or its folder).", file=sys.stderr)
        if where:
            print("  tried: " + ", ".join(where), file=sys.stderr)
        return EXIT_NO_NVRTC
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    print(f"NVRTC {major.value}.{minor.value} ({where}), target {args.arch}")

    files = args.files or sorted(glob.glob(os.path.join(KERNELS, "*.cu")))
    if not files:
        print("check_kernels: no kernels/*.cu files", file=sys.stderr)
        return 1
    table = table_rows()
    if table is None:
        print(f"check_kernels: no kernel table {os.path.relpath(TABLE, ROOT)}", file=sys.stderr)
        return 1
    if not table:
        print(f"check_kernels: no `kernels! {{` table in {os.path.relpath(TABLE, ROOT)}",
              file=sys.stderr)
        return 1

    failures, rows = [], []
    for path in files:
        declared, funcs, log, errors, compiled = compile_file(lib, path, args.arch)
        name = os.path.basename(path)
        if errors and log.strip():
            print(f"--- {name}: NVRTC log\n{log.rstrip()}\n---", file=sys.stderr)
        failures.extend(errors)
        listed = table.get(name, [])
        for k in declared:
            if k not in listed:
                failures.append(f"{name}: kernel {k} is not a row of {name} in the kernel table "
                                f"({os.path.relpath(TABLE, ROOT)})")
        for k in listed:
            if k not in declared:
                failures.append(f"{name}: the kernel table lists {k}, which {name} does not define")
        if not compiled:
            continue
        for k in declared:
            info = funcs.get(k)
            if info is None or "regs" not in info:
                failures.append(f"{name}: kernel {k} missing from the ptxas report")
                continue
            rows.append((name, k, info["regs"], info.get("stack", 0), info.get("spill_st", 0),
                         info.get("spill_ld", 0)))
            if info.get("spill_st", 0) or info.get("spill_ld", 0):
                failures.append(f"{name}: kernel {k} spills ({info['spill_st']} B stores, "
                                f"{info['spill_ld']} B loads)")
        for f, info in funcs.items():
            if not info["entry"] and (info.get("spill_st", 0) or info.get("spill_ld", 0)):
                failures.append(f"{name}: device function {f} spills")

    if rows:
        w1 = max(len(r[0]) for r in rows)
        w2 = max(len(r[1]) for r in rows)
        print(f"{'file':<{w1}}  {'kernel':<{w2}}  {'regs':>4}  {'stack':>5}  {'spill st':>8}  {'spill ld':>8}")
        for r in rows:
            print(f"{r[0]:<{w1}}  {r[1]:<{w2}}  {r[2]:>4}  {r[3]:>5}  {r[4]:>8}  {r[5]:>8}")
    print(f"{len(rows)} kernels in {len(files)} files")
    if failures:
        for f in failures:
            print(f"error: {f}", file=sys.stderr)
        return 1
    print("all kernels compile, no spills")
    return 0


if __name__ == "__main__":
    sys.exit(main())
