-- Marks a file COMPLETED and releases its lease (guarded by the lease token); $4: the
-- destinations it was written to (`postgres:<table>`, `parquet:<url>`), added to those
-- it was written to before.
UPDATE processed_files
SET status = 'COMPLETED',
    processed_at = now(),
    lease_token = NULL,
    lease_expires_at = NULL,
    next_attempt_at = NULL,
    destinations = ARRAY(SELECT DISTINCT d FROM unnest(COALESCE(destinations, '{}') || $4::text[]) AS d ORDER BY d),
    metadata = (metadata - 'error') || jsonb_build_object(
        'records', records_ingested, 'rejected', records_rejected, 'filtered', records_filtered,
        'attempts', attempts),
    updated_at = now()
WHERE bucket = $1 AND s3_key = $2 AND lease_token = $3 AND status = 'PROCESSING'
