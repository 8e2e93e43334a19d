// The OpenID provider the test suite signs in against: panva's certified
// oidc-provider (pinned in package.json, installed by `make install`), with
// its development login and consent pages, which the tests fill in with httpx.
//
// Configured by the environment (tests/oidc/provider.py starts it):
//   PORT    the loopback port to listen on (the issuer is http://127.0.0.1:PORT)
//   JWKS    its signing keys, private JWKs as JSON (the tests hold them too)
//   CLIENT  the one client: {"client_id", "client_secret", "redirect_uris"}
//
// Any login is an account: "<subject>|<email>|<true|false>" names its `sub`
// (the whole login), its address and whether the address is verified.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const client = JSON.parse(process.env.CLIENT);

const configuration = {
  clients: [
    {
      ...client,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: JSON.parse(process.env.JWKS),
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
provider.on('server_error', (ctx, error) => console.error('server_error', error));
provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
