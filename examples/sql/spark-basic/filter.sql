-- df.filter($"age" > 21).show()
SELECT * FROM people WHERE age > 21;
