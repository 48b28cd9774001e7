-- How the table ($1: a quoted, possibly schema-qualified name) is partitioned: its kind
-- ('r' plain, 'p' partitioned, others), its oid, schema and name; for a partitioned
-- table its strategy ('r' range, 'l' list, 'h' hash), its key columns in order (an
-- expression in the key has no name: fewer names than `partnatts`), their type names,
-- whether it has a DEFAULT partition and how many partitions it has.
SELECT c.relkind::text,
       c.oid::int8,
       n.nspname::text,
       c.relname::text,
       pt.partstrat::text,
       COALESCE(pt.partnatts::int4, 0),
       ARRAY(SELECT a.attname::text
             FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             ORDER BY k.ord),
       ARRAY(SELECT t.typname::text
             FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             JOIN pg_type t ON t.oid = a.atttypid
             ORDER BY k.ord),
       COALESCE(pt.partdefid <> 0, false),
       (SELECT count(*) FROM pg_inherits i WHERE i.inhparent = c.oid)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid
WHERE c.oid = to_regclass($1)
