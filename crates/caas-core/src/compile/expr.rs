//! A small evaluator for the aggregation expressions that spec rules use (`$expr`):
//! comparisons, `$and`/`$or`/`$not`, arithmetic, `$size`, `$ifNull`, `$in`, field paths.
//! It answers "does this document meet the rule?" offline, and [`satisfy`] nudges a
//! generated document until it does (assigning the field an `$eq` names, moving one bound
//! of a comparison, choosing another enum value for `$ne`, trying each `$or` branch).
//! Anything it does not know evaluates to `None`: unknown, never a guess.

use std::cmp::Ordering;

use bson::{Bson, DateTime, Document};

/// The rule's truth on `doc`, or `None` when it uses what this evaluator does not know.
pub fn holds(expr: &Bson, doc: &Document) -> Option<bool> {
    eval(expr, doc).map(|v| truthy(&v))
}

/// Change `doc` so that `expr` holds where a simple change does it; `enums` gives the
/// allowed values of top-level fields. Returns whether the rule now holds.
pub fn satisfy(expr: &Bson, doc: &mut Document, enums: &dyn Fn(&str) -> Vec<Bson>) -> bool {
    if holds(expr, doc) == Some(true) {
        return true;
    }
    let Some((op, args)) = operator(expr) else {
        return false;
    };
    let changed = match (op, args.as_slice()) {
        ("$and", parts) => {
            parts.iter().all(|p| satisfy(p, doc, enums)) && holds(expr, doc) == Some(true)
        }
        ("$or", parts) => parts.iter().any(|p| {
            let mut trial = doc.clone();
            let ok = satisfy(p, &mut trial, enums);
            if ok {
                *doc = trial;
            }
            ok
        }),
        ("$eq", [a, b]) => assign(doc, a, b, 0)
            .or_else(|| assign(doc, b, a, 0))
            .is_some(),
        ("$gt" | "$gte", [a, b]) => assign(doc, a, b, 1)
            .or_else(|| assign(doc, b, a, -1))
            .is_some(),
        ("$lt" | "$lte", [a, b]) => assign(doc, a, b, -1)
            .or_else(|| assign(doc, b, a, 1))
            .is_some(),
        ("$ne", [a, b]) => {
            let Some(path) = path_of(a) else { return false };
            let Some(avoid) = eval(b, doc) else {
                return false;
            };
            match enums(path)
                .into_iter()
                .find(|v| compare(v, &avoid) != Some(Ordering::Equal))
            {
                Some(v) => {
                    doc.insert(path, v);
                    true
                }
                None => false,
            }
        }
        _ => false,
    };
    changed && holds(expr, doc) == Some(true)
}

/// Set the top-level field `target` names to the value of `from`, moved by `step` (one
/// hour for dates, one for numbers) so a strict comparison holds.
fn assign(doc: &mut Document, target: &Bson, from: &Bson, step: i64) -> Option<()> {
    let path = path_of(target)?;
    let value = match eval(from, doc)? {
        Bson::DateTime(d) => Bson::DateTime(DateTime::from_millis(
            d.timestamp_millis() + step * 3_600_000,
        )),
        v => match number(&v) {
            Some(n) => narrow(n + step as f64, doc.get(path)),
            None if step == 0 => v,
            None => return None,
        },
    };
    doc.insert(path, value);
    Some(())
}

/// A number in the BSON type the field already has (int stays int where it fits).
fn narrow(n: f64, like: Option<&Bson>) -> Bson {
    match like {
        Some(Bson::Int32(_)) if n.fract() == 0.0 && n.abs() <= f64::from(i32::MAX) => {
            Bson::Int32(n as i32)
        }
        Some(Bson::Int64(_)) if n.fract() == 0.0 => Bson::Int64(n as i64),
        _ => Bson::Double(n),
    }
}

/// `"$field"` (top level only): the field a simple change can set.
fn path_of(v: &Bson) -> Option<&str> {
    let p = v.as_str()?.strip_prefix('$')?;
    (!p.is_empty() && !p.starts_with('$') && !p.contains('.')).then_some(p)
}

fn operator(v: &Bson) -> Option<(&str, Vec<Bson>)> {
    let d = v.as_document()?;
    if d.len() != 1 {
        return None;
    }
    let (op, arg) = d.iter().next()?;
    let args = match arg {
        Bson::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    Some((op.as_str(), args))
}

fn eval(v: &Bson, doc: &Document) -> Option<Bson> {
    if let Some(s) = v.as_str() {
        return match s.strip_prefix('$') {
            Some(p) if !p.starts_with('$') => Some(lookup(doc, p)),
            Some(_) => None,
            None => Some(v.clone()),
        };
    }
    if let Bson::Array(items) = v {
        return items
            .iter()
            .map(|i| eval(i, doc))
            .collect::<Option<Vec<_>>>()
            .map(Bson::Array);
    }
    let Some((op, args)) = operator(v) else {
        return if v.as_document().is_some() {
            None
        } else {
            Some(v.clone())
        };
    };
    let vals = || {
        args.iter()
            .map(|a| eval(a, doc))
            .collect::<Option<Vec<_>>>()
    };
    let cmp = |want: &[Ordering]| -> Option<Bson> {
        let v = vals()?;
        let [a, b] = v.as_slice() else { return None };
        Some(Bson::Boolean(
            compare(a, b).is_some_and(|o| want.contains(&o)),
        ))
    };
    match op {
        "$eq" => cmp(&[Ordering::Equal]),
        "$ne" => cmp(&[Ordering::Equal]).map(|b| Bson::Boolean(!truthy(&b))),
        "$gt" => cmp(&[Ordering::Greater]),
        "$gte" => cmp(&[Ordering::Greater, Ordering::Equal]),
        "$lt" => cmp(&[Ordering::Less]),
        "$lte" => cmp(&[Ordering::Less, Ordering::Equal]),
        "$and" => Some(Bson::Boolean(vals()?.iter().all(truthy))),
        "$or" => Some(Bson::Boolean(vals()?.iter().any(truthy))),
        "$not" => Some(Bson::Boolean(!truthy(vals()?.first()?))),
        "$add" | "$multiply" => arithmetic(op, &vals()?),
        "$subtract" => {
            let v = vals()?;
            let [a, b] = v.as_slice() else { return None };
            match (a, b) {
                (Bson::DateTime(x), Bson::DateTime(y)) => {
                    Some(Bson::Int64(x.timestamp_millis() - y.timestamp_millis()))
                }
                _ => Some(Bson::Double(number(a)? - number(b)?)),
            }
        }
        "$size" => match vals()?.first()? {
            Bson::Array(a) => Some(Bson::Int64(a.len() as i64)),
            _ => None,
        },
        "$ifNull" => vals()?
            .into_iter()
            .find(|v| !matches!(v, Bson::Null | Bson::Undefined))
            .or(Some(Bson::Null)),
        "$in" => {
            let v = vals()?;
            let [x, Bson::Array(list)] = v.as_slice() else {
                return None;
            };
            Some(Bson::Boolean(
                list.iter().any(|i| compare(x, i) == Some(Ordering::Equal)),
            ))
        }
        "$literal" => args.first().cloned(),
        _ => None,
    }
}

fn arithmetic(op: &str, vals: &[Bson]) -> Option<Bson> {
    let mut date = None;
    let mut acc = if op == "$add" { 0.0 } else { 1.0 };
    for v in vals {
        match v {
            Bson::DateTime(d) if op == "$add" && date.is_none() => {
                date = Some(d.timestamp_millis())
            }
            _ if op == "$add" => acc += number(v)?,
            _ => acc *= number(v)?,
        }
    }
    Some(match date {
        Some(ms) => Bson::DateTime(DateTime::from_millis(ms + acc as i64)),
        None => Bson::Double(acc),
    })
}

fn lookup(doc: &Document, path: &str) -> Bson {
    let mut cur = Bson::Document(doc.clone());
    for part in path.split('.') {
        cur = match cur {
            Bson::Document(d) => d.get(part).cloned().unwrap_or(Bson::Null),
            _ => Bson::Null,
        };
    }
    cur
}

fn number(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        Bson::Decimal128(d) => d.to_string().parse().ok(),
        _ => None,
    }
}

fn compare(a: &Bson, b: &Bson) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return x.partial_cmp(&y);
    }
    match (a, b) {
        (Bson::String(x), Bson::String(y)) => Some(x.cmp(y)),
        (Bson::DateTime(x), Bson::DateTime(y)) => Some(x.cmp(y)),
        (Bson::Boolean(x), Bson::Boolean(y)) => Some(x.cmp(y)),
        (Bson::Null, Bson::Null) => Some(Ordering::Equal),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => Some(x.cmp(y)),
        _ if std::mem::discriminant(a) != std::mem::discriminant(b) => Some(Ordering::Less),
        _ => None,
    }
}

fn truthy(v: &Bson) -> bool {
    match v {
        Bson::Boolean(b) => *b,
        Bson::Null | Bson::Undefined => false,
        other => number(other).is_none_or(|n| n != 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    fn no_enums(_: &str) -> Vec<Bson> {
        Vec::new()
    }

    #[test]
    fn an_equation_is_met_by_assigning_its_field() {
        let rule = bson!({ "$eq": ["$total", { "$add": ["$subtotal", "$tax"] }] });
        let mut d = doc! { "subtotal": 1, "tax": 1, "total": 1 };
        assert_eq!(holds(&rule, &d), Some(false));
        assert!(satisfy(&rule, &mut d, &no_enums));
        assert_eq!(d.get("total"), Some(&Bson::Int32(2)));
    }

    #[test]
    fn a_strict_date_order_moves_one_bound() {
        let rule = bson!({ "$gt": ["$end", "$start"] });
        let t = DateTime::from_millis(1_000_000);
        let mut d = doc! { "start": t, "end": t };
        assert!(satisfy(&rule, &mut d, &no_enums));
        assert!(d.get_datetime("end").unwrap() > d.get_datetime("start").unwrap());
    }

    #[test]
    fn an_or_takes_the_first_branch_that_can_be_met() {
        let rule = bson!({ "$or": [ { "$ne": ["$type", "direct"] }, { "$eq": [{ "$size": "$ids" }, 2] } ] });
        let mut d = doc! { "type": "direct", "ids": [1] };
        let enums = |f: &str| {
            if f == "type" {
                vec![Bson::from("direct"), Bson::from("group")]
            } else {
                vec![]
            }
        };
        assert!(satisfy(&rule, &mut d, &enums));
        assert_eq!(d.get_str("type").unwrap(), "group");
    }

    #[test]
    fn unknown_operators_are_unknown() {
        let rule = bson!({ "$regexMatch": { "input": "$a", "regex": "x" } });
        assert_eq!(holds(&rule, &doc! { "a": "x" }), None);
        assert!(!satisfy(&rule, &mut doc! { "a": "x" }, &no_enums));
    }
}
