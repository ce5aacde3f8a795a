// Fault injection for the OData client's retry tests, controlled over HTTP by the test.
//
//   POST /__faults  {"status": 429, "retry_after": 1, "count": 2}   the next 2 requests to /odata/* answer 429
//                                                                  with `Retry-After: 1` (any status: 503, 500…)
//                   {"reset": 1}                 the next request's socket is destroyed without an answer
//                   {"reset_after_handling": 1}  the next request runs (a $batch writes and commits), then its
//                                                socket is destroyed instead of the answer being sent
//                   {"delay_ms": 3000, "count": 1}  the next request waits that long, then runs normally
//                   "match": "$batch"            (with any of the above) only requests whose "METHOD /url"
//                                                contains this text take the fault; others pass untouched
//                   {"clear": true}              drops pending faults and zeroes the counters
//   GET  /__faults  {"seen": 7, "batches": 2, "pending": 0,
//                    "injected": {"status": {"429": 2}, "reset": 1, "reset_after_handling": 0, "delay": 0},
//                    "requests": ["GET /odata/v4/s/$metadata", "POST /odata/v4/s/$batch", …]}
//
// `seen` counts every request that reached /odata (a faulted one too), `batches` those to …/$batch,
// `requests` lists them in order (the last 1000). Faults queue in the order posted; each request
// takes the first pending fault that matches it.
'use strict'
const express = require('express')

const KEEP = 1000

module.exports = function faults() {
  let state
  const clear = () => {
    state = { pending: [], seen: 0, batches: 0, requests: [], injected: { status: {}, reset: 0, reset_after_handling: 0, delay: 0 } }
  }
  clear()

  const router = express.Router()

  router.get('/__faults', (req, res) => {
    const { pending, ...rest } = state
    res.json({ ...rest, pending: pending.reduce((n, f) => n + f.count, 0) })
  })

  router.post('/__faults', express.json(), (req, res) => {
    const b = req.body || {}
    const match = typeof b.match === 'string' ? b.match : undefined
    const count = b.count === undefined ? 1 : Number(b.count)
    const add = (f) => f.count > 0 && state.pending.push({ ...f, match })
    if (b.clear) clear()
    if (b.status !== undefined) {
      const status = Number(b.status)
      if (!(status >= 100 && status <= 599)) return res.status(400).json({ error: 'status must be an HTTP status' })
      add({ kind: 'status', status, retry_after: b.retry_after, count })
    }
    if (b.reset !== undefined) add({ kind: 'reset', count: Number(b.reset) })
    if (b.reset_after_handling !== undefined) add({ kind: 'reset_after_handling', count: Number(b.reset_after_handling) })
    if (b.delay_ms !== undefined) add({ kind: 'delay', ms: Number(b.delay_ms), count })
    res.json({ pending: state.pending.reduce((n, f) => n + f.count, 0) })
  })

  // Every OData request passes here first, before authentication and the OData adapter.
  router.use('/odata', (req, res, next) => {
    const line = `${req.method} ${req.originalUrl}`
    state.seen++
    if (req.originalUrl.split('?')[0].endsWith('/$batch')) state.batches++
    state.requests.push(line)
    if (state.requests.length > KEEP) state.requests.shift()

    const i = state.pending.findIndex((f) => f.match === undefined || line.includes(f.match))
    if (i < 0) return next()
    const f = state.pending[i]
    if (--f.count <= 0) state.pending.splice(i, 1)

    switch (f.kind) {
      case 'status': {
        state.injected.status[f.status] = (state.injected.status[f.status] || 0) + 1
        if (f.retry_after !== undefined) res.set('Retry-After', String(f.retry_after))
        return res.status(f.status).json({ error: { code: String(f.status), message: `injected fault: ${f.status}` } })
      }
      case 'reset':
        state.injected.reset++
        return req.socket.destroy()
      case 'delay':
        state.injected.delay++
        return setTimeout(next, f.ms)
      case 'reset_after_handling': {
        state.injected.reset_after_handling++
        // Nothing reaches the socket: headers go out with the first write or end, both swallowed here;
        // the end of the answer (the handler has finished, its writes committed) destroys the socket.
        const socket = req.socket
        res.flushHeaders = () => {}
        res.write = (chunk, encoding, cb) => {
          const done = typeof encoding === 'function' ? encoding : cb
          if (done) process.nextTick(done)
          return true
        }
        res.end = () => {
          socket.destroy()
          return res
        }
        return next()
      }
    }
    next()
  })

  return router
}
