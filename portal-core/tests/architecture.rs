//! The architecture invariants of `docs/architecture.md` that the compiler does not keep,
//! checked over the source text:
//!
//! - **Layers**: the top-level modules of `portal-core` import each other without a
//!   circle (the shared vocabulary at the bottom imports no service);
//! - **One gate**: no service decides access outside `portal_core::gate`: nothing outside
//!   the gate and the authorizers themselves builds an `AccessRequest` or calls an
//!   authorizer's `check`/`is_allowed`.
//!
//! Comments, string literals and test modules are left out of what is read.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, helpers included"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("portal-core sits in the workspace")
        .to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
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

/// The code of a file: comments, string and char literals blanked, and everything from the
/// first `#[cfg(test)]` on (the crate keeps its unit tests last, or in `tests.rs` files,
/// which are skipped whole).
fn code_of(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if at(i + 1) == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == Some('*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            'r' if !is_ident(&chars, i) && matches!(at(i + 1), Some('"' | '#')) => {
                // A raw string: r"…" or r#"…"#.
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                if at(i + 1 + hashes) != Some('"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                i += 2 + hashes;
                while i < chars.len() && !(chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|c| *c == '#')) {
                    i += 1;
                }
                i += 1 + hashes;
                out.push_str("\"\"");
            }
            '\'' if at(i + 2) == Some('\'') || at(i + 1) == Some('\\') => {
                // A char literal ('x' or '\n'); a lifetime has no closing quote this close.
                match chars[i + 1..].iter().position(|c| *c == '\'').map(|p| i + 1 + p) {
                    Some(end) if end - i <= 10 => {
                        i = end + 1;
                        out.push_str("' '");
                    }
                    _ => {
                        out.push('\'');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// The top-level modules a piece of code names through `crate::…`, including those
/// inside `crate::{…}` groups.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `portal_crate::`, `$crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.insert(first_segment(&item));
        } else {
            out.insert(first_segment(rest));
        }
    }
    out.remove("");
    out
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Each top-level module of `portal-core` and the other top-level modules its code names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace().join("portal-core/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&src).ok()?;
            let first = rel.components().next()?.as_os_str().to_str()?;
            Some(first.trim_end_matches(".rs").to_owned())
        })
        .filter(|m| m != "lib")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let module = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a path")
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" {
            continue;
        }
        for named in named_modules(&code_of(file)) {
            if named != module && modules.contains(&named) {
                graph.get_mut(&module).expect("a module").insert(named);
            }
        }
    }
    graph
}

/// A circle in `graph`, as the modules along it, if there is one.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path
                    .iter()
                    .position(|n| n == node)
                    .expect("an open node is on the path");
                let mut circle = path[start..].to_vec();
                circle.push(node.to_owned());
                return Some(circle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in &graph[node] {
            if let Some(circle) = visit(next, graph, marks, path) {
                return Some(circle);
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(circle);
        }
    }
    None
}

#[test]
fn the_modules_of_portal_core_import_each_other_without_a_circle() {
    let graph = module_graph();
    assert!(graph.len() > 10, "the crate's modules were found: {graph:?}");
    if let Some(circle) = find_circle(&graph) {
        panic!(
            "portal-core's modules import each other in a circle: {}\nthe imports: {graph:#?}",
            circle.join(" -> ")
        );
    }
}

/// The shared vocabulary imports no service: `principal` and `access` name only the
/// modules below them.
#[test]
fn the_vocabulary_imports_no_service() {
    let graph = module_graph();
    let below: BTreeSet<&str> = ["ids", "time", "error", "store", "principal"].into();
    for vocabulary in ["principal", "access"] {
        let named: Vec<&String> = graph[vocabulary]
            .iter()
            .filter(|m| !below.contains(m.as_str()))
            .collect();
        assert!(named.is_empty(), "`{vocabulary}` imports {named:?}");
    }
}

#[test]
fn the_checker_finds_a_circle_and_reads_only_code() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), ["b".to_owned()].into()),
        ("b".to_owned(), ["c".to_owned()].into()),
        ("c".to_owned(), ["a".to_owned()].into()),
    ]
    .into();
    assert_eq!(
        find_circle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let code = "use crate::{access::{Name, RoleName}, ids::OrgId};\n// crate::tenancy\nlet s = \"crate::policy\";\nuse crate::gate::Gate;";
    assert_eq!(
        named_modules(&strip(code)),
        ["access", "gate", "ids"].map(String::from).into()
    );
}

fn strip(code: &str) -> String {
    let dir = std::env::temp_dir().join(format!("portal-architecture-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("a temp dir");
    let file = dir.join("sample.rs");
    fs::write(&file, code).expect("the sample is written");
    let out = code_of(&file);
    fs::remove_dir_all(&dir).expect("the temp dir is removed");
    out
}

/// Where deciding access is allowed: the gate, and the authorizers themselves (the role
/// table in `portal_core::access`, the casbin authorizer in `portal-auth`).
fn may_decide(path: &Path) -> bool {
    let root = workspace();
    [
        "portal-core/src/gate",
        "portal-core/src/access",
        "portal-auth/src/casbin_authz",
    ]
    .iter()
    .any(|allowed| path.starts_with(root.join(allowed)))
}

/// What deciding access outside the gate looks like in code.
fn direct_decisions(code: &str) -> Vec<&'static str> {
    let squeezed: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    [
        ("AccessRequest {", "builds an AccessRequest"),
        ("authorizer.check(", "calls an authorizer's check"),
        ("replica.check(", "calls an authorizer's check"),
        ("Authorizer::check(", "calls Authorizer::check"),
        (".is_allowed(&", "calls an authorizer's is_allowed"),
    ]
    .into_iter()
    .filter(|(pattern, _)| squeezed.replace(" (", "(").contains(pattern))
    .map(|(_, what)| what)
    .collect()
}

#[test]
fn no_service_decides_access_outside_the_gate() {
    let root = workspace();
    let mut files = Vec::new();
    for dir in ["portal-core/src", "portal-auth/src", "portal-adapters/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    for example in fs::read_dir(root.join("examples")).expect("the examples") {
        let src = example.expect("an example").path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "the workspace's sources were found");
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !may_decide(f))
        .flat_map(|f| {
            let shown = f.strip_prefix(&root).unwrap_or(f).display().to_string();
            direct_decisions(&code_of(f))
                .into_iter()
                .map(move |what| format!("{shown} {what}"))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "access is decided outside portal_core::gate (decide through the Gate instead):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_gate_check_sees_a_direct_call() {
    assert_eq!(
        direct_decisions("let d = self.authorizer.check(&request)?;"),
        ["calls an authorizer's check"]
    );
    assert_eq!(
        direct_decisions("let r = AccessRequest { principal, domain, roles, object, action };"),
        ["builds an AccessRequest"]
    );
    assert!(direct_decisions("if decision.is_allowed() {}").is_empty());
}
