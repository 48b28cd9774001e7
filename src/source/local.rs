//! Local paths given to `ingest-file`: files as named, directories walked recursively and
//! filtered by the include globs, in sorted order.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

/// Object keys and file names taken by default.
pub const DEFAULT_INCLUDE: &[&str] = &[
    "*.json",
    "*.json.gz",
    "*.jsonl",
    "*.jsonl.gz",
    "*.ndjson",
    "*.ndjson.gz",
    "*.log",
    "*.log.gz",
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

/// Expands `paths` into canonical file paths.
pub fn expand_paths(paths: &[PathBuf], include: &GlobSet) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let canonical = path
            .canonicalize()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if canonical.is_dir() {
            let mut found = Vec::new();
            walk(&canonical, include, &mut found)?;
            found.sort();
            files.extend(found);
        } else {
            files.push(canonical);
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    Ok(files)
}

fn walk(dir: &Path, include: &GlobSet, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, include, found)?;
        } else if include.is_match(&path) {
            found.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_globs_take_log_files_only() {
        let set = include_set(&default_include()).unwrap();
        for yes in ["a.json", "x/y/a.json.gz", "a.ndjson", "b.log.gz", "c.jsonl"] {
            assert!(set.is_match(yes), "{yes}");
        }
        for no in ["a.txt", "a.json.bak", "x/a.csv.gz", "a.gz"] {
            assert!(!set.is_match(no), "{no}");
        }
    }
}
