//! The project's migration files as commands see them: checked against the specs, either
//! loaded (with warnings) or refused with every error before anything connects, and the
//! same findings as a report for `caas migrate lint`.

use serde::Serialize;

use super::check::load;
use super::source::Migration;
use crate::base::diagnostic::{Finding, Severity};
use crate::base::error::Error;
use crate::config::Config;
use crate::spec::CollectionSpec;
use crate::tenancy::{Layout, Tier};

/// What `caas migrate lint` reports: the same shape as `schema lint`'s.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationLint {
    /// Migration files looked at (loaded or not).
    pub files: usize,
    pub errors: usize,
    pub warnings: usize,
    pub findings: Vec<Finding>,
}

/// Every migration and every finding, sorted by file, line and column.
pub fn lint_project(config: &Config, specs: &[&CollectionSpec]) -> (Vec<Migration>, MigrationLint) {
    let shared: Vec<Tier> = Tier::ALL
        .into_iter()
        .filter(|t| config.tiers.layout(*t) == Layout::Shared)
        .collect();
    let (migrations, mut findings) = load(&config.migrations_dir(), specs, &shared);
    findings.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    let mut files: Vec<&std::path::Path> = migrations.iter().map(|m| m.file.as_path()).collect();
    files.extend(findings.iter().map(|f| f.file.as_path()));
    files.sort();
    files.dedup();
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let report = MigrationLint {
        files: files.len(),
        errors,
        warnings: findings.len() - errors,
        findings,
    };
    (migrations, report)
}

/// The project's migrations, checked against its specs: the migrations and the warnings
/// to show, or every error, refusing them all before anything connects.
pub fn load_project(
    config: &Config,
    specs: &[&CollectionSpec],
) -> Result<(Vec<Migration>, Vec<Finding>), Error> {
    let (migrations, report) = lint_project(config, specs);
    let (errors, warnings): (Vec<_>, Vec<_>) = report
        .findings
        .into_iter()
        .partition(|f| f.severity == Severity::Error);
    if errors.is_empty() {
        return Ok((migrations, warnings));
    }
    Err(Error::Refused {
        summary: format!(
            "{} problem(s) in migration files; nothing ran",
            errors.len()
        ),
        listed: errors.len(),
        findings: errors,
    })
}
