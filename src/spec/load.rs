//! From files to typed specs: discover spec files, parse YAML with positions, validate
//! against the meta-schema, then deserialize. Every failure is a positioned finding.

use std::path::{Path, PathBuf};

use super::meta;
use super::model::CollectionSpec;
use crate::diagnostic::{dotted, Finding};
use crate::yaml::{self, pointer_segment, Document};

/// A spec that parsed and matched the meta-schema.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The file, as given or relative to the project root.
    pub file: PathBuf,
    /// Path relative to the spec directory, when the file is inside it.
    pub relative: Option<PathBuf>,
    pub doc: Document,
    pub spec: CollectionSpec,
}

/// Specs that loaded, and findings for those that did not.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub specs: Vec<LoadedSpec>,
    pub findings: Vec<Finding>,
    /// Collection names of files that did not load, so references to them are not
    /// reported as unknown on top of the file's own errors.
    pub unloaded_collections: Vec<String>,
}

/// Where file-level findings point (the file as a whole).
const FILE_START: crate::yaml::Pos = crate::yaml::Pos { line: 1, col: 1 };

/// The largest spec, migration or seed file caas reads (they are hand-written; a larger
/// one is a mistake or an attack, and is refused before it is read).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Every `.yaml`/`.yml` file under `dir`, sorted, so output never depends on the file system.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let (files, problems) = discover_checked(dir);
    match problems
        .into_iter()
        .find(|f| f.severity == crate::diagnostic::Severity::Error)
    {
        Some(f) => Err(std::io::Error::other(f.to_string())),
        None => Ok(files),
    }
}

/// [`discover`], with what it passed over: only regular files are read (a FIFO named
/// `x.yaml` would block a read forever; devices and sockets likewise), a symlink loop is
/// followed once and reported once, and every I/O error names its path.
pub fn discover_checked(dir: &Path) -> (Vec<PathBuf>, Vec<Finding>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    let skip = |path: &Path, what: String, fix: &str| {
        Finding::warning("skipped-file", path, FILE_START, "").says(what, fix.to_owned())
    };
    while let Some(d) = stack.pop() {
        match std::fs::canonicalize(&d) {
            Ok(real) if !seen.insert(real.clone()) => {
                problems.push(skip(
                    &d,
                    format!(
                        "a symlink loop: this folder is {} again; read once",
                        real.display()
                    ),
                    "remove the link",
                ));
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                problems.push(unreadable(&d, "read the folder", &e));
                continue;
            }
        }
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) => {
                problems.push(unreadable(&d, "read the folder", &e));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    problems.push(unreadable(&d, "read the folder", &e));
                    continue;
                }
            };
            let path = entry.path();
            // Follows symlinks: a link to a spec is a spec.
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(skip(
                        &path,
                        format!("cannot be read ({e}); a dangling link?"),
                        "remove it or fix its target",
                    ));
                    continue;
                }
            };
            let yaml = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            if meta.is_dir() {
                stack.push(path);
            } else if !yaml {
            } else if !meta.is_file() {
                problems.push(skip(
                    &path,
                    "not a regular file (a FIFO, socket or device); skipped".into(),
                    "replace it with a regular file",
                ));
            } else if meta.len() > MAX_FILE_BYTES {
                problems.push(
                    Finding::error("file-too-large", &path, FILE_START, "").says(
                        format!(
                            "the file is {} bytes, over the {} byte limit; not read",
                            meta.len(),
                            MAX_FILE_BYTES
                        ),
                        "split it, or remove what does not belong in a spec",
                    ),
                );
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    (out, problems)
}

fn unreadable(path: &Path, doing: &str, e: &std::io::Error) -> Finding {
    Finding::error("unreadable", path, FILE_START, "").says(
        format!("cannot {doing}: {e}"),
        "check the path and its permissions",
    )
}

/// Read a hand-written file: regular files only, at most [`MAX_FILE_BYTES`].
#[allow(clippy::result_large_err)] // a Finding is the error every loader returns
pub fn read_text(file: &Path) -> Result<String, Finding> {
    let meta = std::fs::metadata(file).map_err(|e| unreadable(file, "read the file", &e))?;
    if !meta.is_file() {
        return Err(Finding::error("unreadable", file, FILE_START, "").says(
            "not a regular file (a FIFO, socket or device); not read".to_string(),
            "replace it with a regular file",
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Finding::error("file-too-large", file, FILE_START, "").says(
            format!(
                "the file is {} bytes, over the {} byte limit; not read",
                meta.len(),
                MAX_FILE_BYTES
            ),
            "split it, or remove what does not belong there",
        ));
    }
    std::fs::read_to_string(file).map_err(|e| unreadable(file, "read the file", &e))
}

/// Load one file. `specs_dir` lets lint compare the folder with the spec's domain.
pub fn load_file(file: &Path, specs_dir: Option<&Path>) -> Result<LoadedSpec, Vec<Finding>> {
    let text = read_text(file).map_err(|f| vec![f])?;
    let doc = yaml::parse(&text).map_err(|e| {
        let fix = e.fix();
        vec![Finding::error("yaml-syntax", file, e.pos, "").says(e.message, fix)]
    })?;
    let findings = meta::check(&doc, file);
    if !findings.is_empty() {
        return Err(findings);
    }
    let spec = deserialize(&doc, file)?;
    let relative = specs_dir
        .and_then(|d| file.strip_prefix(d).ok())
        .map(Path::to_path_buf);
    Ok(LoadedSpec {
        file: file.to_path_buf(),
        relative,
        doc,
        spec,
    })
}

fn deserialize(doc: &Document, file: &Path) -> Result<CollectionSpec, Vec<Finding>> {
    serde_path_to_error::deserialize(&doc.value).map_err(|e| {
        let mut pointer = String::new();
        for seg in e.path().iter() {
            use serde_path_to_error::Segment;
            match seg {
                Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
                Segment::Map { key } => pointer.push_str(&format!("/{}", pointer_segment(key))),
                Segment::Enum { .. } | Segment::Unknown => {}
            }
        }
        vec![Finding::error(
            "invalid-value",
            file,
            doc.value_pos(&pointer),
            dotted(&pointer),
        )
        .says(
            e.into_inner().to_string(),
            "see schemas/caas-spec.schema.json for this key's form",
        )]
    })
}

/// Load every spec under the project's spec directory (or the given paths).
pub fn load_project(specs_dir: &Path, paths: &[PathBuf]) -> std::io::Result<LoadReport> {
    let mut report = LoadReport::default();
    let mut files = Vec::new();
    let roots: Vec<PathBuf> = if paths.is_empty() {
        vec![specs_dir.to_path_buf()]
    } else {
        paths.to_vec()
    };
    for p in roots {
        if p.is_dir() || paths.is_empty() {
            let (found, problems) = discover_checked(&p);
            files.extend(found);
            report.findings.extend(problems);
        } else {
            files.push(p);
        }
    }
    for file in files {
        match load_file(&file, Some(specs_dir)) {
            Ok(spec) => report.specs.push(spec),
            Err(f) => {
                report.findings.extend(f);
                // The collection a broken file meant to declare, so references to it are not
                // reported on top of the file's own error: from its YAML when that parses, else
                // from a `collection:` line, else from the file name (lint requires they agree).
                let text = read_text(&file).unwrap_or_default();
                let name = yaml::parse(&text)
                    .ok()
                    .and_then(|d| {
                        d.value
                            .get("collection")
                            .and_then(|c| c.as_str())
                            .map(str::to_owned)
                    })
                    .or_else(|| {
                        text.lines().find_map(|l| {
                            let v = l.strip_prefix("collection:")?.trim();
                            let v = v.trim_matches(|c| c == '\'' || c == '"');
                            (!v.is_empty()).then(|| v.to_owned())
                        })
                    })
                    .or_else(|| file.file_stem().and_then(|s| s.to_str()).map(str::to_owned));
                if let Some(name) = name {
                    report.unloaded_collections.push(name);
                }
            }
        }
    }
    Ok(report)
}
