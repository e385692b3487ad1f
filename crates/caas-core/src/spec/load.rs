//! From files to typed specs: discover spec files, parse YAML with positions, validate
//! against the meta-schema, then deserialize. Every failure is a positioned finding.

use std::path::{Path, PathBuf};

use super::meta;
use super::model::CollectionSpec;
use crate::base::diagnostic::{dotted, Finding};
use crate::base::files::{self, discover_checked, read_text};
use crate::base::yaml::{self, Document};

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

/// Load one file. `specs_dir` lets lint compare the folder with the spec's domain.
pub fn load_file(file: &Path, specs_dir: Option<&Path>) -> Result<LoadedSpec, Vec<Finding>> {
    let doc = files::read_yaml(file)?;
    let findings = meta::check(&doc, file);
    if !findings.is_empty() {
        return Err(findings);
    }
    let spec = files::decode(&doc).map_err(|e| {
        vec![Finding::error(
            "invalid-value",
            file,
            doc.value_pos(&e.pointer),
            dotted(&e.pointer),
        )
        .says(
            e.message,
            "see schemas/caas-spec.schema.json for this key's form",
        )]
    })?;
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
