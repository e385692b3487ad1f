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

/// Every `.yaml`/`.yml` file under `dir`, sorted, so output never depends on the file system.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Load one file. `specs_dir` lets lint compare the folder with the spec's domain.
pub fn load_file(file: &Path, specs_dir: Option<&Path>) -> Result<LoadedSpec, Vec<Finding>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![
            Finding::error("unreadable", file, Default::default(), "").says(
                format!("cannot read the file: {e}"),
                "check the path and its permissions",
            ),
        ]
    })?;
    let doc = yaml::parse(&text).map_err(|e| {
        vec![Finding::error("yaml-syntax", file, e.pos, "").says(
            e.message,
            "fix the YAML syntax at this position (indentation, quotes, brackets)",
        )]
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
    let files = if paths.is_empty() {
        discover(specs_dir)?
    } else {
        let mut files = Vec::new();
        for p in paths {
            if p.is_dir() {
                files.extend(discover(p)?);
            } else {
                files.push(p.clone());
            }
        }
        files
    };
    let mut report = LoadReport::default();
    for file in files {
        match load_file(&file, Some(specs_dir)) {
            Ok(spec) => report.specs.push(spec),
            Err(f) => {
                report.findings.extend(f);
                if let Some(name) = std::fs::read_to_string(&file)
                    .ok()
                    .and_then(|t| yaml::parse(&t).ok())
                    .and_then(|d| {
                        d.value
                            .get("collection")
                            .and_then(|c| c.as_str())
                            .map(str::to_owned)
                    })
                {
                    report.unloaded_collections.push(name);
                }
            }
        }
    }
    Ok(report)
}
