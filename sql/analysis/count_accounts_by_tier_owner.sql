-- Accounts per primary-product tier, owner and blank valuation: what the QA gates count.
-- Params: :client_id, :rubric_version, :product. An account without a score of that version has
-- a NULL tier and valuation (the gates' "blank tier"). The scoring steps write a missing
-- valuation as NULL, never as NaN.
SELECT
    s.tier AS tier,
    a.owner_id AS owner_id,
    s.valuation IS NULL AS valuation_blank,
    COUNT(*) AS accounts
FROM accounts AS a
LEFT JOIN account_scores AS s
    ON s.client_id = a.client_id
    AND s.account_key = a.account_key
    AND s.rubric_version = :rubric_version
    AND s.product = :product
WHERE a.client_id = :client_id
GROUP BY s.tier, a.owner_id, s.valuation IS NULL
ORDER BY 1, 2, 3
