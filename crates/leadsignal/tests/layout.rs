//! The binary's module layout, read from its source: only the dispatcher
//! (`main.rs`) reaches into the command modules, and the graph of modules
//! (a parent to the modules it declares, a module to every module whose
//! items it names) has no cycle, so a module never depends on the one that
//! contains it or on a module that depends on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every source file of the binary with its module path (`server::ingest`;
/// the crate root is the empty path).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "main")) {
                parts.pop();
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

/// The source without its unit tests (they may name anything).
fn product_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn parent(module: &str) -> &str {
    module.rsplit_once("::").map_or("", |(p, _)| p)
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}::{b}")
    }
}

/// The longest module named by the path `segments`, seen from `from`.
fn target(mods: &BTreeMap<String, PathBuf>, from: &str, segments: &[&str]) -> Option<String> {
    let (mut base, rest) = match segments.first() {
        Some(&"crate") => (String::new(), &segments[1..]),
        Some(&"super") => (parent(from).to_string(), &segments[1..]),
        _ => return None,
    };
    let mut rest = rest;
    while rest.first() == Some(&"super") {
        base = parent(&base).to_string();
        rest = &rest[1..];
    }
    let mut found = base.clone();
    for seg in rest {
        let next = join(&found, seg);
        if !mods.contains_key(&next) {
            break;
        }
        found = next;
    }
    Some(found)
}

fn edges(mods: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeSet<String>> {
    let path_re = |text: &str| -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let rest = &text[i..];
            if (rest.starts_with("crate::") || rest.starts_with("super::"))
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
            {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                out.push(
                    rest[..end]
                        .split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                );
                i += end.max(1);
            } else {
                i += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        out
    };
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in mods {
        let set = out.entry(module.clone()).or_default();
        for segments in path_re(&product_code(path)) {
            let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
            if let Some(t) = target(mods, module, &segs) {
                if &t != module {
                    set.insert(t);
                }
            }
        }
    }
    // A parent depends on the modules it declares.
    for module in mods.keys().filter(|m| !m.is_empty()) {
        out.entry(parent(module).to_string())
            .or_default()
            .insert(module.clone());
    }
    out
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let at = path.iter().position(|p| p == m).unwrap();
                    let mut c = path[at..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str()) {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn only_the_dispatcher_reaches_into_command_modules() {
    let mods = modules(&src());
    for (module, path) in &mods {
        if module.is_empty() || module.starts_with("cmd") {
            continue;
        }
        let code = product_code(path);
        assert!(
            !code.contains("crate::cmd") && !code.contains("super::cmd"),
            "{} names a command module",
            path.display()
        );
    }
    // Commands do not use each other either.
    for (module, path) in mods.iter().filter(|(m, _)| m.starts_with("cmd::")) {
        let code = product_code(path);
        assert!(
            !code.contains("super::") && !code.contains("crate::cmd"),
            "{module} names another command module"
        );
    }
}

#[test]
fn the_module_graph_has_no_cycle() {
    let mods = modules(&src());
    assert!(mods.contains_key("server::ingest") && mods.contains_key("bench::data"));
    let graph = edges(&mods);
    // The check sees edges: a server module names its state.
    assert!(graph["server::api"].contains("server::state"), "{graph:?}");
    if let Some(c) = cycle(&graph) {
        panic!("module cycle: {}", c.join(" -> "));
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("a::b".into());
    graph.entry("a::b".into()).or_default().insert("a".into());
    assert_eq!(
        cycle(&graph),
        Some(vec!["a".to_string(), "a::b".to_string(), "a".to_string()])
    );
}
