//! One integration-test binary (one shared test server): modules by subject.

mod support;

mod adopt;
mod cli_conventions;
mod compile_golden;
mod exactly_once;
mod examples;
mod faults;
mod guards;
mod hostile;
mod isolation;
mod json_output;
mod lifecycle;
mod lint_fixtures;
mod live_migrate;
mod live_roles;
mod live_schema;
mod live_seed;
mod live_validators;
mod offboard;
mod sharding;
mod typed_errors;
