-- Pairs the indexes of table $1 with the same indexes of table $2 (same uniqueness and
-- the same definition after `USING`): the names to give back after a table is rebuilt.
SELECT o.name, n.name
FROM (SELECT c.relname::text AS name, i.indisunique AS is_unique,
             regexp_replace(pg_get_indexdef(i.indexrelid), '^.*? USING ', '') AS def
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = to_regclass($1)) o
JOIN (SELECT c.relname::text AS name, i.indisunique AS is_unique,
             regexp_replace(pg_get_indexdef(i.indexrelid), '^.*? USING ', '') AS def
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = to_regclass($2)) n
  ON n.def = o.def AND n.is_unique = o.is_unique
