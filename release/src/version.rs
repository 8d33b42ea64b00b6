//! The one parser of version numbers in the repository (a test keeps it the only one).

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A pgqueuer version, `MAJOR.MINOR.PATCH`: the workspace's, the control file's, a release's,
/// the schema's (`pgq.version()`). Versions order numerically (`0.10.0` after `0.9.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// The major version.
    pub major: u32,
    /// The minor version: a release that changes the schema bumps it (0.x).
    pub minor: u32,
    /// The patch version.
    pub patch: u32,
}

impl Version {
    /// `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Reads `MAJOR.MINOR.PATCH`: three decimal numbers without signs or leading zeros, so
    /// that a version reads back as it was written (it names files).
    pub fn parse(text: &str) -> Result<Version, Error> {
        let bad = || {
            Error::new(format!(
                "{text:?} is not a version: MAJOR.MINOR.PATCH, three decimal numbers"
            ))
        };
        let mut parts = text.split('.').map(|part| {
            let canonical = !part.is_empty()
                && part.bytes().all(|byte| byte.is_ascii_digit())
                && (part == "0" || !part.starts_with('0'));
            match canonical {
                true => part.parse::<u32>().map_err(|_| bad()),
                false => Err(bad()),
            }
        });
        let (Some(major), Some(minor), Some(patch), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(Version::new(major?, minor?, patch?))
    }

    /// The release after this one that changes the schema: `0.6.0` -> `0.7.0`, `1.4.2` ->
    /// `1.5.0`.
    pub fn next_minor(self) -> Version {
        Version::new(self.major, self.minor + 1, 0)
    }
}

impl FromStr for Version {
    type Err = Error;

    fn from_str(text: &str) -> Result<Version, Error> {
        Version::parse(text)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_back_as_written_and_sort_numerically() {
        let mut versions: Vec<Version> = ["0.10.0", "0.9.1", "0.2.0", "1.0.0"]
            .iter()
            .map(|text| Version::parse(text).expect("a version"))
            .collect();
        versions.sort();
        let shown: Vec<String> = versions.iter().map(Version::to_string).collect();
        assert_eq!(shown, ["0.2.0", "0.9.1", "0.10.0", "1.0.0"]);
    }

    #[test]
    fn anything_but_three_plain_numbers_is_refused() {
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "1.2.x",
            "01.2.3",
            "1.2.-3",
            "+1.2.3",
            "1..3",
            " 1.2.3",
            "1.2.3-rc1",
            "1.2.99999999999",
        ] {
            let error = Version::parse(bad).expect_err(bad);
            assert!(error.to_string().contains("MAJOR.MINOR.PATCH"), "{error}");
        }
    }

    #[test]
    fn the_next_release_bumps_the_minor_version() {
        assert_eq!(Version::new(0, 1, 0).next_minor(), Version::new(0, 2, 0));
        assert_eq!(Version::new(1, 4, 2).next_minor(), Version::new(1, 5, 0));
    }
}
