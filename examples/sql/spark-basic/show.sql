-- df.show()
SELECT * FROM people;
