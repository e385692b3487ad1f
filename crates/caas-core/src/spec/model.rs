//! The spec language: one YAML file describes one logical collection.
//!
//! These types are the single source of truth for the format. The JSON Schema that editors
//! and `caas schema lint` use is derived from them (`caas schema json-schema`), so a key
//! documented here is a key the meta-schema accepts, and nothing else is.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::index::IndexSpec;
pub use crate::tenancy::Domain;

/// A collection spec: fields, rules, indexes and tenancy of one logical collection.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "caas collection spec")]
pub struct CollectionSpec {
    /// Logical collection name (the physical name depends on the tenant tier).
    pub collection: String,
    /// The domain, which decides the database: `saas` collections follow the tenant's tier,
    /// the others live in their domain's database (see `[databases]` in caas.toml).
    pub domain: Domain,
    /// What the collection is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The service that owns this data (seed 000: the owner of the business responsibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Other services' access to this collection, beyond its owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<AccessGrant>,
    /// Documents carry a required `tenant_id`. Defaults to true for domain `saas`, false otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_scoped: Option<bool>,
    /// `created_at`, `updated_at` and `__v` (seed 001). `true` (default), `false`, or custom names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_fields: Option<StandardFields>,
    /// Whether documents may carry fields the spec does not declare. Default false.
    #[serde(default)]
    pub allow_extra_fields: bool,
    /// Validation level and action for the collection's validator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Validation>,
    /// Soft delete: `deleted_at`/`deleted_by` timestamps, or a state-history array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_delete: Option<SoftDelete>,
    /// Time-series options. MongoDB rejects validators on time-series collections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_series: Option<TimeSeries>,
    /// The collection's default collation (queries and indexes inherit it). Set at creation:
    /// MongoDB cannot change it in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<super::index::Collation>,
    /// The document's fields, in order.
    #[serde(default)]
    pub fields: IndexMap<String, Field>,
    /// Rules that span more than one field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Secondary indexes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexSpec>,
    /// The shard key on a sharded cluster (on a replica set: not applicable, ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<super::shard::Shard>,
}

/// Another service's access to the collection.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessGrant {
    /// The service granted access.
    pub service: String,
    /// `read` (find) or `write` (find, insert, update, remove).
    pub mode: AccessMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessMode {
    Read,
    Write,
}

/// `true`/`false`, or custom names for the standard fields (`false` drops one).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StandardFields {
    Enabled(bool),
    Named(StandardFieldNames),
}

/// Names of the standard fields; `false` leaves one out.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StandardFieldNames {
    #[serde(default = "default_created")]
    pub created_at: FieldName,
    #[serde(default = "default_updated")]
    pub updated_at: FieldName,
    #[serde(default = "default_version")]
    pub version: FieldName,
}

/// A field name, or `false` to leave the field out.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FieldName {
    Name(String),
    Off(bool),
}

impl FieldName {
    pub fn name(&self) -> Option<&str> {
        match self {
            FieldName::Name(n) => Some(n),
            FieldName::Off(_) => None,
        }
    }
}

fn default_created() -> FieldName {
    FieldName::Name("created_at".into())
}
fn default_updated() -> FieldName {
    FieldName::Name("updated_at".into())
}
fn default_version() -> FieldName {
    FieldName::Name("__v".into())
}

impl StandardFields {
    /// The resolved names: (created, updated, version), each optional.
    pub fn names(&self) -> [Option<String>; 3] {
        match self {
            StandardFields::Enabled(false) => [None, None, None],
            StandardFields::Enabled(true) => [
                Some("created_at".into()),
                Some("updated_at".into()),
                Some("__v".into()),
            ],
            StandardFields::Named(n) => [
                n.created_at.name().map(str::to_owned),
                n.updated_at.name().map(str::to_owned),
                n.version.name().map(str::to_owned),
            ],
        }
    }
}

/// Validator behaviour, as MongoDB's `validationLevel` and `validationAction`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    /// `strict` (default): all inserts and updates; `moderate`: only documents that are
    /// already valid; `off`: the validator is stored but not enforced.
    #[serde(default)]
    pub level: ValidationLevel,
    /// `error` (default) rejects invalid writes; `warn` logs them.
    #[serde(default)]
    pub action: ValidationAction,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValidationLevel {
    #[default]
    Strict,
    Moderate,
    Off,
}

impl ValidationLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationLevel::Strict => "strict",
            ValidationLevel::Moderate => "moderate",
            ValidationLevel::Off => "off",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValidationAction {
    #[default]
    Error,
    Warn,
}

impl ValidationAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationAction::Error => "error",
            ValidationAction::Warn => "warn",
        }
    }
}

/// Soft delete (seed 001's `deleted_at`/`deleted_by`, or seed 002's state history).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum SoftDelete {
    /// `deleted_at: Date | null` and `deleted_by: ObjectId | null`.
    DeletedAt {
        /// Purge soft-deleted documents this many days after deletion (a partial TTL index).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retention_days: Option<u32>,
        /// Name of the timestamp field. Default `deleted_at`.
        #[serde(default = "default_deleted_at")]
        field: String,
        /// Name of the actor field. Default `deleted_by`.
        #[serde(default = "default_deleted_by")]
        by_field: String,
    },
    /// A current `state` plus an array of `{state, at, by, reason}` changes.
    StateHistory {
        /// The allowed states; the first is the initial state.
        states: Vec<String>,
        /// States that count as deleted. Default: `["deleted"]`.
        #[serde(default = "default_deleted_states")]
        deleted_states: Vec<String>,
        /// Name of the current-state field. Default `state`.
        #[serde(default = "default_state_field")]
        state_field: String,
        /// Name of the history array. Default `state_history`.
        #[serde(default = "default_history_field")]
        field: String,
    },
}

fn default_deleted_at() -> String {
    "deleted_at".into()
}
fn default_deleted_by() -> String {
    "deleted_by".into()
}
fn default_deleted_states() -> Vec<String> {
    vec!["deleted".into()]
}
fn default_state_field() -> String {
    "state".into()
}
fn default_history_field() -> String {
    "state_history".into()
}

/// Time-series collection options.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeSeries {
    /// The date field that holds each measurement's time.
    pub time_field: String,
    /// The field that identifies the series (should rarely change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_field: Option<String>,
    /// Expected interval between measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granularity: Option<Granularity>,
    /// Delete measurements older than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Seconds,
    Minutes,
    Hours,
}

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Seconds => "seconds",
            Granularity::Minutes => "minutes",
            Granularity::Hours => "hours",
        }
    }
}

/// A field of the document.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The BSON type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// The field must be present.
    #[serde(default)]
    pub required: bool,
    /// `null` is allowed as well as the type.
    #[serde(default)]
    pub nullable: bool,
    /// What the field holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Allowed values.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<serde_json::Value>>,
    /// Regular expression the string must match (PCRE, as MongoDB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// Smallest allowed number (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest allowed number (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_items: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
    /// Array items must be distinct.
    #[serde(default)]
    pub unique_items: bool,
    /// The element type of an `array`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<Field>>,
    /// Nested fields of an `object`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<IndexMap<String, Field>>,
    /// Whether an `object` may carry undeclared fields. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_extra_fields: Option<bool>,
    /// The logical collection this id points to (documentation and integrity checks).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Holds a secret that must be stored hashed (seed data hashes it; docs flag it).
    #[serde(default)]
    pub secret: bool,
}

/// BSON types a field may have: `number` is any numeric type, `uuid` binary subtype 4,
/// `geo_point` a GeoJSON Point `{type: "Point", coordinates: [lng, lat]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Int,
    Long,
    Double,
    Decimal,
    // Any numeric type (int, long, double, decimal).
    Number,
    Bool,
    Date,
    ObjectId,
    // Binary subtype 4.
    Uuid,
    Binary,
    Object,
    Array,
    // GeoJSON Point: `{type: "Point", coordinates: [lng, lat]}`.
    GeoPoint,
    Any,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Long => "long",
            FieldType::Double => "double",
            FieldType::Decimal => "decimal",
            FieldType::Number => "number",
            FieldType::Bool => "bool",
            FieldType::Date => "date",
            FieldType::ObjectId => "object_id",
            FieldType::Uuid => "uuid",
            FieldType::Binary => "binary",
            FieldType::Object => "object",
            FieldType::Array => "array",
            FieldType::GeoPoint => "geo_point",
            FieldType::Any => "any",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Int
                | FieldType::Long
                | FieldType::Double
                | FieldType::Decimal
                | FieldType::Number
        )
    }
}

impl Field {
    /// A field of the given type with every option at its default.
    pub fn of(kind: FieldType) -> Field {
        Field {
            kind,
            required: false,
            nullable: false,
            description: None,
            enum_values: None,
            pattern: None,
            min_length: None,
            max_length: None,
            min: None,
            max: None,
            min_items: None,
            max_items: None,
            unique_items: false,
            items: None,
            fields: None,
            allow_extra_fields: None,
            reference: None,
            secret: false,
        }
    }
}

/// A rule over several fields.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Rule {
    AnyOfRequired(AnyOfRequiredRule),
    Conditional(ConditionalRule),
    Expr(ExprRule),
    JsonSchema(JsonSchemaRule),
    Query(QueryRule),
}

/// At least one of these fields is present (seed 002: first/last name, email or phone).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnyOfRequiredRule {
    pub any_of_required: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// When every `when` field equals its value, the `require` fields must be present
/// (seed 002: regular customers must have email and phone).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionalRule {
    pub when: IndexMap<String, serde_json::Value>,
    pub require: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A raw aggregation expression that must be true (compiled to `$expr`; seed 004: end after start).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExprRule {
    pub expr: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A raw `$jsonSchema` fragment every document must also satisfy (an `allOf` entry), for
/// what the field language cannot say: `caas schema pull` keeps a live validator's
/// `oneOf`, `patternProperties`, `exclusiveMinimum`... here rather than drop them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonSchemaRule {
    pub json_schema: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Raw query operators the validator holds beside `$jsonSchema` (MongoDB accepts a query
/// filter as a validator, e.g. `{status: {$in: [a, b]}}`); kept by `caas schema pull`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRule {
    pub query: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Rule {
    pub fn description(&self) -> Option<&str> {
        match self {
            Rule::AnyOfRequired(r) => r.description.as_deref(),
            Rule::Conditional(r) => r.description.as_deref(),
            Rule::Expr(r) => r.description.as_deref(),
            Rule::JsonSchema(r) => r.description.as_deref(),
            Rule::Query(r) => r.description.as_deref(),
        }
    }
}

impl CollectionSpec {
    /// Whether documents carry `tenant_id` (explicit, or by domain).
    pub fn is_tenant_scoped(&self) -> bool {
        self.tenant_scoped.unwrap_or(self.domain == Domain::Saas)
    }

    pub fn standard_field_names(&self) -> [Option<String>; 3] {
        self.standard_fields
            .clone()
            .unwrap_or(StandardFields::Enabled(true))
            .names()
    }

    pub fn validation(&self) -> Validation {
        self.validation.clone().unwrap_or_default()
    }
}

impl crate::tenancy::Logical for CollectionSpec {
    fn collection(&self) -> &str {
        &self.collection
    }
    fn domain(&self) -> Domain {
        self.domain
    }
    fn is_tenant_scoped(&self) -> bool {
        CollectionSpec::is_tenant_scoped(self)
    }
}
