//! What the extension made in a database, read from the system catalogs as sorted lines, so
//! that an upgraded database can be compared with a fresh install.
//!
//! `pg_dump -n pgq` cannot do this: it leaves out every member of an extension. The lines
//! cover schema `pgq` (tables, columns in order, defaults, identity, constraints, indexes,
//! sequences, views, triggers, policies, types and enum labels in order, functions with
//! arguments, results, attributes, `SET` clauses, body and owner, comments), the privileges
//! on each, the relations' persistence and options, which tables `pg_dump` keeps
//! (`pg_extension_config_dump`), and every object that is a member of the extension,
//! wherever it lives.
//!
//! Deliberately not compared: whether a constraint is validated (an upgrade may add one
//! `NOT VALID` so old rows cannot make it fail), object identifiers, and per-column options
//! (this server build records a creation stamp in every column's `attoptions`).

use tokio_postgres::Client;

const SNAPSHOT: &str = r#"
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = 'pgq'),
ext AS (SELECT oid, extversion, extrelocatable, extconfig, extcondition
        FROM pg_extension WHERE extname = 'pgqueuer'),
member AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
    WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
),
rel AS (SELECT c.* FROM pg_class c, ns WHERE c.relnamespace = ns.oid)
SELECT line FROM (
    SELECT format('extension version=%s relocatable=%s', extversion, extrelocatable) AS line
    FROM ext
    UNION ALL
    SELECT format('extension member %s', pg_describe_object(d.classid, d.objid, d.objsubid))
    FROM pg_depend d, ext
    WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
    UNION ALL
    SELECT format('dumped by pg_dump: %s where %L', cfg.relid::regclass, cfg.condition)
    FROM ext, unnest(ext.extconfig, ext.extcondition) AS cfg(relid, condition)
    UNION ALL
    SELECT format('schema %s owner=%s acl=%s', n.nspname, n.nspowner::regrole, n.nspacl)
    FROM pg_namespace n, ns WHERE n.oid = ns.oid
    UNION ALL
    SELECT format('default acl %s %s', d.defaclobjtype, d.defaclacl)
    FROM pg_default_acl d, ns WHERE d.defaclnamespace = ns.oid
    UNION ALL
    SELECT format('relation %s kind=%s persistence=%s owner=%s acl=%s options=%s rls=%s/%s '
                  'replica_identity=%s member=%s',
                  c.relname, c.relkind, c.relpersistence, c.relowner::regrole, c.relacl,
                  c.reloptions, c.relrowsecurity, c.relforcerowsecurity, c.relreplident,
                  EXISTS (SELECT FROM member m
                          WHERE m.classid = 'pg_class'::regclass AND m.objid = c.oid))
    FROM rel c WHERE c.relkind <> 'i'
    UNION ALL
    SELECT format('column %s.%s position=%s type=%s not_null=%s default=%s identity=%s '
                  'generated=%s collation=%s storage=%s acl=%s',
                  c.relname, a.attname,
                  row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
                  format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
                  a.attcollation::regcollation, a.attstorage, a.attacl)
    FROM rel c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'c', 'f')
    UNION ALL
    SELECT format('constraint %s on %s: %s deferrable=%s/%s',
                  co.conname, coalesce(c.relname, format_type(co.contypid, NULL)),
                  replace(pg_get_constraintdef(co.oid), ' NOT VALID', ''),
                  co.condeferrable, co.condeferred)
    FROM pg_constraint co JOIN ns ON co.connamespace = ns.oid
    LEFT JOIN pg_class c ON c.oid = co.conrelid
    UNION ALL
    SELECT format('index %s valid=%s', pg_get_indexdef(i.indexrelid), i.indisvalid)
    FROM pg_index i JOIN rel c ON c.oid = i.indexrelid
    UNION ALL
    SELECT format('sequence %s type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s',
                  c.relname, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin,
                  s.seqmax, s.seqcache, s.seqcycle)
    FROM pg_sequence s JOIN rel c ON c.oid = s.seqrelid
    UNION ALL
    SELECT format('view %s: %s', c.relname, pg_get_viewdef(c.oid))
    FROM rel c WHERE c.relkind IN ('v', 'm')
    UNION ALL
    SELECT format('trigger %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
    FROM pg_trigger t JOIN rel c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal
    UNION ALL
    SELECT format('policy %s on %s: %s %s roles=%s using=%s check=%s', p.polname, c.relname,
                  p.polcmd, p.polpermissive, p.polroles::regrole[],
                  pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
    FROM pg_policy p JOIN rel c ON c.oid = p.polrelid
    UNION ALL
    SELECT format('rule %s', pg_get_ruledef(r.oid))
    FROM pg_rewrite r JOIN rel c ON c.oid = r.ev_class WHERE r.rulename <> '_RETURN'
    UNION ALL
    SELECT format('statistics %s', pg_get_statisticsobjdef(s.oid))
    FROM pg_statistic_ext s, ns WHERE s.stxnamespace = ns.oid
    UNION ALL
    SELECT format('type %s kind=%s owner=%s acl=%s base=%s not_null=%s default=%s member=%s',
                  t.typname, t.typtype, t.typowner::regrole, t.typacl,
                  nullif(t.typbasetype, 0)::regtype, t.typnotnull, t.typdefault,
                  EXISTS (SELECT FROM member m
                          WHERE m.classid = 'pg_type'::regclass AND m.objid = t.oid))
    FROM pg_type t, ns
    WHERE t.typnamespace = ns.oid AND t.typtype IN ('e', 'd', 'b', 'r', 'm')
      AND t.typelem = 0
    UNION ALL
    SELECT format('enum %s labels=%s', t.typname,
                  array_agg(e.enumlabel ORDER BY e.enumsortorder))
    FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid, ns
    WHERE t.typnamespace = ns.oid
    GROUP BY t.typname
    UNION ALL
    SELECT format('function %s(%s) returns %s kind=%s language=%s volatility=%s parallel=%s '
                  'strict=%s security_definer=%s leakproof=%s cost=%s rows=%s config=%s '
                  'owner=%s acl=%s body_md5=%s bin=%s member=%s',
                  p.proname, pg_get_function_arguments(p.oid),
                  coalesce(pg_get_function_result(p.oid), '-'), p.prokind, l.lanname,
                  p.provolatile, p.proparallel, p.proisstrict, p.prosecdef, p.proleakproof,
                  p.procost, p.prorows, p.proconfig, p.proowner::regrole, p.proacl,
                  md5(p.prosrc), p.probin,
                  EXISTS (SELECT FROM member m
                          WHERE m.classid = 'pg_proc'::regclass AND m.objid = p.oid))
    FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang, ns
    WHERE p.pronamespace = ns.oid
    UNION ALL
    SELECT format('comment on %s: %s', pg_describe_object(d.classoid, d.objoid, d.objsubid),
                  d.description)
    FROM pg_description d
    WHERE (d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT oid FROM rel))
       OR (d.classoid = 'pg_proc'::regclass
           AND d.objoid IN (SELECT p.oid FROM pg_proc p, ns WHERE p.pronamespace = ns.oid))
       OR (d.classoid = 'pg_type'::regclass
           AND d.objoid IN (SELECT t.oid FROM pg_type t, ns WHERE t.typnamespace = ns.oid))
       OR (d.classoid = 'pg_namespace'::regclass AND d.objoid IN (SELECT oid FROM ns))
) lines
ORDER BY line
"#;

/// The extension's objects in the database `client` is connected to, one sorted line each.
pub async fn snapshot(client: &Client) -> Vec<String> {
    client
        .query(SNAPSHOT, &[])
        .await
        .unwrap_or_else(|error| panic!("reading the catalog: {error}"))
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect()
}

/// The lines only in `left` and only in `right`, for a readable assertion message.
pub fn difference(left: &[String], right: &[String]) -> String {
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|line| !b.contains(line)).cloned().collect()
    };
    let (left_only, right_only) = (only(left, right), only(right, left));
    if left_only.is_empty() && right_only.is_empty() {
        return String::new();
    }
    format!(
        "only in the first:\n  {}\nonly in the second:\n  {}",
        left_only.join("\n  "),
        right_only.join("\n  ")
    )
}
