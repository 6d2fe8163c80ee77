//! The import graph of `src/`: no cycle, and no module importing a layer above its own.
//!
//! Reads every library file under `src/`, collects the `crate::…` and `super::…` paths it
//! names (outside `#[cfg(test)]` modules), resolves each to the module file that defines it
//! (following a parent's `pub use child::Name` re-exports), and checks the result against
//! [`LAYERS`]. A parent module may use its own children (it is their facade); every other edge
//! counts. The binary (`main.rs`, `cli/`) sits above everything and is not read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate's layers, lowest first. A module may import modules of its own layer or below.
const LAYERS: &[&[&str]] = &[
    &["failpoints", "shutdown", "domain", "clock"],
    &["error"],
    &["schema"],
    &["transform", "storage", "partition"],
    &["config"],
    &["registry", "table"],
    &["decode"],
    &["source"],
    &["write"],
    &["metrics"],
    &["pipeline"],
    &["status", "demo"],
];

/// A module path below the crate root, e.g. `["pipeline", "ingest"]`.
type Module = Vec<String>;

struct Crate {
    /// Module → its source text with comments and `#[cfg(test)]` modules removed.
    files: BTreeMap<Module, String>,
    /// (parent module, name) → the child module a parent re-exports it from.
    reexports: BTreeMap<(Module, String), Module>,
}

fn module_of(rel: &Path) -> Module {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Removes comments, string literals' contents and `#[cfg(test)]` items.
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if text[i..].starts_with("//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if text[i..].starts_with("/*") {
            i += text[i..].find("*/").map_or(bytes.len() - i, |e| e + 2);
        } else if bytes[i] == b'"' && !text[..i].ends_with('\'') {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if text[i..].starts_with("#[cfg(test)]") {
            // Skip the attribute and the item after it: up to its `;` or its balanced `{…}`.
            i += "#[cfg(test)]".len();
            let mut depth = 0usize;
            while i < bytes.len() {
                match bytes[i] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    b';' if depth == 0 => {
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn ident_at(s: &str) -> Option<(&str, &str)> {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| (&s[..end], &s[end..]))
}

/// Parses the use tree or path after `prefix::`, pushing every full path it names.
/// Returns the rest of the text.
fn paths<'a>(mut s: &'a str, prefix: &[String], out: &mut Vec<Module>) -> &'a str {
    let mut path = prefix.to_vec();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('{') {
            s = rest;
            loop {
                s = paths(s, &path, out).trim_start();
                if let Some(rest) = s.strip_prefix(',') {
                    s = rest;
                } else {
                    return s.trim_start().strip_prefix('}').unwrap_or(s);
                }
                if let Some(rest) = s.trim_start().strip_prefix('}') {
                    return rest;
                }
            }
        }
        let Some((ident, rest)) = ident_at(s) else {
            out.push(path);
            return s;
        };
        path.push(ident.to_string());
        s = rest;
        match s.strip_prefix("::") {
            Some(rest) => s = rest,
            None => {
                out.push(path);
                return s;
            }
        }
    }
}

impl Crate {
    fn read(src: &Path) -> Crate {
        let mut all = Vec::new();
        rust_files(src, &mut all);
        let mut files = BTreeMap::new();
        for path in all {
            let rel = path.strip_prefix(src).expect("below src");
            let first = rel.components().next().expect("non-empty");
            if rel == Path::new("main.rs") || first.as_os_str() == "cli" {
                continue; // the binary: the top layer
            }
            if rel.file_name().is_some_and(|n| n == "tests.rs") {
                continue; // a `#[cfg(test)] mod tests;` file
            }
            let text = std::fs::read_to_string(&path).expect("read source file");
            files.insert(module_of(rel), strip(&text));
        }
        let mut reexports = BTreeMap::new();
        for (module, text) in &files {
            for (at, _) in text.match_indices("pub use ") {
                let rest = &text[at + "pub use ".len()..];
                let Some((child, _)) = ident_at(rest) else {
                    continue;
                };
                let mut child_module = module.clone();
                child_module.push(child.to_string());
                if !files.contains_key(&child_module) {
                    continue;
                }
                let mut named = Vec::new();
                paths(rest, &[], &mut named);
                for p in named {
                    if let Some(name) = p.last() {
                        reexports.insert((module.clone(), name.clone()), child_module.clone());
                    }
                }
            }
        }
        Crate { files, reexports }
    }

    /// The module file that defines what `path` names.
    fn resolve(&self, path: &[String]) -> Option<Module> {
        let found = (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| self.files.contains_key(m))?;
        if let Some(name) = path.get(found.len())
            && let Some(child) = self.reexports.get(&(found.clone(), name.clone()))
        {
            return Some(child.clone());
        }
        Some(found)
    }

    /// Module → the modules it imports (its own descendants and itself left out).
    fn edges(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        let mut edges = BTreeMap::new();
        for (module, text) in &self.files {
            let mut named = Vec::new();
            for (at, _) in text.match_indices("crate::") {
                let before = text[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue; // e.g. `kappa_lake_crate::` or `$crate::`
                }
                paths(&text[at + "crate::".len()..], &[], &mut named);
            }
            // `super::` from `a/b.rs` (module a::b) names a's items.
            let parent: Module = module[..module.len().saturating_sub(1)].to_vec();
            for (at, _) in text.match_indices("super::") {
                let before = text[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                paths(&text[at + "super::".len()..], &parent, &mut named);
            }
            let targets: BTreeSet<Module> = named
                .iter()
                .filter_map(|p| self.resolve(p))
                .filter(|t| !t.starts_with(module) && !t.is_empty())
                .collect();
            edges.insert(module.clone(), targets);
        }
        edges
    }
}

fn layer_of(module: &Module) -> Option<usize> {
    let top = module.first()?;
    LAYERS.iter().position(|l| l.contains(&top.as_str()))
}

fn name(m: &Module) -> String {
    m.join("::")
}

/// A cycle in `edges`, if there is one, as the modules along it.
fn find_cycle(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        m: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        marks: &mut BTreeMap<Module, Mark>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        match marks.get(m) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = stack
                    .iter()
                    .position(|s| s == m)
                    .expect("open is on the stack");
                let mut cycle = stack[start..].to_vec();
                cycle.push(m.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(m.clone(), Mark::Open);
        stack.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(m.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut marks, &mut Vec::new()))
}

fn src_crate() -> Crate {
    Crate::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn every_module_has_a_layer_and_imports_none_above_it() {
    let krate = src_crate();
    let mut problems = Vec::new();
    for (module, targets) in krate.edges() {
        if module.is_empty() {
            continue; // lib.rs declares the modules
        }
        let Some(own) = layer_of(&module) else {
            problems.push(format!(
                "`{}` has no layer: add it to LAYERS",
                name(&module)
            ));
            continue;
        };
        for target in targets {
            let theirs = layer_of(&target).unwrap_or(usize::MAX);
            if theirs > own {
                problems.push(format!(
                    "`{}` (layer {own}) imports `{}` (layer {theirs})",
                    name(&module),
                    name(&target)
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_import_graph_has_no_cycle() {
    let edges = src_crate().edges();
    assert!(edges.len() > 20, "read too few modules: {:?}", edges.keys());
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<_> = cycle.iter().map(name).collect();
        panic!("import cycle: {}", names.join(" → "));
    }
}

#[test]
fn the_checker_sees_use_trees_super_paths_and_reexports() {
    let mut found = Vec::new();
    paths(
        "{a::B, c::{d::E, F}, g} rest",
        &["x".to_string()],
        &mut found,
    );
    let names: Vec<_> = found.iter().map(name).collect();
    assert_eq!(names, ["x::a::B", "x::c::d::E", "x::c::F", "x::g"]);
    let stripped =
        strip("use crate::a; // crate::b\n#[cfg(test)]\nmod tests { use crate::c; }\n\"crate::d\"");
    assert!(stripped.contains("crate::a") && !stripped.contains("crate::b"));
    assert!(!stripped.contains("crate::c") && !stripped.contains("crate::d"));
    let cyclic: BTreeMap<Module, BTreeSet<Module>> = [
        (vec!["a".to_string()], [vec!["b".to_string()]].into()),
        (vec!["b".to_string()], [vec!["a".to_string()]].into()),
    ]
    .into();
    assert!(find_cycle(&cyclic).is_some());
}
