-- sqlite3 workload on an in-memory database: about 100 000 inserts plus
-- updates, deletes, index builds, joins, window functions and aggregates.
-- Run as: sqlite3 -bail -batch :memory: < workload.sql
-- Every query has an ORDER BY or yields one row, so the output is stable.

.headers off
.mode list
.separator |

PRAGMA cache_size = -8000;

CREATE TABLE items (
    id      INTEGER PRIMARY KEY,
    grp     INTEGER NOT NULL,
    name    TEXT NOT NULL,
    val     REAL NOT NULL,
    payload BLOB
);

WITH RECURSIVE seq(i) AS (
    SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 100000
)
INSERT INTO items (id, grp, name, val, payload)
SELECT i,
       (i * 7919) % 97,
       printf('item-%06d-%s', i, substr(hex(i * 2654435761), 1, 1 + i % 12)),
       ((i * 31) % 1000) / 10.0,
       zeroblob(i % 200)
FROM seq;

CREATE INDEX items_grp_val ON items (grp, val);
CREATE INDEX items_name ON items (name);

SELECT 'inserted', count(*), sum(grp), printf('%.1f', total(val)),
       sum(length(name)), sum(length(payload))
FROM items;

UPDATE items SET val = val * 2, name = upper(name) WHERE id % 3 = 0;
UPDATE items SET payload = zeroblob(300) WHERE id % 11 = 0;
UPDATE items SET name = name || '-' || replace(name, 'item', 'x') WHERE grp < 10;
DELETE FROM items WHERE id % 7 = 0;
DELETE FROM items WHERE grp = 13 AND val > 50;

SELECT 'after dml', count(*), sum(grp), printf('%.1f', total(val)),
       sum(length(name)), sum(length(payload))
FROM items;

SELECT 'group', grp, count(*), printf('%.2f', avg(val)), min(name), max(name)
FROM items
GROUP BY grp
HAVING grp % 10 = 0
ORDER BY grp;

-- A second table with text keys, joined back to the first.
CREATE TABLE words (w TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
INSERT INTO words (w, n)
SELECT substr(name, 1, 9) || (grp % 5), count(*)
FROM items
GROUP BY 1;

SELECT 'words', count(*), sum(n), min(w), max(w) FROM words;

SELECT 'join', count(*), sum(i.grp * w.n) % 1000003
FROM items AS i
JOIN words AS w ON w.w = substr(i.name, 1, 9) || (i.grp % 5)
WHERE i.id % 5 = 0;

-- Window functions over the whole table (large sorter allocations).
SELECT 'window', grp, id, rnk, printf('%.1f', running)
FROM (
    SELECT grp, id,
           rank() OVER (PARTITION BY grp ORDER BY val DESC, id) AS rnk,
           sum(val) OVER (PARTITION BY grp ORDER BY id) AS running
    FROM items
)
WHERE rnk = 1 AND grp < 8
ORDER BY grp;

-- Big group_concat strings built and thrown away.
SELECT 'concat', grp, length(group_concat(name, ',')),
       substr(group_concat(name, ','), 1, 30)
FROM (SELECT grp, name FROM items ORDER BY grp, id)
GROUP BY grp
ORDER BY grp
LIMIT 5;

-- Temporary b-trees from DISTINCT and a correlated subquery.
SELECT 'distinct', count(DISTINCT substr(name, 6, 3)), count(DISTINCT val) FROM items;
SELECT 'correlated', count(*)
FROM items AS a
WHERE a.val > (SELECT avg(b.val) FROM items AS b WHERE b.grp = a.grp)
  AND a.id % 13 = 0;

-- Rebuild the table through a copy, then drop everything.
CREATE TABLE items_copy AS SELECT * FROM items ORDER BY name;
DELETE FROM items;
INSERT INTO items SELECT * FROM items_copy WHERE id % 2 = 0;
DROP TABLE items_copy;
SELECT 'rebuilt', count(*), sum(id) FROM items;
VACUUM;
PRAGMA integrity_check;
