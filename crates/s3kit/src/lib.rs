//! S3 tools for ingestor's tests and benches.
//!
//! - [`proxy`]: an HTTP proxy in front of an S3-protocol server that adds latency, injects
//!   faults and counts requests by kind (the `fault-proxy` program runs one);
//! - the `get-loop` program: a plain concurrent GET loop through object_store, the ceiling
//!   the small-files bench compares ingestion from S3 with.

pub mod proxy;

pub use proxy::{Counts, Decide, Fault, FaultProxy, Kind, Options};
