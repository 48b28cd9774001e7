//! `--prefix`: which keys of a bucket `run` takes. One normalised string, used alike by the
//! listing, the claims, the retries and the statistics, so a key that is listed is always
//! a key that can be claimed.
//!
//! A prefix is a plain string prefix of the key, as in S3 (`logs/20` takes
//! `logs/2024/...`); leading `/` are removed (S3 keys never start with one, and object
//! store paths drop them), nothing else is changed.

use std::fmt;

/// A normalised key prefix; empty takes the whole bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Prefix(String);

impl Prefix {
    /// Normalises what the user typed: leading `/` removed.
    pub fn new(raw: &str) -> Self {
        Self(raw.trim_start_matches('/').to_string())
    }

    /// For clap's `value_parser`.
    pub fn parse(raw: &str) -> Result<Self, std::convert::Infallible> {
        Ok(Self::new(raw))
    }

    /// The normalised prefix, as the claim statements compare it (`starts_with(s3_key, $n)`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `key` is under the prefix.
    pub fn matches(&self, key: &str) -> bool {
        key.starts_with(&self.0)
    }

    /// The deepest whole folder of the prefix (`logs/20` -> `logs`, `logs/2024/` ->
    /// `logs/2024`): a folder listing there, filtered by [`Prefix::matches`], sees every
    /// key under the prefix.
    pub fn folder(&self) -> &str {
        match self.0.rfind('/') {
            Some(slash) => &self.0[..slash],
            None => "",
        }
    }
}

impl std::ops::Deref for Prefix {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_slash_is_removed_and_nothing_else() {
        assert_eq!(Prefix::new("/sub/").as_str(), "sub/");
        assert_eq!(Prefix::new("//sub").as_str(), "sub");
        assert_eq!(Prefix::new("/").as_str(), "");
        assert_eq!(Prefix::new("").as_str(), "");
        assert_eq!(Prefix::new("logs/20").as_str(), "logs/20");
        assert_eq!(Prefix::new("a//b/").as_str(), "a//b/");
    }

    #[test]
    fn a_prefix_is_a_plain_string_prefix_of_the_key() {
        let prefix = Prefix::new("logs/20");
        assert!(prefix.matches("logs/2024/11/a.json.gz"));
        assert!(prefix.matches("logs/20"));
        assert!(!prefix.matches("logs/19/a.json"));
        assert!(!prefix.matches("/logs/2024/a.json"));
        assert_eq!(prefix.folder(), "logs");
        assert_eq!(Prefix::new("/logs/2024/").folder(), "logs/2024");
        assert_eq!(Prefix::new("lo").folder(), "");
        assert!(Prefix::new("").matches("anything"));
    }
}
