//! Release discipline: a released schema never changes, and every release can reach the
//! current version (docs/development.md, "Cutting a release").

use pgqueuer_tests::release::{self, CURRENT};
use pgqueuer_tests::{TestDb, scalar};

/// The install script PostgreSQL runs for the current version: the one the build generated
/// and `cargo xtask install` put in the server's extension directory.
fn generated_script() -> String {
    let sharedir = pgqueuer_cluster::pg_config("--sharedir")
        .unwrap_or_else(|error| panic!("pg_config --sharedir: {error}"));
    let path = format!("{sharedir}/extension/pgqueuer--{CURRENT}.sql");
    std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!("{path}: {error} (run `cargo xtask install` after changing the extension)")
    })
}

/// The drift guard: once a version is released, its schema is frozen.
#[test]
fn a_released_schema_never_changes() {
    let frozen = release::frozen_script(CURRENT);
    if !frozen.exists() {
        // The next version, not released yet: it may change freely, but it must be reachable
        // from the newest release (checked below, in every_release_can_reach_the_current_version).
        return;
    }
    let frozen_text = std::fs::read_to_string(&frozen).expect("the frozen script");
    let (frozen_blocks, generated_blocks) = (
        release::normalise(&frozen_text),
        release::normalise(&generated_script()),
    );
    if frozen_blocks != generated_blocks {
        let lines = |blocks: &[String]| -> Vec<String> {
            blocks
                .iter()
                .flat_map(|block| block.lines().map(String::from))
                .collect()
        };
        let (frozen_lines, generated_lines) = (lines(&frozen_blocks), lines(&generated_blocks));
        let only = |a: &[String], b: &[String]| -> String {
            a.iter()
                .filter(|line| !b.contains(line))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  ")
        };
        let next = next_version(CURRENT);
        panic!(
            "the schema of {CURRENT} differs from its frozen release {}: \
             bump the version and add pgqueuer--{CURRENT}--{next}.sql \
             (docs/development.md, \"Cutting a release\").\n\
             only in the build:\n  {}\nonly in the release:\n  {}",
            frozen.display(),
            only(&generated_lines, &frozen_lines),
            only(&frozen_lines, &generated_lines),
        );
    }
}

/// `0.1.0` -> `0.2.0`: the suggestion in the drift guard's message.
fn next_version(version: &str) -> String {
    let mut parts: Vec<u64> = release::version_key(version);
    parts.resize(3, 0);
    if parts[0] == 0 {
        format!("0.{}.0", parts[1] + 1)
    } else {
        format!("{}.{}.0", parts[0], parts[1] + 1)
    }
}

#[test]
fn next_version_bumps_the_minor_version() {
    assert_eq!(next_version("0.1.0"), "0.2.0");
    assert_eq!(next_version("1.4.2"), "1.5.0");
}

/// Every upgrade script leads from a release to a release or to the current version, and
/// fails rather than waits behind a long transaction.
#[test]
fn upgrade_scripts_join_releases_and_set_a_lock_timeout() {
    let releases = release::releases();
    assert!(
        releases.contains(&"0.1.0".to_string()),
        "0.1.0 is a release: extension/sql/pgqueuer--0.1.0.sql is missing"
    );
    for upgrade in release::upgrades() {
        let name = upgrade.path.display();
        assert!(
            releases.contains(&upgrade.from),
            "{name}: {} is not a release",
            upgrade.from
        );
        assert!(
            releases.contains(&upgrade.to) || upgrade.to == CURRENT,
            "{name}: {} is neither a release nor the current version {CURRENT}",
            upgrade.to
        );
        let text = std::fs::read_to_string(&upgrade.path).expect("the upgrade script");
        assert!(
            text.contains("SET LOCAL lock_timeout") || text.contains("SET lock_timeout"),
            "{name} must SET lock_timeout, so that it fails rather than queue every claim \
             behind it while it waits for a lock"
        );
    }
}

/// PostgreSQL finds an update path from every release to the current version, through the
/// scripts `cargo xtask install` put in place.
#[tokio::test]
async fn every_release_can_reach_the_current_version() {
    let db = TestDb::empty().await;
    let client = db.connect().await;
    let default: String = scalar(
        &client,
        "SELECT default_version FROM pg_available_extensions WHERE name = 'pgqueuer'",
        &[],
    )
    .await;
    assert_eq!(default, CURRENT, "the installed control file's default");
    for version in release::releases() {
        if version == CURRENT {
            continue;
        }
        let path: Option<String> = scalar(
            &client,
            "SELECT path FROM pg_extension_update_paths('pgqueuer') \
             WHERE source = $1 AND target = $2",
            &[&version, &CURRENT],
        )
        .await;
        assert!(
            path.is_some(),
            "no upgrade path from release {version} to {CURRENT}: add \
             extension/sql/pgqueuer--{version}--{CURRENT}.sql (or a chain of them)"
        );
    }
}
