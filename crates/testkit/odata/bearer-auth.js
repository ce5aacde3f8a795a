// CAP's auth for a server that takes OAuth2 access tokens: `Authorization: Bearer <JWT>`, checked
// with jose against a token service's published keys (idp.mjs, or any issuer with a JWKS).
//
// The project's package.json selects it (crates/testkit/src/odata.rs writes this):
//
//   "cds": {"requires": {"auth": {"impl": "<this file>", "jwks_url": "http://127.0.0.1:PORT/jwks",
//                                 "issuer": "http://127.0.0.1:PORT", "audience": "urn:dualsync:odata"}}}
//
// CAP puts the middleware in front of every service it serves (after faults.js, which sees the
// request first). A request without a bearer token gets 401 with `WWW-Authenticate: Bearer
// realm="dualsync-test"`; one whose token is not a JWT, is signed with another key, names another
// issuer or audience, or has expired gets 401 with `error="invalid_token"` and the reason in
// `error_description`. A valid token makes the request a privileged CAP user named by the token's
// `sub` (every entity may be read and written). Each refusal is logged as `bearer refused: …`.
// When the keys cannot be fetched from jwks_url the answer is 503 (`bearer check failed: …`).
'use strict'
const cds = require('@sap/cds')

const REALM = 'dualsync-test'

module.exports = function bearer_auth(options) {
  const { jwks_url, issuer, audience } = options
  if (!jwks_url || !issuer || !audience) throw new Error('bearer auth needs jwks_url, issuer and audience in cds.requires.auth')
  // jose is an ES module: loaded once, on the first request.
  let check
  const verifier = async () => {
    if (!check) {
      const { createRemoteJWKSet, jwtVerify } = await import('jose')
      const keys = createRemoteJWKSet(new URL(jwks_url))
      check = (token) => jwtVerify(token, keys, { issuer, audience })
    }
    return check
  }

  const refuse = (res, why) => {
    console.log(`bearer refused: ${why}`)
    const challenge = why === 'no bearer token'
      ? `Bearer realm="${REALM}"`
      : `Bearer realm="${REALM}", error="invalid_token", error_description="${why.replace(/["\\]/g, '')}"`
    res.set('WWW-Authenticate', challenge)
    res.status(401).json({ error: { code: '401', message: `Unauthorized: ${why}` } })
  }

  return async function bearer_auth(req, res, next) {
    const header = req.headers.authorization || ''
    const m = /^bearer +(\S+) *$/i.exec(header)
    if (!m) return refuse(res, 'no bearer token')
    let payload
    try {
      ;({ payload } = await (await verifier())(m[1]))
    } catch (e) {
      const why = `${e.code || e.name}: ${e.message}`
      // The token's fault: 401. The keys could not be had (the token service is down): 503.
      if (/^ERR_(JW[TSEK]_|JWKS_(NO|MULTIPLE)_MATCHING_KEYS?$|JOSE_(ALG_NOT_ALLOWED|NOT_SUPPORTED)$)/.test(e.code || '')) return refuse(res, why)
      console.log(`bearer check failed: ${why}`)
      return res.status(503).json({ error: { code: '503', message: `cannot check the token: ${why}` } })
    }
    const user = new cds.User.Privileged({ id: payload.sub || payload.client_id || 'client' })
    cds.context.user = req.user = user
    next()
  }
}
