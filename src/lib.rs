//! `ingestor`: moves JSON log files from S3 (or a local folder) into PostgreSQL, streaming,
//! exactly once, with DataFusion SQL transforms on the way.
//!
//! The journey of one file: [`source`] (bytes, decompression) -> [`decode`] (framing and
//! Arrow) -> [`transform`] (DataFusion SQL) -> [`sink`] (binary COPY) with [`jobs`]
//! tracking, tied together by [`pipeline`].

pub mod app;
pub mod buffers;
pub mod cancel;
pub mod cli;
pub mod config;
pub mod decode;
pub mod jobs;
pub mod limit;
pub mod metrics;
pub mod pipeline;
pub mod progress;
pub mod runner;
pub mod sample;
pub mod sink;
pub mod source;
pub mod text;
pub mod transform;
