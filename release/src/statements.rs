//! SQL text cut into statements, for assembling upgrade scripts from `sql/`.

/// The statements of `sql`, each from its first word (comments before it left out) to its
/// `;`. Semicolons inside string literals, quoted identifiers, dollar-quoted bodies and
/// comments do not end a statement. Text after the last `;` is not a statement.
pub fn statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut found = Vec::new();
    let mut start: Option<usize> = None;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        let skip_to = match byte {
            b'-' if bytes.get(at + 1) == Some(&b'-') => {
                let end = sql[at..]
                    .find('\n')
                    .map_or(bytes.len(), |line| at + line + 1);
                Some((end, false))
            }
            b'/' if bytes.get(at + 1) == Some(&b'*') => Some((block_comment_end(bytes, at), false)),
            b'\'' => {
                // E'...' (an E that is a word of its own) takes backslash escapes.
                let escapes = at > 0
                    && matches!(bytes[at - 1], b'E' | b'e')
                    && (at < 2
                        || !(bytes[at - 2].is_ascii_alphanumeric() || bytes[at - 2] == b'_'));
                Some((quoted_end(bytes, at, b'\'', escapes), true))
            }
            b'"' => Some((quoted_end(bytes, at, b'"', false), true)),
            b'$' => dollar_tag(&sql[at..]).map(|tag| {
                let body = at + tag.len();
                let end = sql[body..]
                    .find(tag)
                    .map_or(bytes.len(), |offset| body + offset + tag.len());
                (end, true)
            }),
            _ => None,
        };
        match skip_to {
            Some((end, is_code)) => {
                if is_code {
                    start.get_or_insert(at);
                }
                at = end;
            }
            None => {
                if byte == b';' {
                    if let Some(begin) = start.take() {
                        found.push(&sql[begin..=at]);
                    }
                } else if !byte.is_ascii_whitespace() {
                    start.get_or_insert(at);
                }
                at += 1;
            }
        }
    }
    found
}

/// The first words of a statement, upper case: `CREATE OR REPLACE FUNCTION pgq.x(...)` starts
/// with `["CREATE", "OR", "REPLACE", "FUNCTION"]` (up to `count` words).
pub fn first_words(statement: &str, count: usize) -> Vec<String> {
    statement
        .split(|c: char| c.is_whitespace() || c == '(')
        .filter(|word| !word.is_empty())
        .take(count)
        .map(str::to_ascii_uppercase)
        .collect()
}

/// Where a `/* ... */` comment starting at `at` ends (PostgreSQL nests them).
fn block_comment_end(bytes: &[u8], mut at: usize) -> usize {
    let mut depth = 0;
    while at + 1 < bytes.len() {
        match (bytes[at], bytes[at + 1]) {
            (b'/', b'*') => {
                depth += 1;
                at += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                at += 2;
                if depth == 0 {
                    return at;
                }
            }
            _ => at += 1,
        }
    }
    bytes.len()
}

/// Where a literal quoted by `quote` starting at `at` ends (a doubled quote is one character;
/// with `escapes`, as in `E'...'`, so is a backslash and the character after it).
fn quoted_end(bytes: &[u8], at: usize, quote: u8, escapes: bool) -> usize {
    let mut i = at + 1;
    while i < bytes.len() {
        if escapes && bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// The dollar-quote tag (`$$`, `$body$`) that `text` starts with, if it starts with one (`$1`,
/// a parameter, is none).
fn dollar_tag(text: &str) -> Option<&str> {
    let rest = &text[1..];
    let end = rest.find('$')?;
    let tag = &rest[..end];
    let valid = tag
        .chars()
        .enumerate()
        .all(|(index, c)| c == '_' || c.is_alphabetic() || (index > 0 && c.is_ascii_digit()));
    valid.then(|| &text[..end + 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semicolons_in_bodies_strings_identifiers_and_comments_do_not_end_a_statement() {
        let sql = "-- a comment; with a semicolon\n\
                   CREATE TABLE \"a;b\" (x text DEFAULT 'it''s; fine');\n\
                   /* block /* nested; */ still; */ SELECT E'\\'; still';\n\
                   CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$\n\
                   BEGIN RETURN $1; END $body$;\n\
                   SELECT $$;$$ ; trailing text without an end";
        assert_eq!(
            statements(sql),
            vec![
                "CREATE TABLE \"a;b\" (x text DEFAULT 'it''s; fine');",
                "SELECT E'\\'; still';",
                "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$\n\
                 BEGIN RETURN $1; END $body$;",
                "SELECT $$;$$ ;",
            ]
        );
    }

    #[test]
    fn the_first_words_are_upper_case() {
        assert_eq!(
            first_words("create or replace\n  function pgq.f(x int)", 4),
            ["CREATE", "OR", "REPLACE", "FUNCTION"]
        );
        assert_eq!(first_words("CREATE VIEW", 4), ["CREATE", "VIEW"]);
    }
}
