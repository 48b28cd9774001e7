-- `jobs list --status S` and `jobs retry --failed` walk the jobs of one status in (bucket,
-- key) order, a page or batch at a time after the last (bucket, key) seen (keyset paging):
-- this index makes each page a range scan, however many jobs of other statuses there are.
-- (Without a status, the primary key (bucket, s3_key) serves the walk.)
CREATE INDEX IF NOT EXISTS processed_files_status_key_idx
    ON processed_files (status, bucket, s3_key);
