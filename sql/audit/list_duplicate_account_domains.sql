-- Domains shared by more than one account of a client (compared trimmed and lower-cased),
-- most shared first. Params: :client_id.
SELECT
    LOWER(TRIM(domain)) AS value,
    COUNT(*) AS records
FROM accounts
WHERE client_id = :client_id
    AND domain IS NOT NULL
    AND TRIM(domain) <> ''
GROUP BY LOWER(TRIM(domain))
HAVING COUNT(*) > 1
ORDER BY records DESC, value
