-- The partitions of a partitioned table ($1: its oid): schema, name, bound as PostgreSQL
-- prints it (`FOR VALUES FROM (...) TO (...)`, `DEFAULT`), whether a
-- `DETACH ... CONCURRENTLY` left it pending, and the planner's estimate of its rows.
SELECT n.nspname::text,
       c.relname::text,
       pg_get_expr(c.relpartbound, c.oid),
       i.inhdetachpending,
       c.oid::int8,
       GREATEST(c.reltuples, 0)::int8
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.inhparent = $1::oid
ORDER BY c.relname
