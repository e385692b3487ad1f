//! A project: its config and its specs, loaded and linted as one. Every command that needs
//! the specs loads them here ([`load`]), and `caas schema lint` reports through [`lint`]:
//! the spec analyzers, then the checks of the compiled form.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use crate::base::diagnostic::{Finding, Severity};
use crate::base::error::Error;
use crate::config::Config;
use crate::spec::{self, CollectionSpec, LoadedSpec};

/// What `caas schema lint` found.
#[derive(Debug, Serialize)]
pub struct LintReport {
    /// Spec files looked at (loaded or not).
    pub files: usize,
    pub errors: usize,
    pub warnings: usize,
    pub findings: Vec<Finding>,
}

/// Every check over loaded specs: the analyzers of `spec::lint`, then the compiled form's.
/// Sorted by file, line and column.
pub fn lint_specs(specs: &[LoadedSpec], also_known: &[String]) -> Vec<Finding> {
    let mut findings = spec::lint(specs, also_known);
    for s in specs {
        findings.extend(crate::compile::check::duplicate_indexes(s));
    }
    findings.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    findings
}

/// Lint the whole project so cross-file checks (refs, duplicates) see every spec, then
/// keep the findings of the files asked for (all when `paths` is empty).
pub fn lint(config: &Config, paths: &[PathBuf]) -> Result<LintReport> {
    let dir = config.specs_dir();
    let mut report = if paths.is_empty() || dir.is_dir() {
        spec::load_project(&dir, &[])
            .with_context(|| format!("reading specs under {}", dir.display()))?
    } else {
        spec::LoadReport::default()
    };
    let asked = if paths.is_empty() {
        None
    } else {
        let extra = spec::load_project(&dir, paths)
            .with_context(|| "reading the given spec paths".to_string())?;
        let files: Vec<PathBuf> = extra
            .specs
            .iter()
            .map(|s| s.file.clone())
            .chain(extra.findings.iter().map(|f| f.file.clone()))
            .collect();
        for s in extra.specs {
            if !report.specs.iter().any(|x| same_file(&x.file, &s.file)) {
                report.specs.push(s);
            }
        }
        for f in extra.findings {
            if !report.findings.contains(&f)
                && !report.findings.iter().any(|x| same_file(&x.file, &f.file))
            {
                report.findings.push(f);
            }
        }
        Some(files)
    };
    let mut findings = report.findings;
    findings.extend(lint_specs(&report.specs, &report.unloaded_collections));
    if let Some(files) = &asked {
        findings.retain(|f| files.iter().any(|x| same_file(x, &f.file)));
        report
            .specs
            .retain(|s| files.iter().any(|x| same_file(x, &s.file)));
    }
    let files = report.specs.len() + count_files(&findings, &report.specs);
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    Ok(LintReport {
        files,
        errors,
        warnings,
        findings,
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Files that failed to load (and so are not in `specs`).
fn count_files(findings: &[Finding], specs: &[LoadedSpec]) -> usize {
    let mut failed: Vec<&Path> = findings.iter().map(|f| f.file.as_path()).collect();
    failed.sort();
    failed.dedup();
    failed
        .iter()
        .filter(|f| !specs.iter().any(|s| s.file == **f))
        .count()
}

/// Load every spec and refuse to go on if lint finds errors (for commands that use them).
pub fn load(config: &Config) -> Result<Vec<LoadedSpec>, Error> {
    let dir = config.specs_dir();
    let report = spec::load_project(&dir, &[])
        .with_context(|| format!("reading specs under {}", dir.display()))?;
    let mut findings = report.findings;
    findings.extend(lint_specs(&report.specs, &report.unloaded_collections));
    let errors: Vec<Finding> = findings
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    if !errors.is_empty() {
        return Err(Error::Refused {
            summary: format!(
                "{} spec error(s); run `caas schema lint` for all of them",
                errors.len()
            ),
            findings: errors,
            listed: 5,
        });
    }
    if report.specs.is_empty() {
        return Err(anyhow!("no spec files under {}; add `<domain>/<collection>.yaml` files or set `[project] specs` in caas.toml", dir.display()).into());
    }
    Ok(report.specs)
}

/// The specs a command works on: all of them, or the one named `collection`.
pub fn select<'a>(
    loaded: &'a [LoadedSpec],
    collection: Option<&str>,
) -> Result<Vec<&'a CollectionSpec>, Error> {
    let specs: Vec<&CollectionSpec> = loaded
        .iter()
        .map(|l| &l.spec)
        .filter(|s| collection.is_none_or(|c| s.collection == c))
        .collect();
    if specs.is_empty() {
        let known: Vec<&str> = loaded.iter().map(|l| l.spec.collection.as_str()).collect();
        return Err(anyhow!(
            "no spec defines collection `{}`; known collections: {}",
            collection.unwrap_or(""),
            known.join(", ")
        )
        .into());
    }
    Ok(specs)
}
