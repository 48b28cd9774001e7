//! Local paths given to `ingest-file`: files as named, directories walked recursively (see
//! [`super::walk`]) and filtered by the include globs, in sorted order; and the include globs
//! themselves.

use std::path::PathBuf;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::walk::{SkipReason, Walk, WalkStats};

/// Object keys and file names taken by default: log files, plain or compressed (the
/// compression is detected from the content, the suffix only selects the file).
pub const DEFAULT_INCLUDE: &[&str] = &[
    "*.json",
    "*.json.{gz,zst,bz2,xz}",
    "*.jsonl",
    "*.jsonl.{gz,zst,bz2,xz}",
    "*.ndjson",
    "*.ndjson.{gz,zst,bz2,xz}",
    "*.log",
    "*.log.{gz,zst,bz2,xz}",
];

/// Builds the include filter; patterns match the file name or the whole key.
pub fn include_set(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(Glob::new(pattern)?);
        if !pattern.contains('/') {
            builder.add(Glob::new(&format!("**/{pattern}"))?);
        }
    }
    builder.build()
}

/// The default include patterns.
pub fn default_include() -> Vec<String> {
    DEFAULT_INCLUDE.iter().map(|s| s.to_string()).collect()
}

/// What `ingest-file` takes from its arguments.
#[derive(Debug, Default)]
pub struct Expanded {
    /// Canonical paths of regular files, each once, in argument order (directories sorted).
    pub files: Vec<PathBuf>,
    /// Entries skipped while walking (logged one by one as they were met).
    pub stats: WalkStats,
}

/// Expands `paths` into canonical file paths. A path given by the user is resolved (a link
/// named on the command line is what the user asked for); links met while walking a
/// directory are not followed unless `follow_symlinks`, and then never out of that
/// directory. Anything that is not a regular file is skipped with a warning.
pub fn expand_paths(
    paths: &[PathBuf],
    include: &GlobSet,
    follow_symlinks: bool,
) -> std::io::Result<Expanded> {
    let mut expanded = Expanded::default();
    for path in paths {
        let canonical = path
            .canonicalize()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let meta = std::fs::metadata(&canonical)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            let mut walk = Walk::new(&canonical, follow_symlinks, "")
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            for found in walk.by_ref() {
                if !include.is_match(&found.path) {
                    continue;
                }
                let canonical = found.canonical();
                // The key is the absolute path: the folder's own name must be text too.
                if canonical.to_str().is_none() {
                    expanded.stats.skip(canonical, SkipReason::NotUtf8, None);
                    continue;
                }
                expanded.files.push(canonical.to_path_buf());
            }
            expanded.stats.merge(&walk.stats());
        } else if !meta.is_file() {
            expanded
                .stats
                .skip(&canonical, SkipReason::NotRegular, None);
        } else if canonical.to_str().is_none() {
            expanded.stats.skip(&canonical, SkipReason::NotUtf8, None);
        } else {
            expanded.stats.files += 1;
            expanded.files.push(canonical);
        }
    }
    let mut seen = std::collections::HashSet::new();
    expanded.files.retain(|f| seen.insert(f.clone()));
    Ok(expanded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_globs_take_log_files_only() {
        let set = include_set(&default_include()).unwrap();
        for yes in [
            "a.json",
            "x/y/a.json.gz",
            "a.ndjson",
            "b.log.gz",
            "c.jsonl",
            "x.json.zst",
            "x/x.ndjson.bz2",
            "x.log.xz",
            "c.jsonl.zst",
        ] {
            assert!(set.is_match(yes), "{yes}");
        }
        for no in [
            "a.txt",
            "a.json.bak",
            "x/a.csv.gz",
            "a.gz",
            "a.zst",
            "a.json.lz4",
            "a.tar.xz",
            "a.json.zstd",
        ] {
            assert!(!set.is_match(no), "{no}");
        }
    }
}
