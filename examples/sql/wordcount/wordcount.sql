-- Spark's JavaWordCount: split lines into words, count each word.
-- Words are lower-cased runs of letters, digits and apostrophes.
SELECT word, count(*) AS count
FROM (
    SELECT unnest(regexp_split_to_array(lower(line), '[^a-z0-9'']+')) AS word
    FROM text
)
WHERE word <> ''
GROUP BY word
ORDER BY count DESC, word;
