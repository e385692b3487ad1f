//! Collection names inside aggregation pipelines. A migration names logical collections
//! everywhere (`$lookup.from`, `$graphLookup.from`, `$unionWith`, nested in `$lookup`
//! pipelines and `$facet`s at any depth): each is mapped to the target's physical name,
//! and on the shared target every join is narrowed to one tenant, so no stage can reach
//! another tenant's data. Pure functions: lint finds the names, the runner maps them.

use serde_json::{json, Map, Value};

/// Stages that read or write another namespace in a way caas cannot map per target.
const UNMAPPABLE: &[&str] = &[
    "$out",
    "$merge",
    "$currentOp",
    "$listSessions",
    "$listLocalSessions",
    "$changeStream",
    "$listCatalog",
    "$listClusterCatalog",
    "$documents",
];

/// A collection named inside a pipeline: where (a JSON pointer below the pipeline), the
/// stage, and the name (`None` when it is not a plain string: another database's).
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub at: String,
    pub stage: &'static str,
    pub name: Option<String>,
}

/// Something in a pipeline that caas refuses to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub at: String,
    pub message: String,
    pub fix: String,
}

/// Every collection reference in `pipeline`, and every stage caas cannot map.
pub fn scan(pipeline: &[Map<String, Value>]) -> (Vec<Reference>, Vec<Refusal>) {
    let mut refs = Vec::new();
    let mut refusals = Vec::new();
    walk(pipeline, "", &mut refs, &mut refusals);
    (refs, refusals)
}

fn walk(
    pipeline: &[Map<String, Value>],
    base: &str,
    refs: &mut Vec<Reference>,
    no: &mut Vec<Refusal>,
) {
    for (i, stage) in pipeline.iter().enumerate() {
        for (op, body) in stage {
            let at = format!("{base}/{i}/{}", crate::base::yaml::pointer_segment(op));
            if UNMAPPABLE.contains(&op.as_str()) {
                no.push(Refusal {
                    at: at.clone(),
                    message: format!("`{op}` reaches namespaces caas cannot map to each target"),
                    fix: if op == "$out" || op == "$merge" {
                        "remove the stage; name the target collection in `into`".into()
                    } else {
                        "remove the stage".into()
                    },
                });
                continue;
            }
            let (field, stage) = match op.as_str() {
                "$lookup" => ("from", "$lookup"),
                "$graphLookup" => ("from", "$graphLookup"),
                "$unionWith" => ("coll", "$unionWith"),
                "$facet" => {
                    if let Some(facets) = body.as_object() {
                        for (name, sub) in facets {
                            if let Some(sub) = as_pipeline(sub) {
                                walk(
                                    &sub,
                                    &format!("{at}/{}", crate::base::yaml::pointer_segment(name)),
                                    refs,
                                    no,
                                );
                            }
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            // `$unionWith: people` is short for `{coll: people}`.
            let (name_at, name) = match (op.as_str(), body) {
                ("$unionWith", Value::String(s)) => (at.clone(), Some(s.clone())),
                (_, Value::Object(m)) => (
                    format!("{at}/{field}"),
                    match m.get(field) {
                        Some(Value::String(s)) => Some(s.clone()),
                        _ => None,
                    },
                ),
                _ => (at.clone(), None),
            };
            refs.push(Reference {
                at: name_at,
                stage,
                name,
            });
            if let Some(sub) = body.get("pipeline").and_then(as_pipeline) {
                walk(&sub, &format!("{at}/pipeline"), refs, no);
            }
        }
    }
}

fn as_pipeline(v: &Value) -> Option<Vec<Map<String, Value>>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_object().cloned())
        .collect()
}

/// The pipeline with every named collection mapped by `physical` (logical -> physical
/// name in the same database), and, with `tenant`, every join narrowed to that tenant's
/// documents: `$lookup` and `$unionWith` get a leading `$match` in their pipeline,
/// `$graphLookup` a `restrictSearchWithMatch`. Names `physical` does not know are errors.
pub fn map(
    pipeline: &[Map<String, Value>],
    physical: &dyn Fn(&str) -> Option<String>,
    tenant: Option<&str>,
) -> Result<Vec<Map<String, Value>>, String> {
    let mut out = Vec::with_capacity(pipeline.len());
    for stage in pipeline {
        let mapped = stage
            .iter()
            .map(|(op, body)| Ok((op.clone(), map_stage(op, body, physical, tenant)?)))
            .collect::<Result<Map<String, Value>, String>>()?;
        out.push(mapped);
        // Belt and braces after a `$graphLookup`: keep only the tenant's documents in its
        // output, even where a server ignores `restrictSearchWithMatch` (SecantusDB does).
        if let (Some(t), Some(as_)) = (
            tenant,
            stage
                .get("$graphLookup")
                .and_then(|g| g.get("as"))
                .and_then(Value::as_str),
        ) {
            let keep = json!({ "$set": { as_: { "$filter": {
                "input": format!("${as_}"),
                "cond": { "$eq": ["$$this.tenant_id", t] },
            } } } });
            out.push(keep.as_object().cloned().expect("an object"));
        }
    }
    Ok(out)
}

fn map_stage(
    op: &str,
    body: &Value,
    physical: &dyn Fn(&str) -> Option<String>,
    tenant: Option<&str>,
) -> Result<Value, String> {
    let name = |v: &Value| -> Result<String, String> {
        let logical = v
            .as_str()
            .ok_or_else(|| format!("`{op}` names a collection of another database"))?;
        physical(logical).ok_or_else(|| format!("`{op}` names `{logical}`, which no spec declares"))
    };
    let scope = |sub: Option<&Value>| -> Result<Value, String> {
        let mut stages = match sub.map(|s| as_pipeline(s).ok_or("a pipeline is a list of stages")) {
            Some(s) => map(&s?, physical, tenant)?,
            None => Vec::new(),
        };
        if let Some(t) = tenant {
            let m = json!({ "$match": { "tenant_id": t } });
            stages.insert(0, m.as_object().cloned().expect("an object"));
        }
        Ok(Value::Array(
            stages.into_iter().map(Value::Object).collect(),
        ))
    };
    let mut out = match body {
        Value::Object(m) => m.clone(),
        Value::String(_) if op == "$unionWith" => {
            let mut m = Map::new();
            m.insert("coll".into(), body.clone());
            m
        }
        _ => return Ok(body.clone()),
    };
    match op {
        "$lookup" | "$unionWith" => {
            let key = if op == "$lookup" { "from" } else { "coll" };
            out.insert(
                key.into(),
                Value::String(name(out.get(key).unwrap_or(&Value::Null))?),
            );
            if out.contains_key("pipeline") || tenant.is_some() {
                let scoped = scope(out.get("pipeline"))?;
                out.insert("pipeline".into(), scoped);
            }
        }
        "$graphLookup" => {
            out.insert(
                "from".into(),
                Value::String(name(out.get("from").unwrap_or(&Value::Null))?),
            );
            if let Some(t) = tenant {
                let restrict = match out.remove("restrictSearchWithMatch") {
                    Some(r) => json!({ "$and": [ { "tenant_id": t }, r ] }),
                    None => json!({ "tenant_id": t }),
                };
                out.insert("restrictSearchWithMatch".into(), restrict);
            }
        }
        "$facet" => {
            for (_, sub) in out.iter_mut() {
                let stages = as_pipeline(sub).ok_or("a `$facet` holds pipelines")?;
                *sub = Value::Array(
                    map(&stages, physical, tenant)?
                        .into_iter()
                        .map(Value::Object)
                        .collect(),
                );
            }
        }
        _ => return Ok(body.clone()),
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(v: Value) -> Vec<Map<String, Value>> {
        as_pipeline(&v).unwrap()
    }

    #[test]
    fn finds_names_at_any_depth_and_refuses_what_it_cannot_map() {
        let p = pipeline(json!([
            { "$lookup": { "from": "people", "localField": "a", "foreignField": "b", "as": "x" } },
            { "$lookup": { "from": "people", "pipeline": [ { "$unionWith": "teams" } ], "as": "y" } },
            { "$facet": { "f": [ { "$graphLookup": { "from": "people", "startWith": "$a", "connectFromField": "a", "connectToField": "b", "as": "g" } } ] } },
            { "$lookup": { "from": { "db": "other", "coll": "people" }, "pipeline": [], "as": "z" } },
            { "$currentOp": {} }
        ]));
        let (refs, no) = scan(&p);
        let got: Vec<(&str, Option<&str>)> = refs
            .iter()
            .map(|r| (r.at.as_str(), r.name.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("/0/$lookup/from", Some("people")),
                ("/1/$lookup/from", Some("people")),
                ("/1/$lookup/pipeline/0/$unionWith", Some("teams")),
                ("/2/$facet/f/0/$graphLookup/from", Some("people")),
                ("/3/$lookup/from", None),
            ]
        );
        assert_eq!(no.len(), 1);
        assert_eq!(no[0].at, "/4/$currentOp");
    }

    #[test]
    fn maps_names_and_narrows_every_join_to_the_tenant() {
        let p = pipeline(json!([
            { "$lookup": { "from": "people", "localField": "a", "foreignField": "b", "as": "x" } },
            { "$unionWith": { "coll": "people", "pipeline": [ { "$lookup": { "from": "teams", "pipeline": [], "as": "t" } } ] } },
            { "$graphLookup": { "from": "people", "startWith": "$a", "connectFromField": "a", "connectToField": "b", "as": "g", "restrictSearchWithMatch": { "active": true } } },
            { "$facet": { "f": [ { "$unionWith": "teams" } ] } }
        ]));
        let physical = |l: &str| Some(format!("acme_{l}"));
        let mapped = Value::Array(
            map(&p, &physical, Some("f1"))
                .unwrap()
                .into_iter()
                .map(Value::Object)
                .collect(),
        );
        let m = json!({ "$match": { "tenant_id": "f1" } });
        assert_eq!(
            mapped,
            json!([
                { "$lookup": { "from": "acme_people", "localField": "a", "foreignField": "b", "as": "x", "pipeline": [m] } },
                { "$unionWith": { "coll": "acme_people", "pipeline": [ m, { "$lookup": { "from": "acme_teams", "pipeline": [m], "as": "t" } } ] } },
                { "$graphLookup": { "from": "acme_people", "startWith": "$a", "connectFromField": "a", "connectToField": "b", "as": "g", "restrictSearchWithMatch": { "$and": [ { "tenant_id": "f1" }, { "active": true } ] } } },
                { "$set": { "g": { "$filter": { "input": "$g", "cond": { "$eq": ["$$this.tenant_id", "f1"] } } } } },
                { "$facet": { "f": [ { "$unionWith": { "coll": "acme_teams", "pipeline": [m] } } ] } }
            ])
        );
        // Without a tenant (a Pro set or an Enterprise database): names only.
        let plain = map(&p[..1], &physical, None).unwrap();
        assert_eq!(
            Value::Object(plain[0].clone()),
            json!({ "$lookup": { "from": "acme_people", "localField": "a", "foreignField": "b", "as": "x" } })
        );
        let unknown = |_: &str| None;
        assert!(map(&p, &unknown, None)
            .unwrap_err()
            .contains("no spec declares"));
    }
}
