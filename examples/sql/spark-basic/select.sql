-- df.select($"name", $"age" + 1).show()
SELECT name, age + 1 AS "(age + 1)" FROM people;
