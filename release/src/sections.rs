//! The sections of an assembled upgrade script, marked by lines that name them. The SQL-only
//! upgrade finds the privileges section to put its own privileges block there.

use std::ops::Range;

/// Opens the functions and views of `sql/` in an upgrade script.
pub const FUNCTIONS_BEGIN: &str = "-- BEGIN functions of sql/";
/// Closes them.
pub const FUNCTIONS_END: &str = "-- END functions of sql/";
/// Opens `sql/privileges.sql` in an upgrade script.
pub const PRIVILEGES_BEGIN: &str = "-- BEGIN sql/privileges.sql";
/// Closes it.
pub const PRIVILEGES_END: &str = "-- END sql/privileges.sql";

/// The line of a delta where the functions and views of `sql/` go, when its own statements
/// after it need them (a CHECK that calls a new function, a data move through one). Without
/// it they go after the delta.
pub const FUNCTIONS_HERE: &str = "-- [functions and views of sql/]";

/// Where the lines between `begin` and `end` (both left out) are, if `script` has them.
pub fn section(script: &str, begin: &str, end: &str) -> Option<Range<usize>> {
    let start = script.find(begin)?;
    let after_begin = script[start..].find('\n').map(|line| start + line + 1)?;
    let stop = script[after_begin..].find(end)?;
    Some(after_begin..after_begin + stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_the_lines_between_its_markers() {
        let script = format!("a\n{PRIVILEGES_BEGIN}\nGRANT x;\n{PRIVILEGES_END}\nb\n");
        let range = section(&script, PRIVILEGES_BEGIN, PRIVILEGES_END).expect("a section");
        assert_eq!(&script[range], "GRANT x;\n");
        assert_eq!(section("a\nb\n", PRIVILEGES_BEGIN, PRIVILEGES_END), None);
    }
}
