-- df.groupBy("age").count().show()
SELECT age, count(*) AS count FROM people GROUP BY age ORDER BY age NULLS FIRST;
