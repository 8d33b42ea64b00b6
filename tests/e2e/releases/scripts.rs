//! Release discipline: a released schema never changes, and every release can reach the
//! current version (docs/development.md, "Cutting a release").

use pgqueuer_tests::release::{self, CURRENT, Script};
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
    let frozen = Script::Install(release::current()).path();
    let tree = release::tree();
    let Ok(frozen_text) = tree.file(&frozen) else {
        // The next version, not released yet: it may change freely, but it must be reachable
        // from the newest release (checked below, in every_release_can_reach_the_current_version).
        return;
    };
    let (frozen_blocks, generated_blocks) = (
        release::normalise(frozen_text),
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
        let next = release::current().next_minor();
        panic!(
            "the schema of {CURRENT} differs from its frozen release {frozen}: \
             bump the version and write the delta sql/upgrade/{CURRENT}--{next}.sql \
             (docs/development.md, \"Cutting a release\").\n\
             only in the build:\n  {}\nonly in the release:\n  {}",
            only(&generated_lines, &frozen_lines),
            only(&frozen_lines, &generated_lines),
        );
    }
}

/// Every upgrade step leads from a release to a release or to the current version, and its
/// script (frozen, or assembled from its delta) fails rather than waits behind a long
/// transaction.
#[test]
fn upgrade_scripts_join_releases_and_set_a_lock_timeout() {
    let tree = release::tree();
    let releases = tree.releases();
    let current = release::current();
    assert!(
        releases.contains(&"0.1.0".parse().expect("a version")),
        "0.1.0 is a release: extension/sql/pgqueuer--0.1.0.sql is missing"
    );
    for step in tree.steps() {
        let name = step.script_name();
        assert!(
            releases.contains(&step.from),
            "{name}: {} is not a release",
            step.from
        );
        assert!(
            releases.contains(&step.to) || step.to == current,
            "{name}: {} is neither a release nor the current version {CURRENT}",
            step.to
        );
        let text = tree
            .upgrade_script(step)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert!(
            text.contains("SET LOCAL lock_timeout") || text.contains("SET lock_timeout"),
            "{name} must SET lock_timeout, so that it fails rather than queue every claim \
             behind it while it waits for a lock"
        );
    }
}

/// From 0.6.0 on, a person writes the delta of a step (`sql/upgrade/A--B.sql`) and its script
/// is assembled; freezing the release writes the assembled script once. So a step to the
/// unreleased version has a delta and no script in extension/sql/ (a hand-written one would
/// drift from sql/), and a step to a release has its frozen script.
#[test]
fn new_steps_are_deltas_and_released_steps_are_frozen() {
    let tree = release::tree();
    let deltas = tree.deltas();
    for step in tree.steps() {
        if tree.is_released(step.to) {
            assert!(
                tree.is_frozen(step),
                "{} is released, but {} has no frozen script: run cargo xtask freeze",
                step.to,
                step.delta_path()
            );
        } else {
            assert!(
                deltas.contains(&step) && !tree.is_frozen(step),
                "{}: a step to {}, which is not released, is written as its delta {} \
                 (docs/development.md, \"Cutting a release\")",
                step.script_path(),
                step.to,
                step.delta_path()
            );
        }
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
        if version == release::current() {
            continue;
        }
        let version = version.to_string();
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
             the delta sql/upgrade/{version}--{CURRENT}.sql (or a chain of steps)"
        );
    }
}
