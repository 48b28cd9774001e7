-- Forgets the rejected records of one file (`--force`).
DELETE FROM rejected_records WHERE bucket = $1 AND s3_key = $2
