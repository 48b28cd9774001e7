-- The listing mark of bucket $1 and prefix $2 (see migrations/*_listing_marks.sql).
SELECT greatest_key, full_listed_at
FROM listing_marks
WHERE bucket = $1 AND prefix = $2
