//! Making spooled Parquet files visible in the lake, and removing files a source object no
//! longer produces.

use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;

use super::lake::{Lake, LakeError, LakeLocation, relative_path};
use super::writer::Staged;

/// A Parquet file now visible in the lake.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    /// Relative to the lake's root: `date=YYYY-MM-DD/<stem>[-<part>].parquet`.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

impl Lake {
    /// Removes the spool files a killed run left for the object named `stem`.
    pub fn clean_spool(&self, stem: &str) -> Result<(), LakeError> {
        let io = |source| LakeError::Io {
            path: self.spool.display().to_string(),
            source,
        };
        let prefix = format!("{stem}.");
        for entry in std::fs::read_dir(&self.spool).map_err(io)? {
            let entry = entry.map_err(io)?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(e)),
                }
            }
        }
        Ok(())
    }

    /// Moves `staged` files to their final names: a rename in a local folder, one upload
    /// (a multipart upload completed at the end for large files) in an object store. Each
    /// file appears whole or not at all; an existing file of the same name is replaced.
    pub async fn publish(
        &self,
        stem: &str,
        staged: Vec<Staged>,
    ) -> Result<Vec<Published>, LakeError> {
        let mut published = Vec::with_capacity(staged.len());
        for file in staged {
            let path = relative_path(&file.day, stem, file.part);
            match &self.location {
                LakeLocation::Local(root) => {
                    let target = root.join(&path);
                    let io = |source| LakeError::Io {
                        path: target.display().to_string(),
                        source,
                    };
                    if let Some(dir) = target.parent() {
                        tokio::fs::create_dir_all(dir).await.map_err(io)?;
                    }
                    let temp = file.temp;
                    let target_for_rename = target.clone();
                    tokio::task::spawn_blocking(move || temp.persist(&target_for_rename))
                        .await
                        .map_err(|e| io(std::io::Error::other(e)))?
                        .map_err(|e| io(e.error))?;
                }
                LakeLocation::Store { url, store, prefix } => {
                    let target = Lake::object_path(prefix, &path);
                    let io = |source| LakeError::Io {
                        path: format!("{url}/{path}"),
                        source,
                    };
                    let mut source = tokio::fs::File::open(&file.temp).await.map_err(io)?;
                    let mut upload = object_store::buffered::BufWriter::new(store.clone(), target);
                    let copied = async {
                        tokio::io::copy(&mut source, &mut upload).await?;
                        upload.shutdown().await
                    }
                    .await;
                    if let Err(e) = copied {
                        let _ = upload.abort().await;
                        return Err(io(e));
                    }
                    // The spool file is removed when `file.temp` drops.
                }
            }
            published.push(Published {
                path,
                rows: file.rows,
                bytes: file.bytes,
            });
        }
        Ok(published)
    }

    /// Removes files (relative paths) from the lake; missing ones are fine.
    pub async fn remove(&self, paths: &[String]) -> Result<(), LakeError> {
        for path in paths {
            match &self.location {
                LakeLocation::Local(root) => {
                    let target = root.join(path);
                    match tokio::fs::remove_file(&target).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => {
                            return Err(LakeError::Io {
                                path: target.display().to_string(),
                                source,
                            });
                        }
                    }
                }
                LakeLocation::Store { url, store, prefix } => {
                    match store.delete(&Lake::object_path(prefix, path)).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(source) => {
                            return Err(LakeError::Store {
                                path: format!("{url}/{path}"),
                                source,
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
