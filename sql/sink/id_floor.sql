-- ingestor_id_floor(t): the smallest record id at instant t (ids start with their record's
-- time in epoch milliseconds, UUIDv7 layout; before 1970: the undated ids). A table
-- partitioned by day (`RANGE (id)`) prunes its partitions on id, not on "timestamp":
--   WHERE id >= ingestor_id_floor('2026-12-01') AND id < ingestor_id_floor('2026-12-02')
--     AND "timestamp" >= '2026-12-01' AND "timestamp" < '2026-12-02'
-- reads one day's partition. Immutable: the epoch of an instant does not depend on the
-- session's time zone, so the planner folds it and prunes at plan time.
CREATE OR REPLACE FUNCTION ingestor_id_floor(t timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT (lpad(to_hex(least(greatest(floor(extract(epoch FROM t) * 1000), 0),
                              281474976710655)::int8), 12, '0')
            || '00000000000000000000')::uuid
$$
