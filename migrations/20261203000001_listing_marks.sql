-- Where discovery's listings of a bucket and prefix got to, shared by every worker and
-- kept across restarts: `run --follow` lists only the keys after `greatest_key` (S3's
-- `start-after`), and the whole prefix again once `full_listed_at` is older than
-- `--reconcile-interval`. Keys compare byte by byte (COLLATE "C"), as S3 orders them.
CREATE TABLE listing_marks (
    bucket         text        NOT NULL,
    prefix         text        NOT NULL,
    greatest_key   text        NOT NULL,
    full_listed_at timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, prefix)
);
