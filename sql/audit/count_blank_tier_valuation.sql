-- Every account of a client against its score of one rubric version and product: how many have
-- no tier, how many are in scope (T1-T3) and how many of those have no valuation.
-- Params: :client_id, :rubric_version, :product.
SELECT
    COUNT(*) AS accounts,
    COUNT(*) - COUNT(s.tier) AS blank_tier,
    COALESCE(SUM(CASE WHEN s.tier IN ('T1', 'T2', 'T3') THEN 1 ELSE 0 END), 0) AS in_scope,
    COALESCE(SUM(CASE WHEN s.tier IN ('T1', 'T2', 'T3') AND s.valuation IS NULL THEN 1 ELSE 0 END), 0)
        AS blank_valuation
FROM accounts AS a
LEFT JOIN account_scores AS s
    ON s.client_id = a.client_id
    AND s.account_key = a.account_key
    AND s.rubric_version = :rubric_version
    AND s.product = :product
WHERE a.client_id = :client_id
