//! `ingestor`: moves JSON log files from S3 (or a local folder) into PostgreSQL, streaming,
//! exactly once, with DataFusion SQL transforms on the way.
//!
//! The journey of one file: [`source`] (bytes, decompression) -> [`decode`] (framing and
//! Arrow, the `ingestor-decode` crate) -> [`transform`] (DataFusion SQL) -> [`sink`] (binary
//! COPY) with [`jobs`] tracking, tied together by [`pipeline`].

pub use ingestor_decode as decode;
pub use ingestor_decode::buffers;
pub use ingestor_sample as sample;

pub mod app;
pub mod cancel;
pub mod cli;
pub mod config;
pub mod endpoint;
pub mod events;
pub mod health;
pub mod jobs;
pub mod limit;
pub mod metrics;
pub mod pipeline;
pub mod progress;
pub mod retention;
pub mod runner;
pub mod sink;
pub mod source;
pub mod text;
pub mod transform;
