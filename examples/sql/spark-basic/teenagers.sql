-- spark.sql("SELECT name FROM people WHERE age BETWEEN 13 AND 19")
SELECT name FROM people WHERE age BETWEEN 13 AND 19;
