//! `caas schema pull` and `caas schema audit`: adopting an existing deployment.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::Outcome;
use caas_core::adopt::{audit, pull};
use caas_core::config::Config;
use caas_core::connect::ConnectOpts;

#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// Only this database (repeatable). Default: every database but admin, local, config.
    #[arg(long = "database")]
    pub databases: Vec<String>,
    /// Only this logical collection (repeatable).
    #[arg(long = "collection")]
    pub collections: Vec<String>,
    /// Documents sampled per logical collection that has no validator.
    #[arg(long, default_value_t = 1000)]
    pub sample: usize,
    /// A sampled field is required when present in at least this share of the sample.
    #[arg(long, default_value_t = 1.0)]
    pub required_ratio: f64,
    /// Sample every tenant copy of a collection (Pro sets, Enterprise databases), not only
    /// the first: one `$sample` per copy instead of per logical collection.
    #[arg(long)]
    pub sample_every_copy: bool,
    /// Folder to write `<domain>/<collection>.yaml` under. Default: the project's spec folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Update existing spec files, keeping their descriptions, owners, refs and rules, and
    /// report what the live side changed.
    #[arg(long)]
    pub merge: bool,
    /// Register the tenants found that saas_clients does not have yet.
    #[arg(long)]
    pub register: bool,
    /// Read without writing anything: print what would be written.
    #[arg(long)]
    pub dry_run: bool,
    /// Commands in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Print the result as JSON (see docs/json-output.schema.json).
    #[arg(long)]
    pub json: bool,
}

pub async fn pull(config: &Config, connect: &ConnectOpts, args: PullArgs) -> Result<Outcome> {
    let opts = pull::PullOptions {
        databases: args.databases.clone(),
        collections: args.collections.clone(),
        sample: args.sample,
        required_ratio: args.required_ratio,
        every_copy: args.sample_every_copy,
        concurrency: args.concurrency.max(1),
    };
    if opts.sample == 0 {
        anyhow::bail!("--sample 0 would infer nothing; give at least 1 (default 1000)");
    }
    let conn = connect.connect(config).await?;
    let report = pull::pull(&conn, config, &opts).await?;
    let out = args.out.clone().unwrap_or_else(|| config.specs_dir());
    let written = if args.dry_run {
        Vec::new()
    } else {
        caas_core::adopt::write::write(&report, &out, args.merge)?
    };
    let registered = if args.register && !args.dry_run {
        caas_core::adopt::write::register(&conn, config, &report.tenants).await?
    } else {
        Vec::new()
    };
    if args.json {
        super::print_json(
            "schema pull",
            serde_json::json!({
                "specs": report.specs, "tenants": report.tenants, "skipped": report.skipped,
                "written": written, "registered": registered, "round_trips": report.round_trips,
            }),
        )?;
        return Ok(Outcome::Clean);
    }
    render_pull(
        &report,
        &written,
        &registered,
        &out,
        args.dry_run,
        args.register,
    );
    Ok(Outcome::Clean)
}

fn render_pull(
    report: &pull::PullReport,
    written: &[caas_core::adopt::write::Written],
    registered: &[String],
    out: &std::path::Path,
    dry_run: bool,
    register: bool,
) {
    let mut table = crate::render::table(
        ["spec", "from", "copies", "how", "matches live"]
            .map(String::from)
            .to_vec(),
    );
    for p in &report.specs {
        let how = match (p.origin, p.sampled, p.refused) {
            ("sample", Some(n), Some(0)) => format!("inferred from {n} documents; accepts all"),
            ("sample", Some(n), Some(r)) => format!("inferred from {n} documents; {r} refused"),
            (o, _, _) => o.to_owned(),
        };
        let exact = match (p.origin, p.differences.is_empty()) {
            (_, false) => format!("no: {}", p.differences.join(", ")),
            ("validator", true) => "yes".to_owned(),
            (_, true) => "indexes yes; apply adds the validator".to_owned(),
        };
        table.add_row(vec![
            p.file.display().to_string(),
            format!("{} ({})", p.source, p.target),
            p.copies.to_string(),
            how,
            exact,
        ]);
    }
    println!("{}", crate::render::fitted(table));
    for p in &report.specs {
        for n in &p.notes {
            println!("note: {}: {}: {}", p.collection, n.at, n.message);
        }
        for c in &p.copies_differing {
            println!("note: {}: copy {c}", p.collection);
        }
    }
    for n in &report.skipped {
        println!("skipped: {}: {}", n.at, n.message);
    }
    if !report.tenants.is_empty() {
        let mut t = crate::render::table(
            ["tenant", "tier", "found in", "registry"]
                .map(String::from)
                .to_vec(),
        );
        for x in &report.tenants {
            let reg = if x.registered {
                "registered".to_owned()
            } else if registered.contains(&x.id) {
                "registered now".to_owned()
            } else {
                "not registered".to_owned()
            };
            t.add_row(vec![
                x.id.clone(),
                x.tier.to_string(),
                x.found_in.clone(),
                reg,
            ]);
        }
        println!("{}", crate::render::fitted(t));
    }
    let missing = report
        .tenants
        .iter()
        .filter(|t| !t.registered && !registered.contains(&t.id))
        .count();
    if missing > 0 && !register {
        println!("{missing} tenant(s) not in the registry; `caas schema pull --register` (or `caas tenant add`) registers them");
    }
    if dry_run {
        println!(
            "dry run: {} spec(s) read, nothing written ({} round trips)",
            report.specs.len(),
            report.round_trips
        );
        return;
    }
    for w in written {
        if let Some(changes) = &w.changes {
            println!(
                "merged {} ({} change(s) from the live side)",
                w.path.display(),
                changes.len()
            );
            for c in changes {
                println!("  {c}");
            }
        }
    }
    println!(
        "wrote {} spec(s) under {} ({} round trips); next: `caas schema lint`, then `caas schema diff`",
        written.len(),
        out.display(),
        report.round_trips
    );
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub targets: super::live::TargetOpts,
    /// Only this logical collection.
    #[arg(long)]
    pub collection: Option<String>,
    /// Print the result as JSON (see docs/json-output.schema.json).
    #[arg(long)]
    pub json: bool,
}

pub async fn audit(config: &Config, connect: &ConnectOpts, args: AuditArgs) -> Result<Outcome> {
    let loaded = caas_core::project::load(config)?;
    let specs = caas_core::project::select(&loaded, args.collection.as_deref())?;
    let conn = connect.connect(config).await?;
    let fleet = caas_core::fleet::resolve(&conn, config, &args.targets.selection()).await?;
    let desired = caas_core::fleet::desired(&specs, &fleet, config);
    let report = audit::audit(&conn, &desired).await?;
    let failing: u64 = report.iter().map(|t| t.failing).sum();
    if args.json {
        super::print_json(
            "schema audit",
            serde_json::json!({ "clean": failing == 0, "failing": failing, "targets": report }),
        )?;
    } else {
        render_audit(&report);
        let bad = report.iter().filter(|t| t.failing > 0).count();
        if failing == 0 {
            println!(
                "clean: every document of {} target(s) passes its validator",
                report.len()
            );
        } else {
            println!("{failing} document(s) fail their validator in {bad} of {} target(s); migrate them before `validation: {{level: strict}}`", report.len());
        }
    }
    Ok(if failing > 0 {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

fn render_audit(report: &[audit::TargetAudit]) {
    let mut table = crate::render::table(
        [
            "target",
            "namespace",
            "documents",
            "failing",
            "broken parts (sample _ids)",
        ]
        .map(String::from)
        .to_vec(),
    );
    for t in report {
        for c in &t.collections {
            let parts = c
                .parts
                .iter()
                .map(|p| {
                    let ids: Vec<String> = p.sample_ids.iter().map(|v| v.to_string()).collect();
                    format!("{}: {} ({})", p.part, p.documents, ids.join(", "))
                })
                .collect::<Vec<_>>()
                .join("; ");
            table.add_row(vec![
                t.target.clone(),
                format!("{}.{}", c.database, c.collection),
                c.documents.to_string(),
                c.failing.to_string(),
                parts,
            ]);
        }
    }
    println!("{}", crate::render::fitted(table));
    for t in report {
        for c in &t.collections {
            if !c.by_tenant.is_empty() {
                let per: Vec<String> = c
                    .by_tenant
                    .iter()
                    .map(|(t, n)| format!("{t} {n}"))
                    .collect();
                println!("{} failing per tenant: {}", c.collection, per.join(", "));
            }
            for f in c.fields.iter().filter(|f| f.unexpected > 0) {
                let types: Vec<String> = f.types.iter().map(|(t, n)| format!("{t} {n}")).collect();
                println!(
                    "{} ({}): field `{}` is {}; the spec says {}",
                    c.collection,
                    t.target,
                    f.field,
                    types.join(", "),
                    f.expected
                );
            }
        }
    }
}
