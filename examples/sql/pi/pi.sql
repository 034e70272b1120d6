-- Spark's SparkPi: throw n darts at the square [-1, 1]², count the ones
-- inside the unit circle. setseed makes random() repeatable.
SELECT setseed(0.42);
SELECT 'Pi is roughly ' || (4.0 * count(*) FILTER (WHERE x * x + y * y <= 1) / count(*))::VARCHAR AS result
FROM (
    SELECT random() * 2 - 1 AS x, random() * 2 - 1 AS y
    FROM range(1000000)
);
