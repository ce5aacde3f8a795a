// The OData v4 test server: SAP CAP on a SQLite file, bound to 127.0.0.1 only.
//
// Run with Node 22 from this folder, the current directory being a CAP project (what
// crates/testkit/src/odata.rs makes per test in a temporary folder):
//
//   cd <project> && <this folder>/node_modules/node/bin/node <this folder>/server.js
//
// The project holds package.json (the `cds` configuration: the SQLite file, auth, limits) and
// db/*.cds (the model). A model that declares no service gets srv/service.cds written here: a
// service S at /odata/v4/s exposing every entity of the model under its own short name
// (`t.Item` as `Item`). The schema is deployed to the SQLite file (tables dropped and made
// again), then served. The project needs no node_modules: CAP and its plugins are found here.
//
// Environment: PORT (default 0: a free port the system picks); DUALSYNC_ODATA_STDIN_EXIT=1
// ends the server when its standard input closes (the test process holding it has gone);
// DUALSYNC_ODATA_TRACK_CHANGES=1 serves change tracking (delta.js).
// Prints one line `listening on 127.0.0.1:PORT` once the services answer.
'use strict'
const path = require('path')
const fs = require('fs')
const express = require('express')
const cds = require('@sap/cds')
const faults = require('./faults')
const delta = require('./delta')

const HOST = '127.0.0.1'

if (process.env.DUALSYNC_ODATA_STDIN_EXIT === '1') {
  process.stdin.on('end', () => process.exit(0))
  process.stdin.on('error', () => process.exit(0))
  process.stdin.resume()
}

/** srv/service.cds for a model without a service: every entity of the model, under its short name. */
async function generateService(root) {
  const db = await cds.load(path.join(root, 'db'))
  const defs = Object.entries(db.definitions)
  if (defs.some(([, d]) => d.kind === 'service')) return
  const entities = defs
    .filter(([name, d]) => d.kind === 'entity' && !name.startsWith('cds.') && !name.startsWith('sap.common.') && !name.endsWith('.texts'))
    .map(([name]) => name)
  const short = (name) => name.slice(name.lastIndexOf('.') + 1)
  const taken = new Map()
  for (const e of entities) taken.set(short(e), (taken.get(short(e)) || 0) + 1)
  const lines = ['// Written by server.js: every entity of the model in one service.']
  // Each entity imported from its own file (the compiler's $location), under an alias that no
  // name of the service can shadow.
  const from = (e) => path.relative(path.join(root, 'srv'), path.join(root, db.definitions[e].$location.file)).replace(/\\/g, '/')
  lines.push(...entities.map((e, i) => `using { ${e} as __e${i} } from '${from(e)}';`))
  lines.push("service S @(path: '/odata/v4/s') {")
  // A short name used in two namespaces is exposed under its full name with `_` for `.`.
  lines.push(...entities.map((e, i) => `  entity ${taken.get(short(e)) > 1 ? e.replace(/\./g, '_') : short(e)} as projection on __e${i};`))
  lines.push('}', '')
  fs.mkdirSync(path.join(root, 'srv'), { recursive: true })
  fs.writeFileSync(path.join(root, 'srv', 'service.cds'), lines.join('\n'))
}

async function main() {
  const root = cds.root
  if (!fs.existsSync(path.join(root, 'srv'))) await generateService(root)

  const app = (cds.app = express())
  // Before everything else: the fault gate sees every /odata request, and /__faults needs no login.
  app.use(faults())
  const tracking = process.env.DUALSYNC_ODATA_TRACK_CHANGES === '1' ? delta() : null
  if (tracking) app.use(tracking.router)
  cds.emit('bootstrap', app)

  const csn = await cds.load('*')
  cds.edmxs = cds.compile.to.edmx.files(csn)
  cds.model = cds.compile.for.nodejs(csn)
  cds.db = await cds.connect.to('db')
  await cds.deploy(csn).to(cds.db, { silent: true })
  await cds.serve('all').in(app)
  if (tracking) for (const srv of Object.values(cds.services)) if (srv instanceof cds.ApplicationService) tracking.track(srv)
  await cds.emit('served', cds.services)

  const server = (app.server = app.listen(Number(process.env.PORT || 0), HOST))
  server.on('error', (e) => {
    console.error(e)
    process.exit(1)
  })
  server.on('listening', () => {
    const { port } = server.address()
    cds.emit('listening', { server, url: `http://${HOST}:${port}` })
    console.log(`listening on ${HOST}:${port}`)
  })
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
