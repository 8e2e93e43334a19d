// The OpenID provider the tests sign in against: panva's certified
// oidc-provider (pinned in package.json, installed by `make install`), with
// its development login and consent pages, which the tests fill in (with httpx
// in `make test`, with Chromium in the stack suite).
//
// Configured by the environment (tests/oidc/provider.py starts it for `make
// test`; the stack suite runs it in a container, tests/stack/compose.test.yaml):
//   PORT       the port to listen on
//   HOST       the address to listen on (default 127.0.0.1; 0.0.0.0 in a container)
//   ISSUER     its issuer URL (default http://127.0.0.1:PORT)
//   TLS_CERT, TLS_KEY
//              PEM files: serve HTTPS itself (default: plain HTTP)
//   PROXY      "true": behind a proxy that terminates TLS (Traefik), whose
//              X-Forwarded-Proto and -Host it trusts, so that an https ISSUER's
//              endpoints and cookies are https
//   JWKS       its signing keys, private JWKs as JSON (the `make test` tests hold
//              them too); unset: a fresh RSA key made at start
//   CLIENT     the one client: {"client_id", "client_secret", "redirect_uris"}
//
// Any login is an account: "<subject>|<email>|<true|false>" names its `sub`
// (the whole login), its address and whether the address is verified.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const host = process.env.HOST || '127.0.0.1';
const issuer = process.env.ISSUER || `http://127.0.0.1:${port}`;
if (!process.env.CLIENT) {
  throw new Error('CLIENT is not set: the one client, as JSON (client_id, client_secret, redirect_uris)');
}
const client = JSON.parse(process.env.CLIENT);

function freshJwks() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: 'stack-provider-key', alg: 'RS256', use: 'sig' }] };
}

const configuration = {
  clients: [
    {
      ...client,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: process.env.JWKS ? JSON.parse(process.env.JWKS) : freshJwks(),
  pkce: { methods: ['S256'], required: () => true },
  features: { devInteractions: { enabled: true } },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // The address in the ID token itself, as Google puts it there.
  conformIdTokenClaims: false,
  cookies: { keys: ['the-test-provider-cookie-key'] },
  async findAccount(ctx, id) {
    const [, email, verified] = id.split('|');
    return {
      accountId: id,
      async claims() {
        const claims = { sub: id };
        if (email) {
          claims.email = email;
          claims.email_verified = verified === 'true';
        }
        return claims;
      },
    };
  },
};

const provider = new Provider(issuer, configuration);
provider.proxy = process.env.PROXY === 'true';
provider.on('server_error', (ctx, error) => console.error('server_error', error));
const ready = () => console.log(`listening on ${host}:${port}, issuer ${issuer}`);
if (process.env.TLS_CERT) {
  const tls = { cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) };
  https.createServer(tls, provider.callback()).listen(port, host, ready);
} else {
  provider.listen(port, host, ready);
}
