//! `caas tenant suspend|resume`: a suspended tenant is read-only, by the same write fence
//! a move's cutover uses (the server refuses its inserts and updates), and its registry
//! status says `suspended`. The fence goes up before the status changes and comes down
//! after it changes back, so a registry that says `suspended` is always fenced.
//!
//! Other commands and suspended tenants: `migrate up` skips every target that holds one
//! (its Pro set or Enterprise database, and the shared target while a free or starter
//! tenant is suspended: the fence would refuse the migration's writes to its documents)
//! and says so, with status `skipped`; the versions stay pending until `resume` and the
//! next `migrate up`. `seed` leaves suspended tenants alone and says so; `tenant move`
//! refuses them; `tenant export` of a suspended tenant is consistent (one moment).

use anyhow::{anyhow, bail, Result};
use bson::{doc, DateTime};

use super::route::Namespace;
use super::{state, wfence};
use crate::config::Config;
use crate::connect::Connection;
use crate::fleet::registry;
use crate::spec::CollectionSpec;
use crate::tenancy::{Target, Tier};

/// Every namespace that holds the tenant's `saas` documents in its current tier.
pub fn namespaces(
    config: &Config,
    specs: &[&CollectionSpec],
    id: &str,
    tier: Tier,
) -> Vec<Namespace> {
    let target = Target::for_tenant(id, tier, config.tiers.layout(tier));
    specs
        .iter()
        .filter(|s| target.holds(*s))
        .map(|s| {
            let p = target.place(*s, &config.databases);
            Namespace {
                database: p.database,
                collection: p.collection,
                shared: p.shared_by_tenants,
            }
        })
        .collect()
}

/// Suspend (`true`) or resume (`false`) a tenant. Returns whether anything changed.
pub async fn set_suspended(
    conn: &Connection,
    config: &Config,
    specs: &[&CollectionSpec],
    id: &str,
    suspend: bool,
) -> Result<bool> {
    crate::tenancy::check_tenant_id(id).map_err(anyhow::Error::msg)?;
    let platform = conn.client.database(&config.databases.platform);
    let (live, _) = registry::list_all(&platform, config).await?;
    let t = live.iter().find(|t| t.id == id).ok_or_else(|| {
        anyhow!("tenant `{id}` is not registered; `caas tenant list` shows who is")
    })?;
    if let Some(m) = state::read(&platform, id)
        .await?
        .filter(|m| m.phase.is_open())
    {
        bail!(
            "tenant `{id}` is being moved ({}); finish or abort the move first",
            state::describe(&m)
        );
    }
    let (from, to) = if suspend {
        ("active", "suspended")
    } else {
        ("suspended", "active")
    };
    if t.status == to {
        return Ok(false);
    }
    if t.status != from {
        bail!("tenant `{id}` is {}, not {from}", t.status);
    }
    let nss = namespaces(config, specs, id, t.tier);
    if suspend {
        for ns in &nss {
            wfence::raise(&conn.client, &platform, ns, id).await?;
        }
    }
    platform
        .collection::<bson::Document>(registry::REGISTRY)
        .update_one(
            doc! { "tenant_id": id, "status": from },
            doc! { "$set": { "status": to, "updated_at": DateTime::now() } },
        )
        .await?;
    if !suspend {
        for ns in &nss {
            wfence::lift(&conn.client, &platform, ns, id).await?;
        }
    }
    Ok(true)
}
