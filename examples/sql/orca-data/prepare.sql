-- Orca "data" preparation on hourly Seattle weather normals:
-- parse the timestamps, derive the hour of day and an "awake" flag
-- (07:00-22:59), drop incomplete readings, then aggregate per month and flag.
CREATE TEMP VIEW readings AS
SELECT CAST(date AS TIMESTAMP) AS ts, temperature, pressure, wind
FROM weather;

CREATE TEMP VIEW features AS
SELECT ts,
       hour(ts) AS hour,
       CASE WHEN hour(ts) BETWEEN 7 AND 22 THEN 1 ELSE 0 END AS awake,
       temperature, pressure, wind
FROM readings
WHERE temperature IS NOT NULL AND pressure IS NOT NULL AND wind IS NOT NULL;

SELECT month(ts) AS month,
       awake,
       count(*) AS hours,
       round(avg(temperature), 2) AS avg_temperature,
       round(min(temperature), 1) AS min_temperature,
       round(max(temperature), 1) AS max_temperature,
       round(avg(pressure), 1) AS avg_pressure,
       round(avg(wind), 2) AS avg_wind
FROM features
GROUP BY month, awake
ORDER BY month, awake;
