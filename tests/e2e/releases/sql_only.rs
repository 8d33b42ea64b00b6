//! SQL-only installs against the extension: the same catalog but for a short documented list
//! (docs/managed-postgres.md, "What differs"), and upgrade scripts that carry one forward.

use pgqueuer::sql_only;
use pgqueuer_tests::TestDb;
use pgqueuer_tests::catalog::{difference, snapshot};

/// The functions the library provides in the extension and a twin provides in a SQL-only
/// install: same names, arguments, results and attributes, other language and body.
const TWINS: &[&str] = &[
    "_cron_check",
    "_cron_latest",
    "_cron_next",
    "_wake_scheduler",
];

/// A catalog line with what may differ between the two installs taken out, or None for a line
/// that only one of them has by design.
fn comparable(line: &str) -> Option<String> {
    // Extension bookkeeping: its version, members and pg_dump configuration.
    if line.starts_with("extension ") || line.starts_with("dumped by pg_dump:") {
        return None;
    }
    // A SQL-only install's schema says what it is.
    if line.starts_with("comment on schema pgq: ") {
        return None;
    }
    // The cron twin's helpers exist only in SQL-only installs.
    let helper = line
        .strip_prefix("function ")
        .and_then(|rest| rest.split('(').next())
        .is_some_and(|name| sql_only::HELPERS.contains(&name));
    if helper {
        return None;
    }
    // Objects are members of the extension only in the extension.
    let mut line = match line.rfind(" member=") {
        Some(at) => line[..at].to_string(),
        None => line.to_string(),
    };
    let name = line
        .strip_prefix("function ")
        .and_then(|rest| rest.split('(').next())
        .map(str::to_string);
    if let Some(name) = name.as_deref() {
        // pgq.version() reads pg_extension in the extension and returns a constant otherwise.
        if name == "version" {
            line = without(&line, &["body_md5="]);
        }
        if TWINS.contains(&name) {
            line = without(&line, &["language=", "cost=", "body_md5=", "bin="]);
        }
    }
    Some(line)
}

/// The line without the named `key=value` fields.
fn without(line: &str, keys: &[&str]) -> String {
    line.split(' ')
        .filter(|field| !keys.iter().any(|key| field.starts_with(key)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn comparable_all(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = lines.iter().filter_map(|line| comparable(line)).collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_sql_only_install_has_the_extensions_catalog_but_for_a_documented_list() {
    let extension = TestDb::with_extension().await;
    let plain = TestDb::empty().await;
    plain
        .connect()
        .await
        .batch_execute(&sql_only::install_script())
        .await
        .expect("the SQL-only install");
    let from_extension = snapshot(&extension.connect().await).await;
    let from_script = snapshot(&plain.connect().await).await;
    // The comparison compares something: functions with their grants and owners, tables,
    // indexes, views.
    for kind in [
        "function enqueue(",
        "index CREATE",
        "view queue_summary",
        "relation jobs",
    ] {
        assert!(
            from_script.iter().any(|line| line.starts_with(kind)),
            "no {kind} line in {from_script:?}"
        );
    }
    let twin = from_script
        .iter()
        .find(|line| line.starts_with("function _cron_next("))
        .expect("the twin of _cron_next");
    assert!(
        twin.contains("owner=pgq_owner") && twin.contains("language=sql"),
        "{twin}"
    );
    let differences = difference(
        &comparable_all(&from_extension),
        &comparable_all(&from_script),
    );
    assert!(
        differences.is_empty(),
        "the extension's catalog (first) and the SQL-only install's (second) differ beyond \
         the documented list:\n{differences}"
    );
}

#[tokio::test]
async fn every_released_sql_only_install_upgrades_to_this_version_with_its_jobs() {
    // Each release from 0.4.0 on froze its SQL-only script (cargo xtask freeze): this upgrades
    // from every one before the current version, with the jobs of its fixture.
    let fresh = TestDb::empty().await;
    fresh
        .connect()
        .await
        .batch_execute(&sql_only::install_script())
        .await
        .expect("the SQL-only install");
    let expected = snapshot(&fresh.connect().await).await;
    let tree = pgqueuer_tests::release::tree();
    let older: Vec<_> = tree
        .sql_only_releases()
        .into_iter()
        .filter(|(version, _)| *version != pgqueuer_tests::release::current())
        .collect();
    for (version, script) in older {
        let version = version.to_string();
        let version = version.as_str();
        let db = TestDb::empty().await;
        let client = db.connect().await;
        client
            .batch_execute(script)
            .await
            .unwrap_or_else(|error| panic!("the SQL-only install of {version}: {error}"));
        let fixture = pgqueuer_tests::release::repo_root()
            .join("tests/upgrade")
            .join(format!("fixture-{version}.sql"));
        let fixture = std::fs::read_to_string(&fixture)
            .unwrap_or_else(|error| panic!("{}: {error}", fixture.display()));
        client
            .batch_execute(&fixture)
            .await
            .unwrap_or_else(|error| panic!("fixture-{version}.sql: {error}"));
        let jobs: i64 = client
            .query_one("SELECT count(*) FROM pgq.jobs", &[])
            .await
            .expect("count")
            .get(0);
        client
            .batch_execute(&sql_only::upgrade_script(version).expect("an upgrade path"))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "upgrading from {version}: {}",
                    pgqueuer_tests::describe(&error)
                )
            });
        let differences = difference(&expected, &snapshot(&client).await);
        assert!(differences.is_empty(), "from {version}: {differences}");
        let kept: i64 = client
            .query_one("SELECT count(*) FROM pgq.jobs", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(kept, jobs, "from {version}: every job kept");
    }
    assert_eq!(
        sql_only::upgrade_script(sql_only::VERSION).as_deref(),
        Ok("")
    );
}
