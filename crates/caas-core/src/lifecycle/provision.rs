//! An import's new home, before any document is written: the registry entry claimed
//! (`provisioning`), the target's collections created from the current specs, and on a
//! sharded cluster the target placed in the zone of the tenant's region.

use anyhow::{bail, Result};
use bson::{doc, Bson, Document};

use super::export::{ExportFile, Manifest};
use super::route::Namespace;
use crate::config::Config;
use crate::connect::Connection;
use crate::fleet::{registry, sharding};
use crate::spec::CollectionSpec;
use crate::tenancy::{Target, Tier};

/// What the import will write, decided before anything is written.
pub(super) struct Plan<'a> {
    pub(super) manifest: Manifest,
    pub(super) id: String,
    pub(super) tier: Tier,
    /// `--region`, else the exported tenant's.
    pub(super) region: Option<String>,
    pub(super) target: Target,
    /// The export's files with the namespace each goes to.
    pub(super) files: Vec<(ExportFile, Namespace)>,
    pub(super) specs: &'a [&'a CollectionSpec],
}

/// Write the `provisioning` entry; returns the churned entry it replaced, if any. A live
/// tenant of that id is refused, and so is a target that already holds its documents
/// (unless this is the rerun of an unfinished import into the same tier).
pub(super) async fn claim_registry(
    conn: &Connection,
    config: &Config,
    plan: &Plan<'_>,
) -> Result<Option<Document>> {
    let platform = conn.client.database(&config.databases.platform);
    let reg = platform.collection::<Document>(registry::REGISTRY);
    let existing = reg.find_one(doc! { "tenant_id": &plan.id }).await?;
    let status = existing
        .as_ref()
        .and_then(|d| d.get_str("status").ok().map(str::to_owned));
    let same_tier = existing
        .as_ref()
        .is_some_and(|d| d.get_str("tier").ok() == Some(plan.tier.as_str()));
    match status.as_deref() {
        Some("provisioning") if same_tier => return Ok(None),
        Some("provisioning") => bail!(
            "tenant `{}` has an unfinished import into another tier ({}); rerun it with that --tier",
            plan.id,
            existing.as_ref().and_then(|d| d.get_str("tier").ok()).unwrap_or("?")
        ),
        Some("churned") | None => {}
        Some(s) => bail!(
            "tenant `{}` is registered ({s}); import it under another id (--as NEW_ID), or `caas tenant remove {}` first",
            plan.id,
            plan.id
        ),
    }
    for (_, ns) in &plan.files {
        let n = super::sync::count(&conn.client, ns, &plan.id).await?;
        if n > 0 {
            bail!(
                "{} already holds {n} document(s) for tenant `{}`; caas will not import on top of them",
                ns.label(),
                plan.id
            );
        }
    }
    let about = registry::About {
        name: Some(&plan.manifest.name),
        email: None,
        region: plan.region.as_deref(),
    };
    let mut d = registry::prepare(config, &plan.id, plan.tier, about)?;
    d.insert("status", "provisioning");
    match &existing {
        Some(old) => {
            reg.replace_one(
                doc! { "_id": old.get("_id").cloned().unwrap_or(Bson::Null) },
                &d,
            )
            .await?;
        }
        None => {
            registry::ensure_unique_index(&platform).await?;
            if let Err(e) = reg.insert_one(&d).await {
                return Err(registry::insert_error(&platform, &plan.id, &e).await);
            }
        }
    }
    Ok(existing)
}

/// The target's collections, validators and indexes, from the current specs.
pub(super) async fn create_target(
    conn: &Connection,
    config: &Config,
    plan: &Plan<'_>,
) -> Result<()> {
    let mut fleet = crate::fleet::resolve(
        conn,
        config,
        &registry::Selection {
            tenants: vec![plan.id.clone()],
            tiers: vec![],
        },
    )
    .await?;
    fleet.targets = vec![plan.target.clone()];
    let compiled = crate::fleet::desired(plan.specs, &fleet, config);
    let mut plans = crate::fleet::plan(conn, config, &fleet, plan.specs, &compiled, 4)
        .await?
        .plans;
    for p in &mut plans {
        p.changes.retain(|c| !c.undeclared);
    }
    let opts = crate::apply::ApplyOptions {
        concurrency: 1,
        ..Default::default()
    };
    for report in crate::apply::apply(&conn.client, plans, opts, &|_| {}).await {
        if let Some(e) = report.error {
            bail!("creating {} for tenant `{}`: {e}", report.target, plan.id);
        }
    }
    Ok(())
}

/// Run the steps that place the new (still empty) target in its region's zone.
pub(super) async fn place(
    conn: &Connection,
    config: &Config,
    plan: &Plan<'_>,
    placed: &registry::Tenant,
) -> Result<()> {
    let Some(steps) = sharding::plan_tenant(conn, config, plan.specs, placed, true).await? else {
        return Ok(());
    };
    let applied = sharding::apply_cluster(conn, steps, false, false).await?;
    if let Some((c, e)) = applied.failed {
        bail!(
            "placing tenant `{}` in its region's zone: {} ({}) failed: {e}; rerun the import to continue",
            plan.id,
            c.namespace,
            c.summary()
        );
    }
    Ok(())
}
