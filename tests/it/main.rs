//! The one integration-test binary: every suite is a module, the harnesses live once in
//! `support` (CLI runs, emulators, fixtures), `state_support` (MariaDB servers) and
//! `reliability_support` (fault injection).

// Tests print what helps read a failure.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod reliability_support;
mod state_support;
mod support;

mod cli;
mod cli_errors;
mod cli_verbs;
mod e2e_adopt;
mod e2e_apply;
mod e2e_catalog;
mod e2e_config;
mod e2e_dr_random;
mod e2e_drift;
mod e2e_failover;
mod e2e_flags;
mod e2e_latency;
mod e2e_power;
mod e2e_reliability;
mod e2e_repoint;
mod e2e_seed_truth;
mod e2e_state_mariadb;
mod e2e_switchover;
mod e2e_verify;
mod emulator_api;
mod emulator_config;
mod emulator_conformance;
mod emulator_guide;
mod emulator_mariadb;
mod emulator_mcp;
mod hostile_api;
mod parser_robustness;
mod plan_adopt;
mod plan_config;
mod plan_core;
mod plan_drift;
mod plan_failover;
mod plan_flags;
mod plan_last_copy;
mod plan_markdown;
mod plan_power;
mod plan_repoint;
mod plan_roles;
mod schemas_generated;
mod secrets;
mod skysql_client;
mod sql_sky;
mod state_contract;
mod state_local;
mod state_mariadb;
mod state_safety;
mod state_schema;
mod steps_api;
mod topology_corpus;
