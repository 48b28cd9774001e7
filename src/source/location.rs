//! One source object: a local file or an object in an object store, and how to open it as
//! a byte stream (object store reads resume where they broke off, see [`super::resume`]).

use std::path::PathBuf;
use std::sync::Arc;

use object_store::{
    GetOptions, GetResultPayload, ObjectStore, ObjectStoreExt, path::Path as ObjectPath,
};
use tokio_util::io::StreamReader;

use super::input::BoxRead;
use super::resume::resumable;
use super::version::ObjectVersion;

/// Where one file's bytes are.
#[derive(Debug, Clone)]
pub enum SourceRef {
    /// A file on the local disk (`ingest-file`).
    Local(PathBuf),
    /// An object in a store (S3, or a local folder standing in for a bucket).
    Object {
        store: Arc<dyn ObjectStore>,
        path: ObjectPath,
    },
}

impl SourceRef {
    /// True when the source is read as Parquet (by its extension).
    pub fn is_parquet(&self) -> bool {
        match self {
            SourceRef::Local(path) => is_parquet(&path.to_string_lossy()),
            SourceRef::Object { path, .. } => is_parquet(path.as_ref()),
        }
    }
}

/// Opens `source` for streaming reads; also returns the version being read. An object in a
/// store is read with one GET that resumes with ranged GETs of the same version when its
/// body breaks off.
pub async fn open(source: &SourceRef) -> std::io::Result<(BoxRead, ObjectVersion)> {
    match source {
        SourceRef::Local(path) => {
            let file = tokio::fs::File::open(path).await?;
            let version = ObjectVersion::of_file(&file.metadata().await?);
            Ok((Box::new(file), version))
        }
        SourceRef::Object { store, path } => {
            let result = store
                .get_opts(path, GetOptions::default())
                .await
                .map_err(std::io::Error::other)?;
            let version = ObjectVersion::of_meta(&result.meta);
            match result.payload {
                // object_store's stream over a local file reads 8 KiB at a time: read the
                // file directly instead.
                GetResultPayload::File(file, _) => {
                    Ok((Box::new(tokio::fs::File::from_std(file)), version))
                }
                GetResultPayload::Stream(body) => {
                    let stream = resumable(Arc::clone(store), path.clone(), &result.meta, body);
                    Ok((Box::new(StreamReader::new(stream)), version))
                }
            }
        }
    }
}

/// The current version of `source`, without reading it (Parquet input reads by ranges).
pub async fn version(source: &SourceRef) -> std::io::Result<ObjectVersion> {
    match source {
        SourceRef::Local(path) => Ok(ObjectVersion::of_file(&tokio::fs::metadata(path).await?)),
        SourceRef::Object { store, path } => {
            let meta = store.head(path).await.map_err(std::io::Error::other)?;
            Ok(ObjectVersion::of_meta(&meta))
        }
    }
}

/// True for keys and paths read as Parquet (by their extension).
pub fn is_parquet(name: &str) -> bool {
    let name = name.as_bytes();
    name.len() >= 8 && name[name.len() - 8..].eq_ignore_ascii_case(b".parquet")
}
