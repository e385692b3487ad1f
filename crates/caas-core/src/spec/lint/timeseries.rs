//! Time-series collections: time and meta fields, granularity and expiry.

use super::*;
use crate::spec::model::*;

impl Linter<'_> {
    pub(super) fn time_series(&mut self) {
        let Some(ts) = &self.spec.time_series else {
            return;
        };
        let fields = self.spec.effective_fields(None);
        match fields.get(&ts.time_field) {
            Some((f, _)) if f.kind == FieldType::Date => {}
            Some(_) => self.error(
                "time-series",
                self.value("/time_series/time_field"),
                "/time_series/time_field",
                format!("time field `{}` is not a date", ts.time_field),
                "declare it with `type: date`",
            ),
            None => self.error(
                "time-series",
                self.value("/time_series/time_field"),
                "/time_series/time_field",
                format!("time field `{}` is not declared", ts.time_field),
                format!(
                    "declare `{}: {{type: date, required: true}}` under fields",
                    ts.time_field
                ),
            ),
        }
        if let Some(meta) = &ts.meta_field {
            if !fields.contains_key(meta) {
                self.error(
                    "time-series",
                    self.value("/time_series/meta_field"),
                    "/time_series/meta_field",
                    format!("meta field `{meta}` is not declared"),
                    format!("declare `{meta}` under fields"),
                );
            }
        }
        if self.spec.soft_delete.is_some() {
            self.error(
                "time-series",
                self.key("/soft_delete"),
                "/soft_delete",
                "time-series collections cannot soft-delete (measurements are not updated)".into(),
                "remove `soft_delete`; use `time_series.expire_after_seconds` for retention",
            );
        }
        if !self.spec.rules.is_empty() {
            self.error("time-series", self.key("/rules"), "/rules", "rules cannot be enforced on a time-series collection: MongoDB refuses validators there".into(), "remove `rules`, or check them in the writing service");
        }
        if self.spec.validation().level != ValidationLevel::Off && !self.spec.fields.is_empty() {
            self.warning(
                "time-series-validation",
                self.key("/time_series"),
                "/time_series",
                "field rules are not enforced on a time-series collection: MongoDB refuses validators there, so caas emits none and uses the fields for docs and seed data only".into(),
                "write `validation: {level: off}` to acknowledge, or drop `time_series` if the rules must be enforced",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lint_text;

    #[test]
    fn a_time_series_without_expiry_is_a_warning() {
        let text = "collection: ticks\ndomain: analytics\nstandard_fields: false\ntime_series: { time_field: ts }\nfields:\n  ts: { type: date, required: true }\n";
        let got = lint_text("analytics/ticks.yaml", text);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!(got[0].severity, crate::base::diagnostic::Severity::Warning);
    }

    #[test]
    fn the_time_field_must_be_a_declared_date() {
        let text = "collection: ticks\ndomain: analytics\nstandard_fields: false\ntime_series: { time_field: at, expire_after_seconds: 3600 }\nfields:\n  ts: { type: date, required: true }\n";
        let got = lint_text("analytics/ticks.yaml", text);
        assert!(got.iter().any(|f| f.message.contains("`at`")), "{got:#?}");
    }
}
