//! The engine's house rules, read from its source: modules depend one way only, and no
//! file or function grows past what a reader can hold.
//!
//! A module may use the modules listed before it in [`LAYERS`], never one after it; inside
//! a folder, a file may use the files listed before it in [`FOLDERS`]. A folder's `mod.rs`
//! is the folder itself (its children may use what it declares, and it re-exports them).
//! A new module must be placed in these lists, so its arrows are a decision, not an accident.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The top-level modules, lowest first: base -> tenancy and config -> spec -> compile ->
/// inspect -> plan -> apply, fleet orchestration above them, then the commands' engines.
const LAYERS: &[&str] = &[
    "base",
    "tenancy",
    "config",
    "connect",
    "spec",
    "compile",
    "project",
    "inspect",
    "plan",
    "apply",
    "fleet",
    "roles",
    "docs",
    "migrate",
    "seed",
    "schemas",
    "scaffold",
    "adopt",
    "lifecycle",
];

/// The files inside each folder, lowest first.
const FOLDERS: &[(&str, &[&str])] = &[
    (
        "base",
        &[
            "yaml",
            "diagnostic",
            "error",
            "files",
            "redact",
            "driver",
            "interrupt",
            "pool",
        ],
    ),
    (
        "tenancy",
        &["tier", "domain", "names", "databases", "target"],
    ),
    (
        "spec",
        &[
            "index",
            "shard",
            "model",
            "meta",
            "effective",
            "load",
            "lint",
        ],
    ),
    (
        "spec::lint",
        &[
            "names",
            "fields",
            "indexes",
            "rules",
            "timeseries",
            "sharding",
            "across",
        ],
    ),
    (
        "compile",
        &[
            "validator",
            "index",
            "shard",
            "bsonify",
            "check",
            "expr",
            "sample",
        ],
    ),
    ("inspect", &["cluster", "normalize"]),
    (
        "plan",
        &["bounds", "diff", "shard", "mongosh", "shard_tests", "tests"],
    ),
    ("apply", &["preflight"]),
    (
        "adopt",
        &[
            "decompile",
            "indexes",
            "infer",
            "assemble",
            "emit",
            "layout",
            "merge",
            "audit",
            "read",
            "pull",
            "write",
        ],
    ),
    ("docs", &["refs"]),
    (
        "lifecycle",
        &[
            "route",
            "wfence",
            "state",
            "sync",
            "follow",
            "mover",
            "catchup",
            "cutover",
            "grace",
            "residency",
            "suspend",
            "export",
            "offboard",
            "provision",
            "restore",
        ],
    ),
    ("fleet", &["registry", "apply", "sharding"]),
    (
        "migrate",
        &[
            "source", "pipeline", "check", "project", "fence", "lock", "ledger", "steps", "status",
            "runner", "down", "repair", "baseline",
        ],
    ),
    (
        "migrate::steps",
        &["write", "backfill", "index", "aggregate", "command"],
    ),
    (
        "seed",
        &["rng", "fixtures", "generate", "tenant", "prepare", "reset"],
    ),
];

/// Files over this many lines are split (see the exceptions below).
const MAX_FILE_LINES: usize = 600;
/// Functions over this many lines are split.
const MAX_FN_LINES: usize = 80;
/// Kept on purpose; each with its reason in the README's source layout section.
const LONG_FILES: &[&str] = &[];
const LONG_FNS: &[&str] = &[];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every source file with its module path (`migrate::runner`, `base`, `lib`).
fn modules() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![src()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src()).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|l| l == "mod") {
                    parts.pop();
                }
                out.push((parts.join("::"), path));
            }
        }
    }
    out.sort();
    out
}

/// The module paths a file names: `crate::a::b::Item` and `super::b` (resolved against the
/// file's own module), as full paths. Comments are skipped; test modules count too.
fn references(module: &str, text: &str, is_dir_module: bool) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    let parent: Vec<&str> = {
        let mut p: Vec<&str> = module.split("::").collect();
        if !is_dir_module {
            p.pop();
        }
        p
    };
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (prefix, base) in [("crate::", Vec::new()), ("super::", parent.clone())] {
            let mut rest = code;
            while let Some(i) = rest.find(prefix) {
                let before = rest[..i].chars().last();
                let tail = &rest[i + prefix.len()..];
                rest = tail;
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let mut path: Vec<String> = base.iter().map(|s| s.to_string()).collect();
                let mut segs = tail.split("::");
                if let Some(first) = segs.next() {
                    // `use crate::{a, b}` or `use super::{a, b}`: each name.
                    if let Some(group) = first.strip_prefix('{') {
                        for name in group.split(['}', ',']).map(str::trim) {
                            let name: String = name
                                .chars()
                                .take_while(|c| c.is_alphanumeric() || *c == '_')
                                .collect();
                            if !name.is_empty() {
                                let mut p = path.clone();
                                p.push(name);
                                out.insert(p);
                            }
                        }
                        continue;
                    }
                    for seg in std::iter::once(first).chain(segs) {
                        let name: String = seg
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if name.is_empty() {
                            break;
                        }
                        let done = name.len() != seg.len();
                        path.push(name);
                        if done {
                            break;
                        }
                    }
                }
                out.insert(path);
            }
        }
    }
    out
}

/// The rank of `name` in `order`, if listed.
fn rank(order: &[&str], name: &str) -> Option<usize> {
    order.iter().position(|n| *n == name)
}

/// Which rule a reference from `from` to `to` (both full module paths) falls under: the
/// list that orders the first segment where they part, if they part below a folder.
fn check_arrow(from: &[String], to: &[String]) -> Result<(), String> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    if common == from.len() || common == to.len() {
        // Into one's own folder root or children: the folder's mod.rs declares them.
        return Ok(());
    }
    let (order, what): (&[&str], String) = if common == 0 {
        (LAYERS, "the top-level layers".to_string())
    } else {
        let folder = from[..common].join("::");
        match FOLDERS.iter().find(|(f, _)| *f == folder) {
            Some((_, order)) => (order, format!("folder `{folder}`")),
            None => return Err(format!("folder `{folder}` is not in FOLDERS")),
        }
    };
    let (a, b) = (&from[common], &to[common]);
    match (rank(order, a), rank(order, b)) {
        (Some(x), Some(y)) if y < x => Ok(()),
        (Some(_), Some(_)) => Err(format!(
            "`{a}` may not use `{b}`: {b} comes after it in {what}"
        )),
        (None, _) => Err(format!("`{a}` is not listed in {what}")),
        (_, None) => Err(format!("`{b}` is not listed in {what}")),
    }
}

/// Module paths that exist as files (so `crate::spec::Field` resolves to `spec`).
fn module_of(path: &[String], known: &BTreeSet<Vec<String>>) -> Vec<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
        .unwrap_or_default()
}

#[test]
fn modules_depend_one_way() {
    let mods = modules();
    let known: BTreeSet<Vec<String>> = mods
        .iter()
        .map(|(m, _)| m.split("::").map(str::to_owned).collect())
        .collect();
    let mut problems = Vec::new();
    for (module, file) in &mods {
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let is_dir = file.file_name().is_some_and(|n| n == "mod.rs");
        let from: Vec<String> = module.split("::").map(str::to_owned).collect();
        for reference in references(module, &text, is_dir) {
            let to = module_of(&reference, &known);
            if to.is_empty() || to == from {
                continue;
            }
            if let Err(why) = check_arrow(&from, &to) {
                problems.push(format!(
                    "{}: uses {}: {why}",
                    file.strip_prefix(src()).unwrap().display(),
                    to.join("::")
                ));
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "backward or unplaced module arrows (see LAYERS and FOLDERS in this test):\n{}",
        problems.join("\n")
    );
}

/// Every function longer than [`MAX_FN_LINES`], as `file:line name (n lines)`: from a line
/// that starts an `fn` to the line that closes its body, by brace depth outside strings.
fn long_functions(file: &Path, text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim_start();
        let starts = {
            let mut rest = l;
            for word in [
                "pub(crate) ",
                "pub(super) ",
                "pub ",
                "const ",
                "async ",
                "unsafe ",
            ] {
                rest = rest.strip_prefix(word).unwrap_or(rest);
            }
            rest.starts_with("fn ")
        };
        if !starts {
            i += 1;
            continue;
        }
        let name: String = l
            .split("fn ")
            .nth(1)
            .unwrap_or("")
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let mut depth = 0i32;
        let mut opened = false;
        let mut j = i;
        'scan: while j < lines.len() {
            let mut in_str = false;
            let mut prev = ' ';
            for c in lines[j].chars() {
                match c {
                    '/' if prev == '/' && !in_str => break,
                    '"' if prev != '\\' => in_str = !in_str,
                    '{' if !in_str => {
                        depth += 1;
                        opened = true;
                    }
                    '}' if !in_str => depth -= 1,
                    ';' if !in_str && !opened && depth == 0 => break 'scan,
                    _ => {}
                }
                prev = c;
            }
            if opened && depth <= 0 {
                break;
            }
            j += 1;
        }
        let len = j + 1 - i;
        if opened && len > MAX_FN_LINES {
            out.push((
                format!(
                    "{}:{} {name}",
                    file.strip_prefix(src()).unwrap().display(),
                    i + 1
                ),
                len,
            ));
        }
        i += 1;
    }
    out
}

#[test]
fn files_and_functions_stay_readable() {
    let mut problems = Vec::new();
    for (_, file) in modules() {
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file.strip_prefix(src()).unwrap().display().to_string();
        let n = text.lines().count();
        if n > MAX_FILE_LINES && !LONG_FILES.contains(&rel.as_str()) {
            problems.push(format!("{rel}: {n} lines (at most {MAX_FILE_LINES})"));
        }
        for (place, len) in long_functions(&file, &text) {
            let name = place.split(' ').next_back().unwrap_or("");
            let key = format!("{rel} {name}");
            if !LONG_FNS.contains(&key.as_str()) {
                problems.push(format!("{place}: {len} lines (at most {MAX_FN_LINES})"));
            }
        }
    }
    assert!(problems.is_empty(), "too long:\n{}", problems.join("\n"));
}

#[test]
fn the_arrow_check_catches_a_backward_arrow() {
    let v = |s: &str| s.split("::").map(str::to_owned).collect::<Vec<_>>();
    assert!(check_arrow(&v("plan"), &v("inspect")).is_ok());
    assert!(check_arrow(&v("spec::lint"), &v("compile")).is_err());
    assert!(check_arrow(&v("migrate::source"), &v("migrate::check")).is_err());
    assert!(check_arrow(&v("migrate::check"), &v("migrate::source")).is_ok());
    assert!(check_arrow(&v("migrate::steps::backfill"), &v("migrate")).is_ok());
    let refs = references(
        "migrate::source",
        "use super::check::lint;\nlet x = crate::apply::describe(e); // crate::seed\n",
        false,
    );
    assert!(refs.contains(&v("migrate::check::lint")));
    assert!(refs.contains(&v("apply::describe")));
    assert!(!refs.iter().any(|r| r[0] == "seed"));
}
