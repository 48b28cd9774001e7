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

/// Reads `source` whole as stored, in one request (one read of a local file), with the
/// version read; for small files, whose reading would otherwise cost more in buffers and
/// hand-overs than their bytes. Refuses, with `FileTooLarge`, an object found larger
/// than `at_most` bytes (it may have been replaced by a large one since it was listed):
/// memory stays bounded by what the caller allows, never by the object.
pub async fn read_whole(
    source: &SourceRef,
    at_most: u64,
) -> std::io::Result<(bytes::Bytes, ObjectVersion)> {
    let too_large = move |size: u64| {
        std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("{size} bytes, more than the {at_most} read whole"),
        )
    };
    match source {
        SourceRef::Local(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut file = std::fs::File::open(&path)?;
                let metadata = file.metadata()?;
                if metadata.len() > at_most {
                    return Err(too_large(metadata.len()));
                }
                let mut stored = Vec::with_capacity(metadata.len() as usize);
                (&mut file).take(at_most + 1).read_to_end(&mut stored)?;
                if stored.len() as u64 > at_most {
                    return Err(too_large(stored.len() as u64));
                }
                Ok((stored.into(), ObjectVersion::of_file(&metadata)))
            })
            .await
            .map_err(std::io::Error::other)?
        }
        SourceRef::Object { store, path } => {
            let result = store
                .get_opts(path, GetOptions::default())
                .await
                .map_err(std::io::Error::other)?;
            if result.meta.size > at_most {
                return Err(too_large(result.meta.size));
            }
            let version = ObjectVersion::of_meta(&result.meta);
            let stored = result.bytes().await.map_err(std::io::Error::other)?;
            Ok((stored, version))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file read whole comes with the version read; one larger than allowed (a small file
    /// replaced by a large one since it was listed) is refused, not read.
    #[tokio::test]
    async fn a_file_read_whole_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, b"[{\"a\":1}]").unwrap();
        let source = SourceRef::Local(path.clone());
        let (stored, version) = read_whole(&source, 9).await.unwrap();
        assert_eq!(&stored[..], b"[{\"a\":1}]");
        assert_eq!(version.size, 9);
        std::fs::write(&path, vec![b' '; 10]).unwrap();
        let error = read_whole(&source, 9).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::FileTooLarge, "{error}");
    }
}
