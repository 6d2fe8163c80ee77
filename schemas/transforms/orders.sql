-- Orders as analysts query them: one row per order that was not cancelled, the amount in
-- cents, the shipping country flattened, and the discount tag parsed. A discount that is not
-- a number fails only its own order, which goes to the dead letters with the cast error.
SELECT
  order_id,
  customer_id,
  ts,
  status,
  CAST(amount * 100 AS BIGINT)                AS amount_cents,
  upper(currency)                             AS currency,
  CAST(cardinality(items) AS INT)             AS line_items,
  shipping['country']                         AS ship_country,
  coalesce(coupon, 'none')                    AS coupon,
  CAST(tags['discount_pct'] AS INT)           AS discount_pct,
  CASE WHEN amount >= 100 THEN 'large' ELSE 'small' END AS size
FROM events
WHERE status <> 'cancelled'
