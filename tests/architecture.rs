//! Layers point down: every `crate::module` path in `src/` names a module at
//! or above its own in the list of docs/architecture.md ("Layers"), and every
//! module of `src/lib.rs` is in that list.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The module order between the `layers` markers of docs/architecture.md.
fn layer_order(doc: &str) -> Vec<String> {
    let (begin, end) = ("<!-- layers: begin -->", "<!-- layers: end -->");
    let a = doc.find(begin).expect("layers: begin marker") + begin.len();
    let b = doc.find(end).expect("layers: end marker");
    doc[a..b]
        .lines()
        .filter_map(|l| l.split('`').nth(1))
        .map(str::to_string)
        .collect()
}

/// The top-level modules declared in `src/lib.rs`.
fn lib_modules(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect()
}

/// `(line, target)` of every `crate::target` path outside comments.
fn crate_paths(source: &str) -> Vec<(usize, String)> {
    let mut out = vec![];
    for (i, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(p) = rest.find("crate::") {
            let after = &rest[p + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((i + 1, name));
            }
            rest = after;
        }
    }
    out
}

/// Violations in `files` (`(module, path, source)`) of the order `order`.
fn violations(order: &[String], files: &[(String, String, String)]) -> Vec<String> {
    let rank = |m: &str| order.iter().position(|o| o == m);
    let mut bad = vec![];
    for (module, path, source) in files {
        let Some(own) = rank(module) else {
            bad.push(format!(
                "{path}: module `{module}` is not in the layer list"
            ));
            continue;
        };
        for (line, target) in crate_paths(source) {
            match rank(&target) {
                Some(t) if t <= own => {}
                Some(_) => bad.push(format!(
                    "{path}:{line}: `{module}` uses `crate::{target}`, a higher layer"
                )),
                // items re-exported at the root (crate::Grid, crate::Result)
                None if target.starts_with(|c: char| c.is_ascii_uppercase()) => {}
                None => bad.push(format!(
                    "{path}:{line}: `crate::{target}` is not in the layer list"
                )),
            }
        }
    }
    bad
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let root = Path::new(ROOT);
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let order = layer_order(&doc);
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let modules = lib_modules(&lib);
    for m in &modules {
        assert!(
            order.contains(m),
            "src/lib.rs declares `{m}`, missing from docs/architecture.md's layers"
        );
    }
    for m in &order {
        assert!(
            modules.contains(m),
            "docs/architecture.md lists `{m}`, not a module of src/lib.rs"
        );
    }
    let mut paths = vec![];
    rust_files(&root.join("src"), &mut paths);
    let files: Vec<(String, String, String)> = paths
        .iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(root.join("src")).unwrap();
            let first = rel.components().next()?.as_os_str().to_str()?.to_string();
            let module = first.trim_end_matches(".rs").to_string();
            // the binary and the crate root sit above every layer
            if module == "bin" || module == "lib" {
                return None;
            }
            let path = format!("src/{}", rel.display());
            Some((module, path, std::fs::read_to_string(p).unwrap()))
        })
        .collect();
    assert!(files.len() > 40, "found only {} source files", files.len());
    let bad = violations(&order, &files);
    assert!(bad.is_empty(), "layers bend upwards:\n{}", bad.join("\n"));
}

/// The check fails on an upward path, an unknown module and an unlisted
/// module, and ignores comments and root re-exports.
#[test]
fn the_layer_check_can_fail() {
    let order: Vec<String> = ["error", "grid", "prior", "nn"].map(String::from).to_vec();
    let file = |m: &str, src: &str| (m.to_string(), format!("src/{m}.rs"), src.to_string());
    let ok = [
        file(
            "grid",
            "use crate::error::Result;\n// crate::nn in a comment\n",
        ),
        file("nn", "use crate::prior::X; use crate::Grid;"),
    ];
    assert!(violations(&order, &ok).is_empty());
    let bad = [
        file("prior", "fn f() { crate::nn::g() }"),
        file("grid", "use crate::cosmo::X;"),
        file("plot", "use crate::error::Result;"),
    ];
    let v = violations(&order, &bad);
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(v[0].contains("src/prior.rs:1") && v[0].contains("higher layer"));
    assert!(v[1].contains("crate::cosmo"));
    assert!(v[2].contains("`plot` is not in the layer list"));
}
