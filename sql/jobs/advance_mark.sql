-- A listing of bucket $1 and prefix $2 ended with $3 the greatest key it saw; $4: it listed
-- the whole prefix. The mark only moves forward (keys compared byte by byte, as S3 orders
-- them); a full listing also records when it ended.
INSERT INTO listing_marks AS m (bucket, prefix, greatest_key, full_listed_at)
VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END)
ON CONFLICT (bucket, prefix) DO UPDATE
SET greatest_key = CASE WHEN excluded.greatest_key COLLATE "C" > m.greatest_key COLLATE "C"
                        THEN excluded.greatest_key ELSE m.greatest_key END,
    full_listed_at = CASE WHEN $4 THEN now() ELSE m.full_listed_at END,
    updated_at = now()
