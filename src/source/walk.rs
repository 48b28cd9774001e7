//! Walking a local folder (`ingest-file DIR`, `run --local-buckets`): regular files only, in
//! name order, one directory's names in memory at a time.
//!
//! Symbolic links met while walking are skipped unless `follow_symlinks`; followed links
//! never lead out of the walked folder (the link's target is resolved and must lie inside
//! it) nor into a loop (a directory already on the current path, by device and inode).
//! FIFOs, sockets and devices are skipped (reading a FIFO would block forever), and so are
//! names that are not UTF-8 (a key must be text). Every skipped entry is logged with its
//! path and reason, counted in [`WalkStats`] and in `ingestor_keys_skipped_total`; a
//! directory that cannot be read is skipped the same way, so one bad entry never stops the
//! walk.

use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::events;

/// Why an entry was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A symbolic link, not followed (`--follow-symlinks` is off).
    Symlink,
    /// A followed link whose target lies outside the walked folder.
    OutsideRoot,
    /// A followed link to a directory already on the current path.
    Loop,
    /// A link whose target does not exist or cannot be resolved.
    BrokenLink,
    /// A FIFO, socket or device.
    NotRegular,
    /// A name that is not valid UTF-8.
    NotUtf8,
    /// A file or directory that cannot be read (permissions, I/O error).
    Unreadable,
}

impl SkipReason {
    /// What the log line says.
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::Symlink => "symbolic link not followed (use --follow-symlinks)",
            SkipReason::OutsideRoot => "symbolic link leads outside the walked folder",
            SkipReason::Loop => "symbolic link leads back into its own path (a loop)",
            SkipReason::BrokenLink => "symbolic link cannot be resolved",
            SkipReason::NotRegular => "not a regular file (FIFO, socket or device)",
            SkipReason::NotUtf8 => "name is not valid UTF-8 (it cannot be stored as a key)",
            SkipReason::Unreadable => "cannot be read",
        }
    }
}

/// Entries skipped by a walk, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    pub files: u64,
    pub symlinks: u64,
    pub not_regular: u64,
    pub bad_names: u64,
    pub unreadable: u64,
}

impl WalkStats {
    /// Entries skipped, all reasons together.
    pub fn skipped(&self) -> u64 {
        self.symlinks + self.not_regular + self.bad_names + self.unreadable
    }

    pub fn merge(&mut self, other: &WalkStats) {
        self.files += other.files;
        self.symlinks += other.symlinks;
        self.not_regular += other.not_regular;
        self.bad_names += other.bad_names;
        self.unreadable += other.unreadable;
    }

    /// Counts one skipped entry and logs it.
    pub(crate) fn skip(&mut self, path: &Path, reason: SkipReason, detail: Option<&str>) {
        match reason {
            SkipReason::Symlink
            | SkipReason::OutsideRoot
            | SkipReason::Loop
            | SkipReason::BrokenLink => self.symlinks += 1,
            SkipReason::NotRegular => self.not_regular += 1,
            SkipReason::NotUtf8 => self.bad_names += 1,
            SkipReason::Unreadable => self.unreadable += 1,
        }
        events::entry_skipped(path, reason.describe(), detail);
    }
}

/// A regular file found by a walk.
#[derive(Debug)]
pub struct Found {
    /// The path as walked (under the root, through any followed links).
    pub path: PathBuf,
    /// The path relative to the root, `/`-separated.
    pub relative: String,
    /// The file's canonical path when it was reached through a followed link (None: `path`
    /// is already canonical).
    pub real: Option<PathBuf>,
    /// The file's metadata (of the link's target when reached through a link).
    pub meta: Metadata,
}

impl Found {
    /// The canonical path: the same file reached through links has the same one.
    pub fn canonical(&self) -> &Path {
        self.real.as_deref().unwrap_or(&self.path)
    }
}

struct Frame {
    dir: PathBuf,
    /// Relative path of the directory with a trailing `/` (empty at the root).
    relative: String,
    /// Canonical path when the directory was reached through a followed link.
    real: Option<PathBuf>,
    id: (u64, u64),
    names: std::vec::IntoIter<OsString>,
}

/// A depth-first walk of one folder, in name order (as a sort of the paths would give).
pub struct Walk {
    root: PathBuf,
    follow_symlinks: bool,
    /// Only files whose relative path starts with this (a plain string prefix).
    prefix: String,
    stack: Vec<Frame>,
    stats: WalkStats,
}

impl Walk {
    /// Walks `root`, which must be a canonical directory path.
    pub fn new(root: &Path, follow_symlinks: bool, prefix: &str) -> std::io::Result<Walk> {
        let meta = std::fs::metadata(root)?;
        let mut walk = Walk {
            root: root.to_path_buf(),
            follow_symlinks,
            prefix: prefix.to_string(),
            stack: Vec::new(),
            stats: WalkStats::default(),
        };
        let names = read_names(root)?;
        walk.stack.push(Frame {
            dir: root.to_path_buf(),
            relative: String::new(),
            real: None,
            id: (meta.dev(), meta.ino()),
            names: names.into_iter(),
        });
        Ok(walk)
    }

    /// Entries skipped so far and files found.
    pub fn stats(&self) -> WalkStats {
        self.stats
    }

    /// True when a directory with relative path `dir` (ending in `/`) may hold keys under
    /// the prefix.
    fn may_hold(&self, dir: &str) -> bool {
        dir.starts_with(&self.prefix) || self.prefix.starts_with(dir)
    }

    fn step(&mut self) -> Option<Option<Found>> {
        let frame = self.stack.last_mut()?;
        let Some(name) = frame.names.next() else {
            self.stack.pop();
            return Some(None);
        };
        let path = frame.dir.join(&name);
        let Some(name) = name.to_str() else {
            self.stats.skip(&path, SkipReason::NotUtf8, None);
            return Some(None);
        };
        let relative = format!("{}{name}", frame.relative);
        let parent_real = frame.real.clone();
        let link_meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // Removed since the directory was read: nothing to take.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(None),
            Err(e) => {
                self.stats
                    .skip(&path, SkipReason::Unreadable, Some(&e.to_string()));
                return Some(None);
            }
        };
        let (meta, real) = if link_meta.file_type().is_symlink() {
            if !self.follow_symlinks {
                self.stats.skip(&path, SkipReason::Symlink, None);
                return Some(None);
            }
            let target = match std::fs::canonicalize(&path) {
                Ok(target) => target,
                Err(e) => {
                    self.stats
                        .skip(&path, SkipReason::BrokenLink, Some(&e.to_string()));
                    return Some(None);
                }
            };
            if !target.starts_with(&self.root) {
                let detail = format!("target {}", target.display());
                self.stats
                    .skip(&path, SkipReason::OutsideRoot, Some(&detail));
                return Some(None);
            }
            match std::fs::metadata(&target) {
                Ok(meta) => (meta, Some(target)),
                Err(e) => {
                    self.stats
                        .skip(&path, SkipReason::BrokenLink, Some(&e.to_string()));
                    return Some(None);
                }
            }
        } else {
            (link_meta, parent_real.map(|dir| dir.join(name)))
        };
        if meta.is_dir() {
            let dir_relative = format!("{relative}/");
            if !self.may_hold(&dir_relative) {
                return Some(None);
            }
            let id = (meta.dev(), meta.ino());
            if self.stack.iter().any(|f| f.id == id) {
                self.stats.skip(&path, SkipReason::Loop, None);
                return Some(None);
            }
            match read_names(&path) {
                Ok(names) => self.stack.push(Frame {
                    dir: path,
                    relative: dir_relative,
                    real,
                    id,
                    names: names.into_iter(),
                }),
                Err(e) => self
                    .stats
                    .skip(&path, SkipReason::Unreadable, Some(&e.to_string())),
            }
            return Some(None);
        }
        if !meta.is_file() {
            self.stats.skip(&path, SkipReason::NotRegular, None);
            return Some(None);
        }
        if !relative.starts_with(&self.prefix) {
            return Some(None);
        }
        self.stats.files += 1;
        Some(Some(Found {
            path,
            relative,
            real,
            meta,
        }))
    }
}

impl Iterator for Walk {
    type Item = Found;

    fn next(&mut self) -> Option<Found> {
        loop {
            if let Some(found) = self.step()? {
                return Some(found);
            }
        }
    }
}

/// The names in `dir`, sorted.
fn read_names(dir: &Path) -> std::io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name());
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/one.json"), "{}").unwrap();
        std::fs::write(root.join("a/two.json"), "{}").unwrap();
        std::fs::write(root.join("top.json"), "{}").unwrap();
        (dir, root)
    }

    fn relatives(walk: Walk) -> Vec<String> {
        walk.map(|f| f.relative).collect()
    }

    #[test]
    fn files_come_in_path_order() {
        let (_dir, root) = tree();
        let walk = Walk::new(&root, false, "").unwrap();
        assert_eq!(relatives(walk), ["a/b/one.json", "a/two.json", "top.json"]);
    }

    #[test]
    fn the_prefix_is_a_plain_string_prefix() {
        let (_dir, root) = tree();
        assert_eq!(
            relatives(Walk::new(&root, false, "a/b").unwrap()),
            ["a/b/one.json"]
        );
        assert_eq!(
            relatives(Walk::new(&root, false, "a/t").unwrap()),
            ["a/two.json"]
        );
        assert_eq!(
            relatives(Walk::new(&root, false, "t").unwrap()),
            ["top.json"]
        );
    }

    #[test]
    fn symlinks_are_skipped_by_default() {
        let (_dir, root) = tree();
        symlink("..", root.join("a/up")).unwrap();
        symlink(root.join("top.json"), root.join("link.json")).unwrap();
        let mut walk = Walk::new(&root, false, "").unwrap();
        let found: Vec<_> = walk.by_ref().map(|f| f.relative).collect();
        assert_eq!(found, ["a/b/one.json", "a/two.json", "top.json"]);
        assert_eq!(walk.stats().symlinks, 2);
    }

    #[test]
    fn followed_links_stay_inside_and_out_of_loops() {
        let (_dir, root) = tree();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.json"), "{}").unwrap();
        symlink("..", root.join("a/up")).unwrap();
        symlink(outside.path(), root.join("out")).unwrap();
        symlink(outside.path().join("secret.json"), root.join("s.json")).unwrap();
        symlink("a/b", root.join("z")).unwrap();
        let mut walk = Walk::new(&root, true, "").unwrap();
        let found: Vec<_> = walk
            .by_ref()
            .map(|f| (f.relative.clone(), f.canonical().to_path_buf()))
            .collect();
        let relative: Vec<_> = found.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(
            relative,
            ["a/b/one.json", "a/two.json", "top.json", "z/one.json"]
        );
        assert_eq!(found[3].1, root.join("a/b/one.json"));
        // a/up (loop), out and s.json (outside).
        assert_eq!(walk.stats().symlinks, 3);
    }

    #[test]
    fn fifos_and_non_utf8_names_are_skipped() {
        use std::os::unix::ffi::OsStrExt;
        let (_dir, root) = tree();
        let fifo = root.join("pipe.json");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let bad = root.join(std::ffi::OsStr::from_bytes(b"bad-\xff.json"));
        std::fs::write(&bad, "{}").unwrap();
        std::fs::write(root.join("tab\tname.json"), "{}").unwrap();
        let skipped = || crate::metrics::test_value("ingestor_keys_skipped_total");
        let before = skipped();
        let mut walk = Walk::new(&root, false, "").unwrap();
        let found: Vec<_> = walk.by_ref().map(|f| f.relative).collect();
        assert_eq!(
            found,
            ["a/b/one.json", "a/two.json", "tab\tname.json", "top.json"]
        );
        assert_eq!(walk.stats().not_regular, 1);
        assert_eq!(walk.stats().bad_names, 1);
        let after = skipped();
        assert!(
            after >= before + 2.0,
            "counted in ingestor_keys_skipped_total"
        );
    }
}
