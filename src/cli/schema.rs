//! `caas schema ...`: lint, compile, json-schema; plan, apply and diff; pull and audit.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::args::TierArg;
use super::Outcome;
use super::ProjectOpts;
use caas_core::base::diagnostic::{Finding, Severity};
use caas_core::compile::forms::{forms, Form};
use caas_core::compile::to_json;
use caas_core::config::Config;
use caas_core::project;
use caas_core::spec::LoadedSpec;
use caas_core::tenancy::{check_tenant_id, Tier};

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Check specs offline: meta-schema, then semantics. Exit 1 on findings.
    Lint {
        /// Spec files or folders. Default: the project's spec folder.
        paths: Vec<PathBuf>,
        #[command(flatten)]
        output: LintOutput,
    },
    /// Print each physical target's collection options, validator and indexes.
    Compile {
        /// Only this tier's tenant target (default: the platform and every tier).
        #[arg(long)]
        tier: Option<TierArg>,
        /// Compile for this tenant id instead of the `{tenant_id}` placeholder.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this logical collection.
        #[arg(long)]
        collection: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// Show what `apply` would change on each target (read-only).
    Plan {
        #[command(flatten)]
        targets: super::live::TargetOpts,
        #[arg(long, value_enum, default_value_t = super::live::PlanFormat::Table)]
        format: super::live::PlanFormat,
        /// Shorthand for --format json.
        #[arg(long)]
        json: bool,
        /// In a mongosh script, include the drops of undeclared objects.
        #[arg(long)]
        prune: bool,
        #[command(flatten)]
        sharding: super::sharding::ShardingOpts,
    },
    /// Create and update collections, validators and indexes on every target.
    Apply {
        #[command(flatten)]
        targets: super::live::TargetOpts,
        #[command(flatten)]
        flags: super::live::ApplyFlags,
        #[command(flatten)]
        sharding: super::sharding::ShardingOpts,
    },
    /// Compare the live databases with the specs; with --exit-code, exit 1 on drift.
    Diff {
        #[command(flatten)]
        targets: super::live::TargetOpts,
        /// Exit 1 when anything differs (0 in sync, 2 error).
        #[arg(long)]
        exit_code: bool,
        /// Print the result as JSON (see docs/json-output.schema.json).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        sharding: super::sharding::ShardingOpts,
    },
    /// Read a live deployment into specs: validators decompiled, fields inferred from a
    /// sample where there is none, tenants recognised by the [databases] templates.
    Pull(super::adopt::PullArgs),
    /// Data drift: per target, the documents the current validators refuse, which rule they
    /// break (with sample _ids) and the types fields hold. Exit 1 when any fail.
    Audit(super::adopt::AuditArgs),
    /// Print the JSON Schema of the spec format (what editors and lint validate against),
    /// or of migration files, seed files or caas.toml.
    JsonSchema {
        /// Which schema to print.
        #[arg(long, value_enum, default_value_t = SchemaKind::Spec)]
        kind: SchemaKind,
        /// Write all four schemas to their committed files under schemas/.
        #[arg(long, conflicts_with = "check")]
        write: bool,
        /// Exit 1 if any committed copy under schemas/ differs from the types.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
    /// Index and namespace forms side by side, one column per target.
    Table,
}

pub async fn run(
    project: &ProjectOpts,
    connect: &caas_core::connect::ConnectOpts,
    guard: &super::guard::GuardArgs,
    cmd: SchemaCommand,
) -> Result<Outcome> {
    let config = project.load()?;
    match cmd {
        SchemaCommand::Lint { paths, output } => {
            lint(&config, &paths, output.format(), output.deny_warnings)
        }
        SchemaCommand::Compile {
            tier,
            tenant,
            collection,
            format,
        } => {
            let specs = project::load(&config)?;
            compile(
                &config,
                &specs,
                tier.map(Tier::from),
                tenant.as_deref(),
                collection.as_deref(),
                format,
            )
        }
        SchemaCommand::JsonSchema { kind, write, check } => {
            json_schema(&config, kind, write, check)
        }
        SchemaCommand::Plan {
            targets,
            format,
            json,
            prune,
            sharding,
        } => {
            let format = if json {
                super::live::PlanFormat::Json
            } else {
                format
            };
            super::live::plan(&config, connect, &targets, format, prune, &sharding).await
        }
        SchemaCommand::Pull(args) => super::adopt::pull(&config, connect, args).await,
        SchemaCommand::Audit(args) => super::adopt::audit(&config, connect, args).await,
        SchemaCommand::Apply {
            targets,
            flags,
            sharding,
        } => super::live::apply(&config, connect, &targets, &flags, &sharding, guard).await,
        SchemaCommand::Diff {
            targets,
            exit_code,
            json,
            sharding,
        } => super::live::diff(&config, connect, &targets, json, exit_code, &sharding).await,
    }
}

/// How `schema lint` and `migrate lint` print their findings.
#[derive(Debug, clap::Args)]
pub struct LintOutput {
    /// Print findings as JSON (the same as --format json).
    #[arg(long)]
    json: bool,
    /// How to print findings: text, json, github (workflow commands that GitHub Actions
    /// shows as annotations on the pull request's files) or sarif (SARIF 2.1.0 for code
    /// scanning).
    #[arg(long, value_enum, default_value_t = LintFormat::Text)]
    format: LintFormat,
    /// Warnings count as findings too (exit 1).
    #[arg(long)]
    pub deny_warnings: bool,
}

impl LintOutput {
    pub fn format(&self) -> LintFormat {
        if self.json {
            LintFormat::Json
        } else {
            self.format
        }
    }
}

/// The formats of lint findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    Text,
    Json,
    /// `::error file=...,line=...,col=...,title=...::message` lines for GitHub Actions.
    Github,
    /// SARIF 2.1.0, for code-scanning tools (GitHub code scanning, GitLab, IDEs).
    Sarif,
}

fn lint(
    config: &Config,
    paths: &[PathBuf],
    format: LintFormat,
    deny_warnings: bool,
) -> Result<Outcome> {
    let report = project::lint(config, paths)?;
    let counts = (report.files, report.errors, report.warnings);
    print_findings(
        "schema lint",
        "spec files",
        &report,
        counts,
        &report.findings,
        format,
        deny_warnings,
    )
}

/// Lint findings in the chosen format, and the outcome: findings when there are errors
/// (or warnings, with `deny_warnings`). Shared by `schema lint` and `migrate lint`.
pub(crate) fn print_findings(
    command: &str,
    noun: &str,
    report: &impl serde::Serialize,
    (files, errors, warnings): (usize, usize, usize),
    findings: &[Finding],
    format: LintFormat,
    deny_warnings: bool,
) -> Result<Outcome> {
    match format {
        LintFormat::Json => super::print_json(command, report)?,
        LintFormat::Sarif => println!("{}", serde_json::to_string_pretty(&sarif(findings))?),
        LintFormat::Github | LintFormat::Text => {
            for f in findings {
                if format == LintFormat::Github {
                    println!("{}", github_annotation(f));
                } else {
                    println!("{f}\n");
                }
            }
            println!("{files} {noun}: {errors} errors, {warnings} warnings");
        }
    }
    Ok(if errors > 0 || (deny_warnings && warnings > 0) {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

/// Findings as a SARIF 2.1.0 log: one run of the `caas` tool, a rule per finding code,
/// a result per finding with its file, line and column.
fn sarif(findings: &[Finding]) -> Value {
    let mut codes: Vec<&str> = findings.iter().map(|f| f.code).collect();
    codes.sort_unstable();
    codes.dedup();
    let rules: Vec<Value> = codes
        .iter()
        .map(|c| json!({ "id": c, "name": c, "shortDescription": { "text": format!("caas lint: {c}") } }))
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let at = if f.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", f.path)
            };
            json!({
                "ruleId": f.code,
                "level": match f.severity { Severity::Error => "error", Severity::Warning => "warning" },
                "message": { "text": format!("{at}{} (fix: {})", f.message, f.fix) },
                "locations": [{ "physicalLocation": {
                    "artifactLocation": { "uri": f.file.display().to_string().replace('\\', "/") },
                    "region": { "startLine": f.line.max(1), "startColumn": f.column.max(1) }
                } }]
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "caas",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://caas.dev",
                "rules": rules
            } },
            "results": results
        }]
    })
}

/// One finding as a GitHub Actions workflow command: the file, line and column become an
/// annotation on the pull request; the message carries the field path and the fix.
fn github_annotation(f: &Finding) -> String {
    // Workflow-command escaping: `%`, CR and LF in the message; also `:` and `,` in properties.
    let data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let prop = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
    let level = match f.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let at = if f.path.is_empty() {
        String::new()
    } else {
        format!("{}: ", f.path)
    };
    format!(
        "::{level} file={},line={},col={},title={}::{}",
        prop(&f.file.display().to_string()),
        f.line,
        f.column,
        prop(&format!("caas {}", f.code)),
        data(&format!("{at}{} (fix: {})", f.message, f.fix))
    )
}

fn compile(
    config: &Config,
    loaded: &[LoadedSpec],
    tier: Option<Tier>,
    tenant: Option<&str>,
    collection: Option<&str>,
    format: Format,
) -> Result<Outcome> {
    if let Some(t) = tenant {
        check_tenant_id(t)
            .map_err(anyhow::Error::msg)
            .context("--tenant")?;
    }
    let specs = project::select(loaded, collection)?;
    let forms = forms(config, &specs, tier, tenant.unwrap_or("{tenant_id}"));
    match format {
        Format::Json => super::print_json("schema compile", compiled_json(&forms))?,
        Format::Yaml => print!("{}", crate::render::to_yaml(&compiled_json(&forms))),
        Format::Table => print!("{}", side_by_side(&forms)),
    }
    Ok(Outcome::Clean)
}

fn compiled_json(forms: &[Form]) -> Value {
    let list: Vec<Value> = forms
        .iter()
        .map(|f| {
            let collections: Vec<Value> = f
                .compiled
                .collections
                .iter()
                .map(|c| {
                    json!({
                        "database": c.placement.database,
                        "collection": c.placement.collection,
                        "logical": c.logical,
                        "options": to_json(&c.options.to_document()),
                        "indexes": c.indexes.iter().map(|i| to_json(&i.to_create_spec())).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "target": f.label,
                "tiers": f.tiers,
                "collections": collections,
            })
        })
        .collect();
    json!({ "targets": list })
}

/// One table per collection: a column per target, a row per index.
fn side_by_side(forms: &[Form]) -> String {
    let mut by_collection: BTreeMap<&str, Vec<(String, &caas_core::compile::CompiledCollection)>> =
        BTreeMap::new();
    for f in forms {
        for c in &f.compiled.collections {
            by_collection
                .entry(&c.logical)
                .or_default()
                .push((f.label.clone(), c));
        }
    }
    let mut out = String::new();
    for (name, forms) in by_collection {
        let mut header = vec![name.to_string()];
        header.extend(forms.iter().map(|(l, _)| l.clone()));
        let mut table = crate::render::table(header);
        let mut row = vec!["namespace".to_string()];
        row.extend(
            forms
                .iter()
                .map(|(_, c)| format!("{}.{}", c.placement.database, c.placement.collection)),
        );
        table.add_row(row);
        let mut row = vec!["tenant_id".to_string()];
        row.extend(forms.iter().map(|(_, c)| tenant_rule(c)));
        table.add_row(row);
        let rows = forms
            .iter()
            .map(|(_, c)| c.indexes.len())
            .max()
            .unwrap_or(0);
        for i in 0..rows {
            let mut row = vec![format!("index {}", i + 1)];
            row.extend(
                forms
                    .iter()
                    .map(|(_, c)| c.indexes.get(i).map(describe_index).unwrap_or_default()),
            );
            table.add_row(row);
        }
        out.push_str(&table.to_string());
        out.push_str("\n\n");
    }
    if !std::io::stdout().is_terminal() {
        out = out.trim_end().to_string() + "\n";
    }
    out
}

fn tenant_rule(c: &caas_core::compile::CompiledCollection) -> String {
    let Some(v) = &c.options.validator else {
        return "no validator (time series)".into();
    };
    let props = v
        .get_document("$jsonSchema")
        .and_then(|s| s.get_document("properties"));
    match props.and_then(|p| p.get_document("tenant_id")) {
        Ok(t) => match (t.get_array("enum"), t.get_str("pattern")) {
            (Ok(values), _) => format!(
                "required, only {}",
                values
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (_, Ok(_)) => "required, any valid tenant id".into(),
            _ => "required".into(),
        },
        Err(_) => "not tenant-scoped".into(),
    }
}

fn describe_index(ix: &caas_core::compile::CompiledIndex) -> String {
    let keys: Vec<String> = ix
        .keys
        .iter()
        .map(|(k, v)| format!("{k}: {}", compact(v)))
        .collect();
    let mut flags: Vec<String> = Vec::new();
    for (k, v) in &ix.options {
        flags.push(match (k.as_str(), v) {
            ("unique" | "sparse" | "hidden", _) => k.clone(),
            ("expireAfterSeconds", v) => format!("ttl {}", ttl(v)),
            ("partialFilterExpression", v) => format!("partial {}", compact(v)),
            ("collation", bson::Bson::Document(c)) => format!(
                "collation {}{}",
                c.get_str("locale").unwrap_or("?"),
                c.get("strength")
                    .map(|s| format!("/{}", compact(s)))
                    .unwrap_or_default()
            ),
            (k, v) => format!("{k} {}", compact(v)),
        });
    }
    let mut s = format!("{}\n{{{}}}", ix.name, keys.join(", "));
    if !flags.is_empty() {
        s.push_str(&format!("\n{}", flags.join(" · ")));
    }
    s
}

/// Relaxed JSON without quotes around simple keys and strings, for table cells.
fn compact(v: &bson::Bson) -> String {
    match to_json_value(v) {
        Value::String(s) => s,
        other => other.to_string().replace('"', ""),
    }
}

fn to_json_value(v: &bson::Bson) -> Value {
    v.clone().into_relaxed_extjson()
}

fn ttl(v: &bson::Bson) -> String {
    let secs = match v {
        bson::Bson::Int32(i) => i64::from(*i),
        bson::Bson::Int64(i) => *i,
        bson::Bson::Double(d) => *d as i64,
        _ => return compact(v),
    };
    caas_core::compile::human_ttl(secs)
}

/// The files a JSON Schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// Collection specs (schemas/**/*.yaml).
    Spec,
    /// Migration files (migrations/V*.yaml).
    Migration,
    /// The seed file (seeds/demo.yaml).
    Seed,
    /// caas.toml.
    Config,
}

fn json_schema(config: &Config, kind: SchemaKind, write: bool, check: bool) -> Result<Outcome> {
    let all = caas_core::schemas::all();
    if write {
        for s in &all {
            let path = config.root.join(s.file);
            std::fs::write(&path, &s.text)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
        return Ok(Outcome::Clean);
    }
    if !check {
        let name = format!("{kind:?}").to_lowercase();
        let s = caas_core::schemas::of_kind(&name).expect("every kind has a schema");
        print!("{}", s.text);
        return Ok(Outcome::Clean);
    }
    let mut stale = 0;
    for s in &all {
        let path = config.root.join(s.file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed == s.text {
            println!("{} is up to date", path.display());
        } else {
            stale += 1;
            eprintln!("{} is stale or missing", path.display());
        }
    }
    if stale == 0 {
        return Ok(Outcome::Clean);
    }
    eprintln!("run `caas schema json-schema --write` and commit the files");
    Ok(Outcome::Found)
}
