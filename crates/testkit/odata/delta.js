// Change tracking for the test server, as OData 4.0 (§11.3 and the JSON format's delta
// responses) and Dataverse's Web API serve it: CAP itself has none. On only when the
// test asks (DUALSYNC_ODATA_TRACK_CHANGES=1); otherwise `Prefer: odata.track-changes` is
// ignored, as by a table whose Track changes is off.
//
//   GET /odata/v4/s/Set?$select=a,b          with `Prefer: odata.track-changes`: the rows, paged
//                                            by `odata.maxpagesize` (`@odata.nextLink`), the last
//                                            page ending with `@odata.deltaLink`
//   GET <delta link>                         the rows created or changed since (their current
//                                            values), and the deleted ones as Dataverse writes
//                                            them: {"@odata.context": "…#Set/$deletedEntity",
//                                            "id": "<key>", "reason": "deleted"}; then the next
//                                            delta link
//
// Changes are recorded by the service's own handlers (after CREATE, UPDATE, UPSERT, DELETE):
// writes through the API are tracked, rows put straight into the SQLite file are not.
// Entity sets with one key column only (as Dataverse's). Tokens are sequence numbers of this
// process: a restarted server answers 410 Gone to an older one.
'use strict'
const express = require('express')
const cds = require('@sap/cds')

const SERVICE = '/odata/v4/s'
const EPOCH = Date.now().toString(36)

module.exports = function delta() {
  const log = [] // { seq, set, key, deleted }
  let seq = 0

  function record(req) {
    const target = req.target
    if (!target || !target.name.startsWith('S.')) return
    const set = target.name.slice(2)
    const [keyName] = Object.keys(target.keys || {}).filter((k) => !target.keys[k].isAssociation)
    if (!keyName) return
    let key = req.data && req.data[keyName]
    if (key === undefined && req.params && req.params.length) {
      const p = req.params[req.params.length - 1]
      key = typeof p === 'object' ? p[keyName] : p
    }
    if (key === undefined) return
    log.push({ seq: ++seq, set, key, deleted: req.event === 'DELETE' })
  }

  function track(srv) {
    srv.after(['CREATE', 'UPDATE', 'UPSERT', 'DELETE'], '*', (_, req) => record(req))
  }

  const router = express.Router()
  router.get(`${SERVICE}/:set`, async (req, res, next) => {
    if (!/odata\.track-changes/.test(req.get('prefer') || '')) return next()
    const set = req.params.set
    const entity = cds.model.definitions[`S.${set}`]
    if (!entity) return next()
    const keyName = Object.keys(entity.keys || {}).find((k) => !entity.keys[k].isAssociation)
    const pageSize = Number((/odata\.maxpagesize=(\d+)/.exec(req.get('prefer')) || [])[1] || 5000)
    const q = req.query
    const select = String(q.$select || Object.keys(entity.elements).join(','))
      .split(',')
      .filter((c) => c && entity.elements[c])
    if (!select.includes(keyName)) select.unshift(keyName)
    const base = `${req.protocol}://${req.get('host')}${SERVICE}`
    const link = (params) => `${base}/${set}?` + Object.entries({ $select: select.join(','), ...params }).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')
    const skip = Number(q.$skiptoken || 0)
    res.set('Preference-Applied', 'odata.track-changes')
    const body = { '@odata.context': `${base}/$metadata#${set}(${select.join(',')})/$delta`, value: [] }
    try {
      if (q.$deltatoken === undefined) {
        // The first read: every row, then the delta link from this moment on.
        const end = q.$deltaend !== undefined ? q.$deltaend : `${EPOCH}.${seq}`
        const rows = await cds.run(SELECT.from(`S.${set}`).columns(select).orderBy(keyName).limit(pageSize + 1, skip))
        body.value = rows.slice(0, pageSize)
        if (rows.length > pageSize) body['@odata.nextLink'] = link({ $deltaend: end, $skiptoken: skip + pageSize })
        else body['@odata.deltaLink'] = link({ $deltatoken: end })
        return res.json(body)
      }
      const [epoch, from] = String(q.$deltatoken).split('.')
      if (epoch !== EPOCH) return res.status(410).json({ error: { code: '410', message: 'the delta token is from an earlier server' } })
      const upto = q.$deltaend !== undefined ? Number(String(q.$deltaend).split('.')[1]) : seq
      // The last change of each key in (from, upto], in the order they were last changed.
      const last = new Map()
      for (const c of log) if (c.set === set && c.seq > Number(from) && c.seq <= upto) last.set(String(c.key), c)
      const changes = [...last.values()].sort((a, b) => a.seq - b.seq)
      for (const c of changes.slice(skip, skip + pageSize)) {
        const row = c.deleted ? null : await cds.run(SELECT.one.from(`S.${set}`).columns(select).where({ [keyName]: c.key }))
        body.value.push(row || { '@odata.context': `${base}/$metadata#${set}/$deletedEntity`, id: c.key, reason: 'deleted' })
      }
      if (changes.length > skip + pageSize) body['@odata.nextLink'] = link({ $deltatoken: `${EPOCH}.${from}`, $deltaend: `${EPOCH}.${upto}`, $skiptoken: skip + pageSize })
      else body['@odata.deltaLink'] = link({ $deltatoken: `${EPOCH}.${upto}` })
      res.json(body)
    } catch (e) {
      next(e)
    }
  })
  return { router, track }
}
