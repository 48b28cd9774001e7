-- The status of one file.
SELECT status FROM processed_files WHERE bucket = $1 AND s3_key = $2
