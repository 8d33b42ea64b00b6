-- The cron math in PL/pgSQL, for installs without the extension's library (SQL-only installs).
--
-- The extension computes fire times in Rust (extension/src/cron.rs, with the croner crate). These
-- functions are its twin: the same expressions are accepted, the same errors raised (22023),
-- and the same times returned; tests/e2e/scheduler/cron_twin.rs compares the two on thousands
-- of generated expressions, instants and time zones. Only pgq._cron_check, _cron_next and
-- _cron_latest are called by the queue; the pgq._cron_* helpers below exist only in SQL-only
-- installs (docs/managed-postgres.md lists them).
--
-- The model, shared with croner:
-- - A parsed expression is a bigint[] of bit masks (pgq._cron_parse).
-- - A wall time (local date and time of day, in whole seconds) matches when every field does;
--   day of month and day of week combine as in Vixie cron (either, when both are restricted).
-- - A matching wall time that the zone's clock shows once fires at that instant. One it shows
--   twice (the clock goes back) fires at both instants, except for a fixed-time expression
--   (one second, one minute, one hour, no wildcard or step), which fires at the earlier one.
--   One the clock skips (it goes forward) does not fire, except for a fixed-time expression,
--   which fires at the first instant after the gap.
-- - _cron_next is the first fire strictly after an instant, _cron_latest the last at or before.

-- The parsed form: [1] seconds, [2] minutes, [3] hours (bit n = value n); [4] days of month;
-- [5] days of month with W; [6] months; [7] days of week (bit 0 = Sunday); [8] nth days of week
-- (bit 5 * weekday + n - 1); [9] last days of week (5L); [10] flags: 1 day of month is *,
-- 2 day of week is *, 4 both must match (+), 8 L in day of month, 16 LW, 32 fixed time.
CREATE FUNCTION pgq._cron_parse(expression text, timezone text) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ws CONSTANT text := E' \t\n\r\f\x0b';
    trimmed text;
    pattern text;
    fields  text[];
    field   text;
    part    text;
    core    text;
    bounds  text[];
    f       int;
    lo      int;
    hi      int;
    step    int;
    v       int;
    kind    int;   -- 0 plain, 1-5 nth (#n), 6 last (L)
    n       int;
    masks   bigint[] := ARRAY[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]::bigint[];
    fmin    CONSTANT int[] := ARRAY[0, 0, 0, 1, 1, 0];
    fmax    CONSTANT int[] := ARRAY[59, 59, 23, 31, 12, 7];
    target  CONSTANT int[] := ARRAY[1, 2, 3, 4, 6, 7];
    steps   int[] := ARRAY[1, 1, 1];
    wild    boolean[] := ARRAY[false, false, false];
    flags   bigint := 0;
    bad     text;
BEGIN
    -- Only ASCII means anything here. The bytes are checked as bytes: in a SQL_ASCII database
    -- the text may not be valid in any encoding, and string functions would fail on it.
    IF encode(convert_to(expression, 'SQL_ASCII'), 'hex') !~ '^([0-7][0-9a-f])*$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'the cron expression has characters that are not ASCII: use digits, '
                      'names such as MON and JAN, and * / , - L W # ?';
    END IF;
    IF encode(convert_to(timezone, 'SQL_ASCII'), 'hex') !~ '^([0-7][0-9a-f])*$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'unknown time zone: time zone names are ASCII, such as UTC or Europe/Oslo';
    END IF;
    trimmed := btrim(expression, ws);
    IF trimmed = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'the cron expression must not be empty';
    END IF;
    fields := regexp_split_to_array(trimmed, '[' || ws || ']+');
    IF left(trimmed, 1) <> '@' AND cardinality(fields) NOT IN (5, 6) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('cron expression "%s" has %s fields: use 5 (minute hour '
                             'day-of-month month day-of-week), 6 (a leading seconds field), or '
                             '@hourly, @daily, @weekly, @monthly, @yearly',
                             expression, cardinality(fields));
    END IF;

    pattern := upper(trimmed);
    IF strpos(pattern, '@') > 0 THEN
        pattern := CASE pattern
            WHEN '@YEARLY' THEN '0 0 1 1 *' WHEN '@ANNUALLY' THEN '0 0 1 1 *'
            WHEN '@MONTHLY' THEN '0 0 1 * *' WHEN '@WEEKLY' THEN '0 0 * * SUN'
            WHEN '@DAILY' THEN '0 0 * * *' WHEN '@HOURLY' THEN '0 * * * *'
            ELSE pattern END;
    END IF;
    -- Names are replaced anywhere in the expression, weekdays first (as croner does).
    pattern := replace(replace(replace(replace(replace(replace(replace(replace(pattern,
        '-SUN', '-7'), 'SUN', '0'), 'MON', '1'), 'TUE', '2'), 'WED', '3'), 'THU', '4'),
        'FRI', '5'), 'SAT', '6');
    pattern := replace(replace(replace(replace(replace(replace(replace(replace(replace(
        replace(replace(replace(pattern, 'JAN', '1'), 'FEB', '2'), 'MAR', '3'), 'APR', '4'),
        'MAY', '5'), 'JUN', '6'), 'JUL', '7'), 'AUG', '8'), 'SEP', '9'), 'OCT', '10'),
        'NOV', '11'), 'DEC', '12');
    fields := regexp_split_to_array(btrim(pattern, ws), '[' || ws || ']+');
    IF cardinality(fields) = 5 THEN
        fields := '0'::text || fields;
    END IF;
    IF cardinality(fields) <> 6 THEN
        bad := 'an expression has 5 or 6 fields';
    ELSE
        fields[4] := replace(fields[4], '?', '*');
        fields[6] := replace(fields[6], '?', '*');
        IF left(fields[6], 1) = '+' THEN
            flags := flags | 4;
            fields[6] := substr(fields[6], 2);
        END IF;
        FOR f IN 1 .. 6 LOOP
            IF fields[f] !~ (CASE f WHEN 4 THEN '^[*/0-9,LW?-]*$'
                                    WHEN 6 THEN '^[*/0-9,#L?-]*$'
                                    ELSE '^[*/0-9,-]*$' END) THEN
                bad := format('illegal character in %s', fields[f]);
                EXIT;
            END IF;
        END LOOP;
    END IF;

    FOR f IN 1 .. 6 LOOP
        EXIT WHEN bad IS NOT NULL;
        field := fields[f];
        IF field = '*' THEN
            IF f <= 3 THEN wild[f] := true; END IF;
            IF f = 4 THEN flags := flags | 1; END IF;
            IF f = 6 THEN flags := flags | 2; END IF;
            FOR v IN fmin[f] .. fmax[f] LOOP
                masks[target[f]] := masks[target[f]] | (1::bigint << v);
            END LOOP;
            CONTINUE;
        END IF;
        FOREACH part IN ARRAY string_to_array(field, ',') LOOP
            CONTINUE WHEN part = '';
            kind := 0;
            IF strpos(part, '/') = 0 AND strpos(part, '-') = 0 AND strpos(part, 'W') > 0 THEN
                -- nW: the weekday nearest to day n; LW: the last weekday of the month.
                core := split_part(part, 'W', 1);
                IF core = 'L' THEN
                    flags := flags | 8 | 16;
                ELSIF core !~ '^[0-9]+$' OR core::numeric > 65535 THEN
                    bad := format('%s is not a day with W', part);
                ELSIF core::numeric < fmin[f] OR core::numeric > fmax[f] THEN
                    bad := format('%s is out of range', part);
                ELSE
                    masks[5] := masks[5] | (1::bigint << core::numeric::int);
                END IF;
                EXIT WHEN bad IS NOT NULL;
                CONTINUE;
            END IF;
            IF strpos(part, '/') = 0 AND strpos(part, '-') = 0 AND part = 'L' THEN
                IF f = 4 THEN flags := flags | 8; END IF;  -- L alone in day of week does nothing
                CONTINUE;
            END IF;
            IF strpos(part, '/') = 0 AND strpos(part, '-') = 0 THEN
                IF right(part, 1) = 'L' AND strpos(part, '#') = 0 THEN
                    part := replace(part, 'L', '#L');
                END IF;
                IF f <> 6 AND (strpos(part, '#') > 0 OR strpos(part, 'L') > 0) THEN
                    bad := format('%s: # and L after a value belong in the day of week', part);
                    EXIT;
                END IF;
            END IF;
            -- The #n or L suffix, then the value, range or step before it.
            IF right(part, 1) = 'L' THEN
                kind := 6;
            ELSIF strpos(part, '#') > 0 THEN
                core := substr(part, strpos(part, '#') + 1);
                IF core !~ '^[0-9]+$' OR core::numeric NOT BETWEEN 1 AND 5 THEN
                    bad := format('%s: the nth weekday is #1 to #5', part);
                    EXIT;
                END IF;
                kind := core::numeric;
            END IF;
            core := split_part(part, '#', 1);
            step := 1;
            IF strpos(core, '/') > 0 THEN
                bounds := string_to_array(core, '/');
                IF cardinality(bounds) <> 2 OR bounds[2] !~ '^[0-9]+$'
                   OR bounds[2]::numeric > 65535 OR bounds[2]::numeric = 0 THEN
                    bad := format('%s: a step is */n or a-b/n with n from 1', part);
                    EXIT;
                END IF;
                step := bounds[2]::numeric;
                IF f <= 3 THEN steps[f] := step; END IF;
                core := bounds[1];
                IF core = '*' THEN
                    IF f <= 3 THEN wild[f] := true; END IF;
                    core := fmin[f] || '-' || fmax[f];
                ELSIF strpos(core, '-') = 0 THEN
                    bad := format('%s: a step is */n or a-b/n', part);
                    EXIT;
                END IF;
            END IF;
            IF strpos(core, '-') > 0 THEN
                bounds := string_to_array(core, '-');
                IF cardinality(bounds) <> 2 OR bounds[1] !~ '^[0-9]+$' OR bounds[2] !~ '^[0-9]+$'
                   OR bounds[1]::numeric > 65535 OR bounds[2]::numeric > 65535 THEN
                    bad := format('%s is not a range', part);
                    EXIT;
                END IF;
                lo := bounds[1]::numeric;
                hi := bounds[2]::numeric;
            ELSIF core ~ '^[0-9]+$' AND core::numeric <= 65535 THEN
                lo := core::numeric;
                hi := lo;
            ELSE
                bad := format('%s is not a number', part);
                EXIT;
            END IF;
            IF lo > hi OR lo < fmin[f] OR hi > fmax[f] THEN
                bad := format('%s is out of range (%s-%s)', part, fmin[f], fmax[f]);
                EXIT;
            END IF;
            v := lo;
            WHILE v <= hi LOOP
                IF f <> 6 OR kind = 0 THEN
                    masks[target[f]] := masks[target[f]] | (1::bigint << v);
                ELSIF kind = 6 THEN
                    masks[9] := masks[9] | (1::bigint << v);
                ELSE
                    masks[8] := masks[8] | (1::bigint << (5 * v + kind - 1));
                END IF;
                IF v + step > 65535 THEN
                    bad := format('%s steps past 65535', part);
                    EXIT;
                END IF;
                v := v + step;
            END LOOP;
            EXIT WHEN bad IS NOT NULL;
        END LOOP;
    END LOOP;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid cron expression "%s": %s', expression, bad);
    END IF;

    -- Sunday is 0 and 7.
    IF masks[7] & (1::bigint << 7) <> 0 THEN masks[7] := masks[7] | 1; END IF;
    IF masks[9] & (1::bigint << 7) <> 0 THEN masks[9] := masks[9] | 1; END IF;
    masks[7] := masks[7] & 127;
    masks[9] := masks[9] & 127;
    masks[8] := (masks[8] | (masks[8] >> 35)) & ((1::bigint << 35) - 1);
    IF (SELECT bool_and(steps[i] = 1 AND NOT wild[i]
                        AND masks[i] <> 0 AND masks[i] & (masks[i] - 1) = 0)
        FROM generate_series(1, 3) AS i) THEN
        flags := flags | 32;
    END IF;
    masks[10] := flags;

    IF timezone = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'the time zone must not be empty: use an IANA name such as UTC';
    END IF;
    IF NOT timezone = ANY (pgq._cron_zones()) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('unknown time zone "%s": use a name from the IANA tz database, '
                             'such as UTC or Europe/Oslo', timezone);
    END IF;
    RETURN masks;
END
$$;

-- The first set bit of mask at or above bit `from` (forward), or at or below it; NULL if none.
CREATE FUNCTION pgq._cron_bit(mask bigint, "from" int, forward boolean) RETURNS int
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b int;
BEGIN
    IF forward THEN
        FOR b IN greatest("from", 0) .. 62 LOOP
            IF (mask >> b) & 1 = 1 THEN RETURN b; END IF;
        END LOOP;
    ELSE
        FOR b IN REVERSE least("from", 62) .. 0 LOOP
            IF (mask >> b) & 1 = 1 THEN RETURN b; END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

-- The days of a month that match the parsed expression, as a mask (bit n = day n; 0 when the
-- month itself does not match).
CREATE FUNCTION pgq._cron_days(p bigint[], month date) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    first  CONSTANT date := date_trunc('month', month)::date;
    ml     CONSTANT int := extract(day FROM first + interval '1 month - 1 day')::int;
    wd1    CONSTANT int := extract(dow FROM first)::int;   -- weekday of the 1st
    valid  CONSTANT bigint := ((1::bigint << (ml + 1)) - 1) & ~1::bigint;
    dom    bigint := p[4];
    dow    bigint := 0;
    lastwd int;
    pd     int;
    wd     int;
    d      int;
    n      int;
BEGIN
    IF (p[6] >> extract(month FROM first)::int) & 1 = 0 THEN
        RETURN 0;
    END IF;
    IF p[10] & 24 = 24 THEN
        -- LW: the last weekday (Monday to Friday) of the month.
        lastwd := (wd1 + ml - 1) % 7;
        dom := dom | (1::bigint << (ml - CASE lastwd WHEN 6 THEN 1 WHEN 0 THEN 2 ELSE 0 END));
    ELSIF p[10] & 24 = 8 THEN
        dom := dom | (1::bigint << ml);
    END IF;
    IF p[5] <> 0 THEN
        -- nW: the weekday nearest to day n, within the month.
        FOR pd IN 1 .. ml LOOP
            CONTINUE WHEN (p[5] >> pd) & 1 = 0;
            wd := (wd1 + pd - 1) % 7;
            d := CASE wd WHEN 6 THEN CASE WHEN pd > 1 THEN pd - 1 ELSE pd + 2 END
                         WHEN 0 THEN CASE WHEN pd < ml THEN pd + 1 ELSE pd - 2 END
                         ELSE pd END;
            dom := dom | (1::bigint << d);
        END LOOP;
    END IF;
    IF p[7] <> 0 OR p[8] <> 0 OR p[9] <> 0 THEN
        FOR wd IN 0 .. 6 LOOP
            d := (wd - wd1 + 7) % 7 + 1;   -- the first such weekday of the month
            n := 1;
            WHILE d <= ml LOOP
                IF (p[7] >> wd) & 1 = 1 OR (p[8] >> (5 * wd + n - 1)) & 1 = 1
                   OR ((p[9] >> wd) & 1 = 1 AND d + 7 > ml) THEN
                    dow := dow | (1::bigint << d);
                END IF;
                d := d + 7;
                n := n + 1;
            END LOOP;
        END LOOP;
    END IF;
    dom := dom & valid;
    RETURN CASE WHEN p[10] & 3 = 3 THEN valid
                WHEN p[10] & 2 = 2 THEN dom
                WHEN p[10] & 1 = 1 THEN dow
                WHEN p[10] & 4 = 4 THEN dom & dow
                ELSE dom | dow END;
END
$$;

-- The first matching wall time at or after x (forward), or the last at or before it; NULL when
-- there is none in the next (or previous) 400 years, the length of the calendar's cycle, or
-- before year 5000.
CREATE FUNCTION pgq._cron_wall(p bigint[], x timestamp, forward boolean) RETURNS timestamp
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d     date := x::date;
    secs  int := floor(extract(epoch FROM x::time))::int;
    stop  CONSTANT date := CASE WHEN forward
                                THEN least(d + interval '401 years', '5000-01-01')::date
                                ELSE greatest(d - interval '401 years', '0001-01-01')::date END;
    first date;
    last  date;
    found date;
    day   int;
    h     int;
    m     int;
    s     int;
BEGIN
    IF p[1] = 0 OR p[2] = 0 OR p[3] = 0 OR p[6] = 0 THEN
        RETURN NULL;
    END IF;
    LOOP
        IF (forward AND d >= stop) OR (NOT forward AND d <= stop) THEN
            RETURN NULL;
        END IF;
        first := date_trunc('month', d)::date;
        last := (first + interval '1 month - 1 day')::date;
        day := pgq._cron_bit(pgq._cron_days(p, first), extract(day FROM d)::int, forward);
        IF day IS NULL THEN
            d := CASE WHEN forward THEN last + 1 ELSE first - 1 END;
            secs := CASE WHEN forward THEN 0 ELSE 86399 END;
            CONTINUE;
        END IF;
        found := first + (day - 1);
        IF found <> d THEN
            d := found;
            secs := CASE WHEN forward THEN 0 ELSE 86399 END;
        END IF;
        -- The first (last) matching time of day from secs.
        IF forward THEN
            h := pgq._cron_bit(p[3], secs / 3600, true);
            WHILE h IS NOT NULL LOOP
                m := pgq._cron_bit(p[2], CASE WHEN h = secs / 3600 THEN secs / 60 % 60 ELSE 0 END, true);
                WHILE m IS NOT NULL LOOP
                    s := pgq._cron_bit(p[1], CASE WHEN h * 60 + m = secs / 60 THEN secs % 60 ELSE 0 END, true);
                    IF s IS NOT NULL THEN
                        RETURN d + make_interval(hours => h, mins => m, secs => s);
                    END IF;
                    m := pgq._cron_bit(p[2], m + 1, true);
                END LOOP;
                h := pgq._cron_bit(p[3], h + 1, true);
            END LOOP;
        ELSE
            h := pgq._cron_bit(p[3], secs / 3600, false);
            WHILE h IS NOT NULL LOOP
                m := pgq._cron_bit(p[2], CASE WHEN h = secs / 3600 THEN secs / 60 % 60 ELSE 59 END, false);
                WHILE m IS NOT NULL LOOP
                    s := pgq._cron_bit(p[1], CASE WHEN h * 60 + m = secs / 60 THEN secs % 60 ELSE 59 END, false);
                    IF s IS NOT NULL THEN
                        RETURN d + make_interval(hours => h, mins => m, secs => s);
                    END IF;
                    m := pgq._cron_bit(p[2], m - 1, false);
                END LOOP;
                h := pgq._cron_bit(p[3], h - 1, false);
            END LOOP;
        END IF;
        d := CASE WHEN forward THEN d + 1 ELSE d - 1 END;
        secs := CASE WHEN forward THEN 0 ELSE 86399 END;
    END LOOP;
END
$$;

-- The first instant in (lo, hi] whose UTC offset in the zone differs from lo's, to the second.
CREATE FUNCTION pgq._cron_transition(timezone text, lo timestamptz, hi timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    before interval;
    mid    timestamptz;
BEGIN
    -- Transitions fall on whole seconds: search between whole seconds.
    lo := date_trunc('second', lo);
    hi := date_trunc('second', hi)
          + CASE WHEN hi > date_trunc('second', hi) THEN interval '1 second' ELSE interval '0' END;
    before := (lo AT TIME ZONE timezone) - (lo AT TIME ZONE 'UTC');
    WHILE hi - lo > interval '1 second' LOOP
        mid := lo + date_trunc('second', (hi - lo) / 2);
        IF (mid AT TIME ZONE timezone) - (mid AT TIME ZONE 'UTC') = before THEN
            lo := mid;
        ELSE
            hi := mid;
        END IF;
    END LOOP;
    RETURN hi;
END
$$;

-- The fire nearest to t: the first strictly after it (forward) or the last at or before it.
CREATE FUNCTION pgq._cron_fire(p bigint[], timezone text, t timestamptz, forward boolean)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fixed  CONSTANT boolean := p[10] & 32 <> 0;
    starts timestamp[];
    start  timestamp;
    w      timestamp;
    guess  timestamptz;
    o1     interval;
    o2     interval;
    i1     timestamptz;
    i2     timestamptz;
    gap    timestamptz;
    fire   timestamptz;
    best   timestamptz;
BEGIN
    IF NOT isfinite(t) THEN
        RETURN NULL;
    END IF;
    -- Walls from t's own, and, when the clock went back within 3 hours of t, from the edge of
    -- the repeated range that a walk from t's wall would miss.
    starts := ARRAY[CASE WHEN forward
                         THEN date_trunc('second', t AT TIME ZONE timezone) + interval '1 second'
                         ELSE date_trunc('second', t AT TIME ZONE timezone) END];
    IF forward AND ((t + interval '3 hours') AT TIME ZONE timezone) - (t AT TIME ZONE timezone)
                   < interval '3 hours' THEN
        starts := starts || (pgq._cron_transition(timezone, t, t + interval '3 hours')
                             AT TIME ZONE timezone);
    ELSIF NOT forward AND (t AT TIME ZONE timezone)
                          - ((t - interval '3 hours') AT TIME ZONE timezone) < interval '3 hours' THEN
        starts := starts || ((pgq._cron_transition(timezone, t - interval '3 hours', t)
                              - interval '1 second') AT TIME ZONE timezone);
    END IF;
    FOREACH start IN ARRAY starts LOOP
        w := pgq._cron_wall(p, start, forward);
        fire := NULL;
        WHILE w IS NOT NULL AND fire IS NULL LOOP
            -- The instants the zone's clock shows w at: one, two (it went back) or none.
            guess := w AT TIME ZONE timezone;
            o1 := ((guess - interval '3 hours') AT TIME ZONE timezone)
                  - ((guess - interval '3 hours') AT TIME ZONE 'UTC');
            o2 := ((guess + interval '3 hours') AT TIME ZONE timezone)
                  - ((guess + interval '3 hours') AT TIME ZONE 'UTC');
            i1 := (w - o1) AT TIME ZONE 'UTC';
            i2 := (w - o2) AT TIME ZONE 'UTC';
            IF (i1 AT TIME ZONE timezone) <> w THEN i1 := NULL; END IF;
            IF (i2 AT TIME ZONE timezone) <> w THEN i2 := NULL; END IF;
            IF i1 IS NULL AND i2 IS NULL THEN
                -- Skipped by the clock: a fixed time fires when the gap ends.
                gap := pgq._cron_transition(timezone, (w - o2) AT TIME ZONE 'UTC',
                                            (w - o1) AT TIME ZONE 'UTC');
                IF fixed AND (pgq._cron_days(p, (gap AT TIME ZONE timezone)::date)
                       >> extract(day FROM gap AT TIME ZONE timezone)::int) & 1 = 1
                   AND ((forward AND gap > t) OR (NOT forward AND gap <= t)) THEN
                    fire := gap;
                ELSIF forward THEN
                    w := pgq._cron_wall(p, gap AT TIME ZONE timezone, true);
                ELSE
                    w := pgq._cron_wall(p, (gap - interval '1 second') AT TIME ZONE timezone, false);
                END IF;
                CONTINUE;
            END IF;
            IF i1 IS NULL OR i1 = i2 THEN
                i1 := i2;
                i2 := NULL;
            ELSIF i2 IS NOT NULL AND i2 < i1 THEN
                SELECT i2, i1 INTO i1, i2;
            END IF;
            IF fixed THEN
                i2 := NULL;
            END IF;
            IF forward THEN
                fire := CASE WHEN i1 > t THEN i1 WHEN i2 > t THEN i2 END;
            ELSE
                fire := CASE WHEN i2 <= t THEN i2 WHEN i1 <= t THEN i1 END;
            END IF;
            IF fire IS NULL THEN
                w := pgq._cron_wall(p, w + CASE WHEN forward THEN interval '1 second'
                                                ELSE interval '-1 second' END, forward);
            END IF;
        END LOOP;
        IF fire IS NOT NULL AND (best IS NULL OR (forward AND fire < best)
                                 OR (NOT forward AND fire > best)) THEN
            best := fire;
        END IF;
    END LOOP;
    RETURN best;
END
$$;

-- pgq._cron_check(expression, timezone): raises 22023 unless both are valid.
CREATE FUNCTION pgq._cron_check(expression text, timezone text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgq._cron_parse(expression, timezone);
    RETURN true;
END
$$;

-- pgq._cron_next(expression, timezone, after): the first fire time after `after`, or NULL when
-- there is none (or `after` is infinite).
CREATE FUNCTION pgq._cron_next(expression text, timezone text, after timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgq._cron_fire(pgq._cron_parse(expression, timezone), timezone, after, true)
$$;

-- pgq._cron_latest(expression, timezone, at): the latest fire time at or before `at`.
CREATE FUNCTION pgq._cron_latest(expression text, timezone text, at timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgq._cron_fire(pgq._cron_parse(expression, timezone), timezone, at, false)
$$;
