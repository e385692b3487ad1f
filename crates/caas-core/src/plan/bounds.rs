//! The order of shard-key bounds, as MongoDB compares them: field by field in key order,
//! each value by BSON type first (MinKey < null < numbers < strings < objects < arrays <
//! binary < ObjectId < booleans < dates < timestamps < regex < MaxKey; the manual's
//! "Comparison/Sort Order"), then within the type. Shard keys use the simple collation, so
//! strings compare by their bytes. Values this does not order (a Decimal128, a nested
//! document) make the answer `None`: unknown, never a guess.

use std::cmp::Ordering;

use bson::{Bson, Document};

/// Where a value's type sorts; `None` for types this module does not compare.
fn rank(v: &Bson) -> Option<u8> {
    Some(match v {
        Bson::MinKey => 0,
        Bson::Null | Bson::Undefined => 1,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => 2,
        Bson::String(_) | Bson::Symbol(_) => 3,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::MaxKey => 12,
        _ => return None,
    })
}

fn number(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) if !d.is_nan() => Some(*d),
        _ => None,
    }
}

/// One value against another.
fn compare_value(a: &Bson, b: &Bson) -> Option<Ordering> {
    let (ra, rb) = (rank(a)?, rank(b)?);
    if ra != rb {
        return Some(ra.cmp(&rb));
    }
    Some(match (a, b) {
        (Bson::String(x) | Bson::Symbol(x), Bson::String(y) | Bson::Symbol(y)) => {
            x.as_bytes().cmp(y.as_bytes())
        }
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.cmp(y),
        _ if ra == 2 => number(a)?.partial_cmp(&number(b)?)?,
        _ => Ordering::Equal,
    })
}

/// One bound against another of the same key (the same fields in the same order).
pub fn compare(a: &Document, b: &Document) -> Option<Ordering> {
    if a.len() != b.len() || a.keys().zip(b.keys()).any(|(x, y)| x != y) {
        return None;
    }
    for (x, y) in a.values().zip(b.values()) {
        match compare_value(x, y)? {
            Ordering::Equal => continue,
            other => return Some(other),
        }
    }
    Some(Ordering::Equal)
}

/// Whether `[a_min, a_max)` and `[b_min, b_max)` share a key.
pub fn overlaps(a: (&Document, &Document), b: (&Document, &Document)) -> Option<bool> {
    Some(compare(a.0, b.1)? == Ordering::Less && compare(b.0, a.1)? == Ordering::Less)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn t(id: &str) -> (Document, Document) {
        (
            doc! { "tenant_id": id, "_id": Bson::MinKey },
            doc! { "tenant_id": id, "_id": Bson::MaxKey },
        )
    }

    #[test]
    fn tenant_ranges_order_by_id_bytes_and_do_not_overlap_each_other() {
        let (acme, acme2, beta) = (t("acme"), t("acme2"), t("beta"));
        assert_eq!(compare(&acme.1, &acme2.0), Some(Ordering::Less));
        assert_eq!(
            overlaps((&acme.0, &acme.1), (&acme2.0, &acme2.1)),
            Some(false)
        );
        assert_eq!(overlaps((&acme.0, &acme.1), (&acme.0, &acme.1)), Some(true));
        // A hand-made range from `a` to `b` holds every tenant id in between.
        let wide = (
            doc! { "tenant_id": "a", "_id": Bson::MinKey },
            doc! { "tenant_id": "b", "_id": Bson::MinKey },
        );
        assert_eq!(overlaps((&acme.0, &acme.1), (&wide.0, &wide.1)), Some(true));
        assert_eq!(
            overlaps((&beta.0, &beta.1), (&wide.0, &wide.1)),
            Some(false),
            "max is exclusive"
        );
    }

    #[test]
    fn types_sort_as_mongodb_sorts_them_and_unknown_ones_give_no_answer() {
        let one = |v: Bson| doc! { "k": v };
        let order = [
            Bson::MinKey,
            Bson::Null,
            Bson::Int32(-5),
            Bson::Double(2.5),
            Bson::Int64(3),
            Bson::String("A".into()),
            Bson::String("a".into()),
            Bson::ObjectId(bson::oid::ObjectId::from_bytes([0; 12])),
            Bson::Boolean(false),
            Bson::Boolean(true),
            Bson::DateTime(bson::DateTime::from_millis(0)),
            Bson::MaxKey,
        ];
        for w in order.windows(2) {
            assert_eq!(
                compare(&one(w[0].clone()), &one(w[1].clone())),
                Some(Ordering::Less),
                "{:?} < {:?}",
                w[0],
                w[1]
            );
        }
        let dec = Bson::Decimal128(bson::Decimal128::from_bytes([0; 16]));
        assert_eq!(compare(&one(dec), &one(Bson::Int32(1))), None);
        assert_eq!(
            compare(&doc! { "a": 1 }, &doc! { "b": 1 }),
            None,
            "another key"
        );
    }
}
