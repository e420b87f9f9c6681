-- Accounts, valued accounts and potential ARR per tier: one client, rubric version and product.
-- Params: :client_id, :rubric_version, :product. Only scored accounts still in the warehouse count.
SELECT
    s.tier AS tier,
    COUNT(*) AS accounts,
    COUNT(s.valuation) AS accounts_valued,
    COALESCE(SUM(s.valuation), 0) AS potential_arr
FROM account_scores AS s
JOIN accounts AS a
    ON a.client_id = s.client_id AND a.account_key = s.account_key
WHERE s.client_id = :client_id
    AND s.rubric_version = :rubric_version
    AND s.product = :product
GROUP BY s.tier
ORDER BY s.tier
