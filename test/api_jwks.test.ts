// An identity provider's JWKS URL (JWT_JWKS_URL), for real (issue 18): a JWKS served on loopback by this
// test, its keys rotated while the real API process runs. Tokens of the new key are accepted without a
// restart, a token of a removed key is refused with 401 (even one the API had verified and cached), a
// failing endpoint (500, then down) does not refuse valid tokens whose key was fetched before, unknown kids
// refetch at most once per cooldown, and RS256, ES256 and EdDSA are accepted. Also: the configuration's
// refusals (JWT_ALGORITHMS, the URL's scheme), and a 503 (not 401) when no key was ever fetched.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { freePort, startApi, startServer, stop } from './helpers.ts';
import { createApiFixtures, dropApiFixtures, gql } from './api_fixtures.ts';
import { mintToken } from './tokens.ts';

const WHOAMI = '{ ballastTestWhoami }';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Key = { privateKey: CryptoKey; jwk: JWK; alg: string; kid: string };
async function key(alg: 'RS256' | 'ES256' | 'EdDSA', kid: string): Promise<Key> {
  const pair = alg === 'EdDSA' ? await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true }) : await generateKeyPair(alg, { extractable: true });
  return { privateKey: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' }, alg, kid };
}
const token = (k: Key, claims: Record<string, unknown> = {}) => mintToken({ role: 'member', ...claims }, { key: k.privateKey, alg: k.alg, kid: k.kid });

/** A JWKS endpoint: serves `keys`, or answers 500 while `failing`; counts its fetches. */
async function jwksServer() {
  const state = { keys: [] as JWK[], failing: false, fetches: 0 };
  const server = http.createServer((req, res) => {
    state.fetches += 1;
    if (state.failing) return void res.writeHead(500).end('boom');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
  });
  const port = await freePort();
  const listen = () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  await listen();
  return {
    state,
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    /** Stops listening: connections are refused. */
    down: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
    up: listen,
  };
}

describe('api jwt (JWT_JWKS_URL)', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  let jwks: Awaited<ReturnType<typeof jwksServer>>;
  let rsa: Key, ec: Key, ed: Key;

  before(async () => {
    await createApiFixtures();
    [rsa, ec, ed] = await Promise.all([key('RS256', 'rsa-1'), key('ES256', 'ec-2'), key('EdDSA', 'ed-3')]);
    jwks = await jwksServer();
    jwks.state.keys = [rsa.jwk];
    api = await startApi({ JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_S: '1', JWT_JWKS_CACHE_MAX_AGE_S: '2', LOG_LEVEL: 'info' });
  });
  after(async () => {
    await stop(api);
    await jwks.down().catch(() => undefined);
    await dropApiFixtures();
  });

  const status = async (t: string) => {
    const r = await gql(api.url, WHOAMI, { token: t });
    return { status: r.status, role: (r.body.data?.ballastTestWhoami as { role?: string } | undefined)?.role, message: r.body.errors?.[0]?.message };
  };

  it('accepts a token of the provider\'s key (RS256), fetched on first use', async () => {
    const t = await token(rsa);
    assert.deepEqual(await status(t), { status: 200, role: 'ballast_member', message: undefined });
    assert.equal(jwks.state.fetches, 1);
    // a token signed with a key the provider does not publish, under the published kid: bad signature
    const impostor = await key('RS256', 'rsa-1');
    assert.equal((await status(await token(impostor))).status, 401);
  });

  it('rotates without a restart: the new keys (ES256, EdDSA) are accepted, the removed key is refused with 401', async () => {
    const old = await token(rsa);
    assert.equal((await status(old)).status, 200, 'verified (and cached by the verifier) before the rotation');
    await sleep(1100); // past the cooldown since the last fetch
    jwks.state.keys = [ec.jwk, ed.jwk];
    const fetches = jwks.state.fetches;
    assert.deepEqual(await status(await token(ec, { role: 'admin' })), { status: 200, role: 'ballast_admin', message: undefined }, 'an unknown kid refetches the set');
    assert.equal(jwks.state.fetches, fetches + 1);
    assert.equal((await status(await token(ed))).status, 200, 'EdDSA');
    const refused = await status(old);
    assert.equal(refused.status, 401, 'the removed key\'s token, though verified before');
    assert.match(refused.message!, /no key in JWT_JWKS_URL matches the token/);
    assert.match(api.output(), /JWT_JWKS_URL keys changed/);
  });

  it('refetches for unknown kids at most once per cooldown', async () => {
    await sleep(1100);
    const before = jwks.state.fetches;
    const stranger = await key('ES256', 'unknown');
    for (let i = 0; i < 20; i += 1) {
      const r = await status(await mintToken({}, { key: stranger.privateKey, alg: 'ES256', kid: `made-up-${i}` }));
      assert.equal(r.status, 401);
    }
    assert.equal(jwks.state.fetches - before, 1, '20 unknown kids within the cooldown: one fetch');
  });

  it('keeps verifying with the cached keys while the endpoint fails (500, then down), and picks up again after', async () => {
    const t = await token(ec);
    jwks.state.failing = true;
    await sleep(2100); // the cached set is older than JWT_JWKS_CACHE_MAX_AGE_S: jose wants to refetch
    const fetches = jwks.state.fetches;
    assert.equal((await status(t)).status, 200, 'endpoint answers 500: the cached key still verifies');
    assert.equal(jwks.state.fetches, fetches + 1, 'it did try');
    assert.equal((await status(await token(ed))).status, 200);
    assert.equal(jwks.state.fetches, fetches + 1, 'within the cooldown after a failure the endpoint is not asked again');
    assert.equal((await status(await token(rsa))).status, 401, 'a key not in the cached set is still refused');
    await jwks.down();
    await sleep(1100);
    assert.equal((await status(t)).status, 200, 'endpoint down (connection refused): the cached key still verifies');
    assert.match(api.output(), /JWT_JWKS_URL could not be fetched: verifying with the keys fetched last/);
    // back up with a new set: the next fetch (after the cooldown) replaces the cached one
    jwks.state.failing = false;
    jwks.state.keys = [rsa.jwk];
    await jwks.up();
    await sleep(1100);
    const back = await token(rsa);
    assert.equal((await status(back)).status, 200, 'back up: the published key verifies again');
    assert.equal((await status(t)).status, 401, 'and the key it no longer publishes is refused');
  });
});

describe('api jwt (JWT_JWKS_URL never reachable)', () => {
  it('answers a token with 503 (retry), not 401, when no key was ever fetched; anonymous requests are served', async () => {
    const port = await freePort(); // nothing listens there
    const api = await startApi({ JWT_JWKS_URL: `http://127.0.0.1:${port}/jwks.json` });
    try {
      const rsa = await key('RS256', 'k');
      const r = await gql(api.url, '{ __typename }', { token: await token(rsa) });
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.equal(r.body.errors![0].extensions!.code, 'JWKS_UNAVAILABLE');
      assert.equal((await gql(api.url, '{ __typename }')).status, 200);
    } finally {
      await stop(api);
    }
  });
});

describe('api jwt algorithms and JWKS URL configuration', () => {
  async function configErrors(env: Record<string, string>): Promise<string> {
    const p = startServer({ PORT: '0', ...env });
    const code = await p.exited;
    assert.equal(code, 2, `exit 2 on invalid configuration, got ${code}: ${p.output()}`);
    return p.output();
  }

  it('refuses "none", HS* without a secret, asymmetric algorithms with a secret, and a JWKS URL fetched in the clear', async () => {
    let out = await configErrors({ JWT_JWKS_URL: 'https://idp.example.com/.well-known/jwks.json', JWT_ALGORITHMS: 'RS256,none,HS256,XY999' });
    assert.match(out, /JWT_ALGORITHMS: "none" is never accepted/);
    assert.match(out, /JWT_ALGORITHMS: HS256 needs a shared secret \(JWT_SECRET\)/);
    assert.match(out, /JWT_ALGORITHMS: "XY999" is not a JWS algorithm/);
    out = await configErrors({ JWT_SECRET: 'x'.repeat(40), JWT_ALGORITHMS: 'RS256' });
    assert.match(out, /JWT_ALGORITHMS: RS256 needs a public key or a JWKS/);
    out = await configErrors({ JWT_JWKS_URL: 'http://idp.example.com/jwks.json', JWT_JWKS_COOLDOWN_S: '-1' });
    assert.match(out, /JWT_JWKS_URL must be an https:\/\/ URL \(http:\/\/ only on a loopback address/);
    out = await configErrors({ JWT_JWKS_URL: 'https://idp.example.com/jwks.json', JWT_SECRET: 'x'.repeat(40) });
    assert.match(out, /set only one of JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_FILE, JWT_JWKS_URL; got JWT_SECRET and JWT_JWKS_URL/);
    out = await configErrors({ JWT_JWKS_URL: 'https://idp.example.com/jwks.json', JWT_JWKS_COOLDOWN_S: 'soon' });
    assert.match(out, /JWT_JWKS_COOLDOWN_S must be a whole number from 0 to 3600, got "soon"/);
  });
});
