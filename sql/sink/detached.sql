-- Tables a retention run detached from the table ($1: its oid; $2: the schema of its
-- partitions) and did not drop (the run stopped): recognised by the comment the run set
-- before detaching them (`ingestor retention: detached from <oid> day <YYYY-MM-DD>`).
SELECT c.relname::text, d.description, c.oid::int8, GREATEST(c.reltuples, 0)::int8
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_description d
  ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
WHERE n.nspname = $2
  AND c.relkind = 'r'
  AND d.description LIKE 'ingestor retention: detached from ' || $1::text || ' day %'
  AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
ORDER BY c.relname
