//! The shape of the code, checked from its source text: no two files import each other in a
//! circle (directly or through others), each top-level folder imports only what its `mod.rs`
//! (or, for a single-file module, its top comment) lists after "May import:", and the library
//! prints nothing (the binary draws progress and reports errors).
//!
//! An import is any `crate::…` or `super::…` path in code (comments, doc links and string
//! literals are not code), resolved to the file of the longest module prefix it names. A
//! folder's `mod.rs` declaring or re-exporting its own children is not an import of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path ("net::cpu::layers"; "" for the crate root) and the file that holds it.
type Modules = BTreeMap<String, PathBuf>;
/// file → files it imports, with the path text that made each import (for the message).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/` ("src/net/cpu/mod.rs" → "net::cpu").
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts.join("::")
}

/// The code of a Rust file without comments, string and char literals (replaced by spaces).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&chars, i) {
            // Raw string r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push(' ');
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else if c == '\'' && is_char_literal(&chars, i) {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// `'a'`, `'\n'`, `'\u{1F600}'` — not a lifetime (`'a`).
fn is_char_literal(chars: &[char], i: usize) -> bool {
    matches!((chars.get(i + 1), chars.get(i + 2)), (Some('\\'), _) | (Some(_), Some('\'')))
}

/// Every `crate::a::b…` and `super::…::a…` path in `code`, as absolute module paths (segments
/// of lower-case identifiers; what follows a `{` is not needed to find the file).
fn paths_in(code: &str, module: &str, is_folder_module: bool) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let starts = (code[i..].starts_with("crate::") || code[i..].starts_with("super::")) && (i == 0 || !ident(bytes[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut segments: Vec<&str> = Vec::new();
        loop {
            let start = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            if start == j {
                break;
            }
            segments.push(&code[start..j]);
            if code[j..].starts_with("::") {
                j += 2;
            } else {
                break;
            }
        }
        let text = code[i..j].trim_end_matches("::").to_string();
        // Resolve super:: against this file's module (a folder's mod.rs is its module itself).
        let mut base: Vec<&str> = if module.is_empty() { vec![] } else { module.split("::").collect() };
        let mut rest = &segments[..];
        if rest.first() == Some(&"crate") {
            base.clear();
            rest = &rest[1..];
        } else {
            if !is_folder_module {
                base.pop(); // x.rs: `super` is its folder's module; the first pop makes `self` its parent
            }
            let mut first = true;
            while rest.first() == Some(&"super") {
                if !first || is_folder_module {
                    base.pop();
                }
                first = false;
                rest = &rest[1..];
            }
        }
        let absolute: Vec<&str> = base.into_iter().chain(rest.iter().copied()).collect();
        found.push((absolute.join("::"), text));
        i = j.max(i + 1);
    }
    found
}

/// The file a module path imports: its longest prefix that is a module of `modules`.
fn resolve<'a>(path: &str, modules: &'a Modules) -> Option<&'a str> {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    (1..=segments.len()).rev().map(|n| segments[..n].join("::")).find_map(|p| modules.get_key_value(&p).map(|(k, _)| k.as_str()))
}

/// The import graph of the modules whose files are `files` (paths relative to `src/`), with
/// their source texts.
fn import_graph(files: &[(PathBuf, String)]) -> Graph {
    let modules: Modules = files.iter().map(|(f, _)| (module_of(f), f.clone())).collect();
    let mut graph = Graph::new();
    for (file, text) in files {
        let module = module_of(file);
        let is_folder_module = matches!(file.file_name().and_then(|n| n.to_str()), Some("mod.rs" | "lib.rs" | "main.rs"));
        let edges = graph.entry(module.clone()).or_default();
        for (path, text) in paths_in(&code_only(text), &module, is_folder_module) {
            let Some(target) = resolve(&path, &modules) else { continue };
            let declares_own_child = is_folder_module && (module.is_empty() || target.starts_with(&format!("{module}::")));
            if target == module || target.is_empty() || declares_own_child {
                continue;
            }
            edges.entry(target.to_string()).or_insert(text);
        }
    }
    graph
}

/// Strongly connected components of more than one module (Tarjan), each as its sorted modules.
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

/// One line per circle, with the imports that tie it.
fn describe(graph: &Graph, circles: &[Vec<String>]) -> String {
    let mut lines = Vec::new();
    for circle in circles {
        lines.push(format!("circle: {}", circle.join(", ")));
        for from in circle {
            for (to, text) in &graph[from] {
                if circle.contains(to) {
                    lines.push(format!("  {from} -> {to} ({text})"));
                }
            }
        }
    }
    lines.join("\n")
}

/// The library's files (everything under src/ but the binary's main.rs and cli/), or the
/// binary's, relative to src/, with their texts.
fn crate_files(binary: bool) -> Vec<(PathBuf, String)> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut out: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|f| f.strip_prefix(&root).unwrap().to_path_buf())
        .filter(|f| (f == Path::new("main.rs") || f.starts_with("cli")) == binary)
        .map(|f| {
            let text = std::fs::read_to_string(root.join(&f)).unwrap();
            (f, text)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_library_has_no_import_circles() {
    let files = crate_files(false);
    assert!(files.len() > 30, "read only {} files of the library", files.len());
    let graph = import_graph(&files);
    let edges: usize = graph.values().map(|e| e.len()).sum();
    assert!(edges > 100, "found only {edges} imports: the reader is broken");
    let found = circles(&graph);
    assert!(found.is_empty(), "import circles in the library:\n{}", describe(&graph, &found));
}

#[test]
fn the_binary_has_no_import_circles() {
    let files = crate_files(true);
    assert!(files.len() >= 5, "read only {} files of the binary", files.len());
    let graph = import_graph(&files);
    let found = circles(&graph);
    assert!(found.is_empty(), "import circles in the binary:\n{}", describe(&graph, &found));
}

/// The names in backticks on a file's "May import:" line (`None` without one).
fn may_import(text: &str) -> Option<BTreeSet<String>> {
    let line = text.lines().take_while(|l| l.starts_with("//!")).find(|l| l.contains("May import:"))?;
    let after = &line[line.find("May import:").unwrap()..];
    Some(after.split('`').skip(1).step_by(2).map(str::to_string).collect())
}

#[test]
fn each_top_level_module_imports_only_what_it_declares() {
    let files = crate_files(false);
    let graph = import_graph(&files);
    let top = |module: &str| module.split("::").next().unwrap_or_default().to_string();
    let declared: BTreeMap<String, BTreeSet<String>> = files
        .iter()
        .filter(|(f, _)| f.components().count() == 1 && f != Path::new("lib.rs") || f.file_name().is_some_and(|n| n == "mod.rs") && f.components().count() == 2)
        .map(|(f, text)| {
            let module = module_of(f);
            let allowed = may_import(text).unwrap_or_else(|| panic!("src/{}: no \"May import:\" line in its top comment", f.display()));
            (module, allowed)
        })
        .collect();
    assert!(declared.len() >= 7, "found the rules of only {} top-level modules", declared.len());
    let mut breaches = Vec::new();
    for (from, edges) in &graph {
        let from_top = top(from);
        for (to, text) in edges {
            let to_top = top(to);
            if from_top != to_top && !declared[&from_top].contains(&to_top) {
                breaches.push(format!("{from} -> {to} ({text}): `{from_top}` may import only {:?}", declared[&from_top]));
            }
        }
    }
    assert!(breaches.is_empty(), "imports against the layering:\n{}", breaches.join("\n"));
}

#[test]
fn the_library_prints_nothing() {
    let mut printing = Vec::new();
    for (file, text) in crate_files(false) {
        // Unit tests may print what they measured.
        let code = code_only(text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default());
        for what in ["println!", "eprintln!", "print!(", "eprint!(", "indicatif"] {
            if code.contains(what) {
                printing.push(format!("src/{}: {what}", file.display()));
            }
        }
    }
    assert!(printing.is_empty(), "the library prints (the binary should):\n{}", printing.join("\n"));
}

/// The checker itself finds a back-import, a circle through a third file, and not a folder's
/// declaration of its own children or a path in a comment or a string.
#[test]
fn the_checker_finds_what_it_should() {
    let file = |path: &str, text: &str| (PathBuf::from(path), text.to_string());
    let clean = vec![
        file("lib.rs", "pub mod a;\npub mod b;\n"),
        file("a/mod.rs", "pub mod x;\npub use x::Thing;\n"),
        file("a/x.rs", "use super::helper;\n// crate::b::y is only mentioned\nconst S: &str = \"crate::b::y\";\n"),
        file("b/mod.rs", "pub mod y;\n"),
        file("b/y.rs", "use crate::a::x::Thing;\n"),
    ];
    let graph = import_graph(&clean);
    assert_eq!(graph["b::y"].keys().collect::<Vec<_>>(), ["a::x"]);
    assert_eq!(graph["a::x"].keys().collect::<Vec<_>>(), ["a"], "super:: from x.rs is its folder's mod.rs");
    assert!(graph["a"].is_empty(), "a folder declaring its children imports nothing");
    assert!(circles(&graph).is_empty());

    let mut back = clean.clone();
    back[2] = file("a/x.rs", "use crate::b::y::Other;\n");
    let found = circles(&import_graph(&back));
    assert_eq!(found, [vec!["a::x".to_string(), "b::y".to_string()]]);

    let mut through_third = clean.clone();
    through_third[3] = file("b/mod.rs", "pub mod y;\nfn f() { super::a::helper(); }\n");
    through_third[1] = file("a/mod.rs", "pub mod x;\nfn g() -> crate::b::y::Other { todo!() }\n");
    let found = circles(&import_graph(&through_third));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0], ["a", "a::x", "b::y"].map(String::from), "{found:?}");

    assert_eq!(may_import("//! What it is.\n//! May import: `error`, `net`.\nuse x;"), Some(["error".to_string(), "net".to_string()].into()));
}
