// Loads FILL rows (keys f000000000…) straight into the bench service's SQLite file, for reading.
'use strict'
const { DatabaseSync } = require('node:sqlite')
const [file, count] = [process.argv[2], Number(process.argv[3] || 0)]
const db = new DatabaseSync(file)
db.exec('BEGIN')
const insert = db.prepare('INSERT INTO b_Item (k, name, qty, price) VALUES (?, ?, ?, ?)')
for (let i = 0; i < count; i++) {
  insert.run(`f${String(i).padStart(9, '0')}`, `name ${i}`, i % 1000, (i % 100000) + (i % 100) / 100)
}
db.exec('COMMIT')
db.close()
console.log(`filled ${count} rows`)
