-- The tables of the external contract: logs, processed_files, rejected_records.

-- Ingested records. `id` is deterministic per (bucket, key, index) and starts with the
-- record's timestamp (UUIDv7 layout), so time-ordered logs keep the primary-key index
-- append-mostly during large backfills.
CREATE TABLE IF NOT EXISTS logs (
    id                 uuid PRIMARY KEY,
    "timestamp"        timestamptz,
    level              text,
    method             text,
    url                text,
    query              jsonb,
    headers            jsonb,
    params             jsonb,
    context            text,
    message            text,
    hostname           text,
    auth_user_id       bigint,
    pid                integer,
    remote_address     text,
    remote_port        integer,
    processing_time_ms double precision,
    cache_hit          boolean,
    document_count     integer,
    last_updated       timestamptz,
    raw_data           jsonb NOT NULL,
    request_id         text,
    source_bucket      text,
    source_key         text,
    source_index       bigint,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Lets `--force` find the rows one object produced.
CREATE INDEX IF NOT EXISTS logs_source_idx ON logs (source_bucket, source_key);

-- One row per object (or local file): the job that ingests it.
CREATE TABLE IF NOT EXISTS processed_files (
    bucket           text NOT NULL,
    s3_key           text NOT NULL,
    status           text NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')),
    processed_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- {size, error, lastAttempt, attempts, ...}
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Claims: attempts so far, the current lease (token changes on every claim) and when a
    -- failed job may be tried again.
    attempts         integer NOT NULL DEFAULT 0,
    lease_token      uuid,
    lease_expires_at timestamptz,
    next_attempt_at  timestamptz,
    -- Records of the object committed so far (the next source index to read). Advanced in
    -- the same transaction as the COPY of those records: the exactly-once checkpoint.
    checkpoint       bigint NOT NULL DEFAULT 0,
    records_ingested bigint NOT NULL DEFAULT 0,
    records_rejected bigint NOT NULL DEFAULT 0,
    records_filtered bigint NOT NULL DEFAULT 0,
    size             bigint,
    etag             text,
    last_modified    timestamptz,
    PRIMARY KEY (bucket, s3_key)
);

CREATE INDEX IF NOT EXISTS processed_files_claim_idx
    ON processed_files (status, last_modified, s3_key);

-- Elements that are not JSON objects or not valid JSON, kept with the cause.
CREATE TABLE IF NOT EXISTS rejected_records (
    id           bigserial PRIMARY KEY,
    bucket       text NOT NULL,
    s3_key       text NOT NULL,
    source_index bigint NOT NULL,
    raw          text NOT NULL,
    error        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bucket, s3_key, source_index)
);
