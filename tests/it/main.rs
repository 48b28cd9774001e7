//! Integration tests: one binary (as ripgrep does), against a real PostgreSQL. Each
//! `#[sqlx::test]` gets a fresh database with the migrations applied; set DATABASE_URL to a
//! server where the test user may create databases (see README, "Tests").

mod cli;
mod compressions;
mod decode;
mod delta;
mod discovery;
mod exactly_once;
mod failures;
mod fencing;
mod lake;
mod mapping;
mod notifications;
mod operations;
mod operator;
mod outage;
mod partitions;
mod run;
mod s3;
mod s3_reads;
mod service;
mod small_files;
mod sources;
mod transform;
mod types;
mod util;
mod versions;
mod whole_file;
