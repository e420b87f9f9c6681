-- E-mail addresses shared by more than one contact of a client (compared trimmed and
-- lower-cased), most shared first. Params: :client_id.
SELECT
    LOWER(TRIM(email)) AS value,
    COUNT(*) AS records
FROM contacts
WHERE client_id = :client_id
    AND email IS NOT NULL
    AND TRIM(email) <> ''
GROUP BY LOWER(TRIM(email))
HAVING COUNT(*) > 1
ORDER BY records DESC, value
