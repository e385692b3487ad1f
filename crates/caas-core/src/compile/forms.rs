//! The forms a project compiles to without a server (`caas schema compile`): the platform,
//! then one target per distinct tier layout, with a placeholder tenant.

use serde::Serialize;

use super::{compile_target, CompiledTarget};
use crate::config::Config;
use crate::spec::CollectionSpec;
use crate::tenancy::{Target, TargetKind, Tier};

/// One form: a compiled target and the tiers that share its layout.
#[derive(Debug, Serialize)]
pub struct Form {
    /// `platform`, `shared (free, starter)`, `pro collection set (acme)`...
    pub label: String,
    pub tiers: Vec<Tier>,
    pub compiled: CompiledTarget,
}

/// Compile `specs` for the platform and each distinct tier layout (only `tier`'s when
/// given), placing tenant targets under `tenant`. Forms with no collections are left out.
pub fn forms(
    config: &Config,
    specs: &[&CollectionSpec],
    tier: Option<Tier>,
    tenant: &str,
) -> Vec<Form> {
    targets(config, tier, tenant)
        .into_iter()
        .map(|(target, tiers)| Form {
            label: label(&target, &tiers),
            compiled: compile_target(specs, &target, &config.databases),
            tiers,
        })
        .filter(|f| !f.compiled.collections.is_empty())
        .collect()
}

/// The platform, then one target per distinct tier layout.
fn targets(config: &Config, tier: Option<Tier>, tenant: &str) -> Vec<(Target, Vec<Tier>)> {
    let mut out: Vec<(Target, Vec<Tier>)> = Vec::new();
    if tier.is_none() {
        out.push((Target::platform(), Vec::new()));
    }
    for t in Tier::ALL
        .into_iter()
        .filter(|t| tier.is_none_or(|x| x == *t))
    {
        let target = Target::for_tenant(tenant, t, config.tiers.layout(t));
        match out.iter_mut().find(|(x, _)| {
            x.kind == target.kind
                || (x.kind == TargetKind::Shared && target.kind == TargetKind::Shared)
        }) {
            Some((_, tiers)) => tiers.push(t),
            None => out.push((target, vec![t])),
        }
    }
    out
}

fn label(target: &Target, tiers: &[Tier]) -> String {
    match &target.kind {
        TargetKind::Platform => "platform".into(),
        TargetKind::Shared => format!(
            "shared ({})",
            tiers
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        TargetKind::CollectionSet { tenant, .. } => {
            format!("{} collection set ({tenant})", tiers[0])
        }
        TargetKind::Database { tenant, .. } => format!("{} database ({tenant})", tiers[0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_form_per_distinct_layout() {
        let config: Config = toml::from_str("").expect("defaults");
        let labels: Vec<String> = targets(&config, None, "acme")
            .iter()
            .map(|(t, tiers)| label(t, tiers))
            .collect();
        assert_eq!(
            labels,
            [
                "platform",
                "shared (free, starter)",
                "pro collection set (acme)",
                "enterprise database (acme)"
            ]
        );
        let only_pro = targets(&config, Some(Tier::Pro), "acme");
        assert_eq!(only_pro.len(), 1);
    }
}
