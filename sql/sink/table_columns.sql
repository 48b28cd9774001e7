-- Columns of the target table ($1: a quoted, possibly schema-qualified name), in order.
-- `required`: NOT NULL without a default (the transform must produce it); `not_null`: NOT
-- NULL at all (a NULL the transform writes there fails, default or not); then whether the
-- column has a default (or is an identity or generated column).
SELECT a.attname::text,
       format_type(a.atttypid, a.atttypmod),
       t.typname::text,
       (a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''),
       a.attnotnull,
       (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '')
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass($1)
  AND a.attnum > 0
  AND NOT a.attisdropped
ORDER BY a.attnum
