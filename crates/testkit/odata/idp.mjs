// A real OAuth2 token service for dualsync's tests: oidc-provider with the client-credentials grant
// only, bound to 127.0.0.1. Its access tokens are JWTs (RS256) for one resource server, signed with
// a key made at start and published at /jwks, so a service (server.js with JWKS_URL) can check them.
//
//   <this folder>/node_modules/node/bin/node <this folder>/idp.mjs
//
// Environment:
//   IDP_CLIENT_ID, IDP_CLIENT_SECRET  the one client (both required); it authenticates with the
//                                     secret in the form body (client_secret_post) or in HTTP basic
//                                     (client_secret_basic)
//   IDP_TTL        seconds an access token lasts (default 300); also its `expires_in`
//   IDP_AUDIENCE   the resource server, the tokens' `aud` (default urn:dualsync:odata): the default
//                  resource when a token request names none
//   IDP_SCOPE      scopes the client may ask for (default "odata"); asking for none is fine too, and
//                  oidc-provider drops a scope it does not know from the token instead of refusing it
//   PORT           default 0: a free port the system picks
//   DUALSYNC_ODATA_STDIN_EXIT=1  ends the process when its standard input closes
//
// Endpoints: POST /token, GET /jwks, GET /.well-known/openid-configuration (the issuer is
// http://127.0.0.1:PORT), and GET /__issued: {"issued": N, "refused": M}, the token requests
// answered with a token and those refused so far.
//
// Prints one line `listening on 127.0.0.1:PORT` once it answers, then one line per token request:
// `issued token N to CLIENT (expires in S s)` or `refused token request: ERROR (DESCRIPTION)`.
// (Before it, oidc-provider warns that its in-memory adapter is for development: harmless here,
// JWT access tokens are not stored at all.)
//
// A plain http:// issuer on 127.0.0.1 works for this grant as is (discovery, /token and /jwks with
// oidc-provider 9.13; no setting needed), and `jose` in bearer-auth.js fetches http:// JWKS too.
import http from 'node:http'
import { generateKeyPair, exportJWK } from 'jose'
import Provider, { errors } from 'oidc-provider'

const HOST = '127.0.0.1'
const env = process.env
const clientId = env.IDP_CLIENT_ID
const clientSecret = env.IDP_CLIENT_SECRET
if (!clientId || !clientSecret) {
  console.error('IDP_CLIENT_ID and IDP_CLIENT_SECRET are required')
  process.exit(2)
}
const ttl = Number(env.IDP_TTL || 300)
if (!(Number.isInteger(ttl) && ttl > 0)) {
  console.error(`IDP_TTL must be a whole number of seconds above 0, not ${env.IDP_TTL}`)
  process.exit(2)
}
const audience = env.IDP_AUDIENCE || 'urn:dualsync:odata'
const scope = env.IDP_SCOPE ?? 'odata'

if (env.DUALSYNC_ODATA_STDIN_EXIT === '1') {
  process.stdin.on('end', () => process.exit(0))
  process.stdin.on('error', () => process.exit(0))
  process.stdin.resume()
}

const counts = { issued: 0, refused: 0 }
let provider

// The port first (the issuer holds it), the provider after: requests before it is ready get 503.
const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/__issued') {
    res.setHeader('Content-Type', 'application/json')
    return res.end(JSON.stringify(counts))
  }
  if (!provider) {
    res.statusCode = 503
    return res.end()
  }
  provider.callback()(req, res)
})
server.on('error', (e) => {
  console.error(e)
  process.exit(1)
})
server.listen(Number(env.PORT || 0), HOST, async () => {
  try {
    const { port } = server.address()
    const issuer = `http://${HOST}:${port}`
    const { privateKey } = await generateKeyPair('RS256', { extractable: true })
    const jwk = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: crypto.randomUUID() }

    provider = new Provider(issuer, {
      clients: [
        {
          client_id: clientId,
          client_secret: clientSecret,
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_post',
          scope,
        },
      ],
      // The client is registered with client_secret_post; oidc-provider takes a secret in either
      // place for either secret method, so client_secret_basic works as well.
      clientAuthMethods: ['client_secret_post', 'client_secret_basic'],
      scopes: scope ? scope.split(' ') : [],
      jwks: { keys: [jwk] },
      cookies: { keys: ['dualsync-test-cookie-key'] },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        introspection: { enabled: false },
        revocation: { enabled: false },
        userinfo: { enabled: false },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => audience,
          useGrantedResource: () => true,
          getResourceServerInfo: (ctx, resourceIndicator) => {
            if (resourceIndicator !== audience) throw new errors.InvalidTarget()
            return { scope, audience, accessTokenFormat: 'jwt', accessTokenTTL: ttl, jwt: { sign: { alg: 'RS256' } } }
          },
        },
      },
      ttl: { ClientCredentials: ttl },
      routes: { token: '/token', jwks: '/jwks' },
    })
    provider.on('grant.success', (ctx) => {
      counts.issued++
      console.log(`issued token ${counts.issued} to ${ctx.oidc.client?.clientId} (expires in ${ttl} s)`)
    })
    provider.on('grant.error', (ctx, e) => {
      counts.refused++
      console.log(`refused token request: ${e.error || e.name} (${e.error_description || e.message})`)
    })
    provider.on('server_error', (ctx, e) => console.error(e))
    console.log(`listening on ${HOST}:${port}`)
  } catch (e) {
    console.error(e)
    process.exit(1)
  }
})
