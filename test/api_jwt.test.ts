// JWT → role and claims, for real: what the database sees (current_user, request.jwt.claims) comes from
// a fixture function; a token that is sent but bad is a 401 with a clear GraphQL error, never anonymous.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { startApi, stop } from './helpers.ts';
import { createApiFixtures, dropApiFixtures, gql } from './api_fixtures.ts';
import { TEST_JWT_SECRET, mintToken } from './tokens.ts';

type WhoAmI = { role: string; claims: string; requestId: string };
const WHOAMI = '{ ballastTestWhoami }';

async function whoami(url: string, token?: string, headers: Record<string, string> = {}) {
  const r = await gql(url, WHOAMI, { token, headers });
  return { ...r, who: r.body.data?.ballastTestWhoami as WhoAmI | undefined };
}

function assert401(r: Awaited<ReturnType<typeof whoami>>, message: RegExp): void {
  assert.equal(r.status, 401, JSON.stringify(r.body));
  assert.equal(r.body.data, undefined, 'nothing ran');
  assert.equal(r.body.errors![0].extensions!.code, 'UNAUTHENTICATED');
  assert.match(r.body.errors![0].message, message);
  assert.match(r.headers.get('www-authenticate')!, /^Bearer error="invalid_token"/);
}

describe('api jwt (HS256)', () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  before(async () => {
    await createApiFixtures();
    api = await startApi({ JWT_SECRET: TEST_JWT_SECRET });
  });
  after(async () => {
    await stop(api);
    await dropApiFixtures();
  });

  it('runs a request without Authorization as ballast_anonymous with no claims', async () => {
    const r = await whoami(api.url);
    assert.equal(r.status, 200);
    assert.deepEqual({ role: r.who!.role, claims: r.who!.claims }, { role: 'ballast_anonymous', claims: '' });
  });

  it('maps role member to ballast_member and puts the claims in request.jwt.claims', async () => {
    const sub = randomUUID();
    const orgId = randomUUID();
    const r = await whoami(api.url, await mintToken({ sub, org_id: orgId, role: 'member' }));
    assert.equal(r.status, 200);
    assert.equal(r.who!.role, 'ballast_member');
    const claims = JSON.parse(r.who!.claims) as Record<string, unknown>;
    assert.equal(claims.sub, sub);
    assert.equal(claims.org_id, orgId);
    assert.equal(claims.role, 'member');
  });

  it('maps role admin to ballast_admin', async () => {
    const r = await whoami(api.url, await mintToken({ role: 'admin' }));
    assert.equal(r.who!.role, 'ballast_admin');
  });

  it('answers a repeated token the same way (verified-token cache)', async () => {
    const token = await mintToken({ role: 'admin' });
    for (let i = 0; i < 3; i++) assert.equal((await whoami(api.url, token)).who!.role, 'ballast_admin');
  });

  it('refuses an expired token with 401, saying when it expired', async () => {
    assert401(await whoami(api.url, await mintToken({}, { expiresInS: -60 })), /invalid token: token expired at \d{4}-\d\d-\d\dT/);
  });

  it('refuses a token signed with another secret', async () => {
    assert401(await whoami(api.url, await mintToken({}, { secret: 'another-secret-that-is-long-enough-0123456789' })), /signature does not verify/);
  });

  it('refuses tokens whose claims break the contract', async () => {
    assert401(await whoami(api.url, await mintToken({ role: 'owner' })), /claim "role" must be "member" or "admin", got "owner"/);
    assert401(await whoami(api.url, await mintToken({}, { omit: ['role'] })), /claim "role" must be "member" or "admin", got null/);
    assert401(await whoami(api.url, await mintToken({}, { omit: ['org_id'] })), /claim "org_id" must be an organization uuid/);
    assert401(await whoami(api.url, await mintToken({ sub: 'alice' })), /claim "sub" must be a user uuid, got "alice"/);
    assert401(await whoami(api.url, await mintToken({}, { omit: ['exp'] })), /claim "exp" is missing/);
  });

  it('refuses a malformed or non-Bearer Authorization header, never falling back to anonymous', async () => {
    assert401(await whoami(api.url, undefined, { authorization: 'Basic dXNlcjpwYXNz' }), /Authorization header must be "Bearer <token>"/);
    assert401(await whoami(api.url, undefined, { authorization: 'Bearer not.a.jwt' }), /token is malformed/);
    assert401(await whoami(api.url, undefined, { authorization: '' }), /Authorization header must be "Bearer <token>"/);
  });
});

describe('api jwt (RS256)', () => {
  let dir: string;
  let keys: Awaited<ReturnType<typeof generateKeyPair>>;
  const apis: Awaited<ReturnType<typeof startApi>>[] = [];
  before(async () => {
    await createApiFixtures();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ballast-jwt-'));
    keys = await generateKeyPair('RS256', { extractable: true });
    fs.writeFileSync(path.join(dir, 'public.pem'), await exportSPKI(keys.publicKey));
    fs.writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] }));
  });
  after(async () => {
    for (const a of apis) await stop(a);
    await dropApiFixtures();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('verifies with a PEM public key file, with issuer and audience enforced', async () => {
    const api = await startApi({ JWT_PUBLIC_KEY_FILE: path.join(dir, 'public.pem'), JWT_ISSUER: 'https://auth.example.com', JWT_AUDIENCE: 'ballast' });
    apis.push(api);
    const good = await mintToken({ role: 'member', iss: 'https://auth.example.com', aud: 'ballast' }, { key: keys.privateKey, alg: 'RS256' });
    assert.equal((await whoami(api.url, good)).who!.role, 'ballast_member');
    assert401(await whoami(api.url, await mintToken({ iss: 'https://evil.example.com', aud: 'ballast' }, { key: keys.privateKey, alg: 'RS256' })), /claim "iss"/);
    assert401(await whoami(api.url, await mintToken({ iss: 'https://auth.example.com' }, { key: keys.privateKey, alg: 'RS256' })), /claim "aud"/);
    // an HS256 token "signed" with the public key must not pass (algorithm confusion)
    assert401(await whoami(api.url, await mintToken({ iss: 'https://auth.example.com', aud: 'ballast' })), /algorithm is not allowed/);
  });

  it('verifies with a JWKS file, choosing the key by kid', async () => {
    const api = await startApi({ JWT_JWKS_FILE: path.join(dir, 'jwks.json') });
    apis.push(api);
    assert.equal((await whoami(api.url, await mintToken({ role: 'admin' }, { key: keys.privateKey, alg: 'RS256', kid: 'k1' }))).who!.role, 'ballast_admin');
    assert401(await whoami(api.url, await mintToken({}, { key: keys.privateKey, alg: 'RS256', kid: 'unknown' })), /no key in JWT_JWKS_FILE matches/);
  });
});

describe('api jwt (no key configured)', () => {
  it('serves anonymous requests and refuses any token with 401', async () => {
    const api = await startApi();
    try {
      const r = await gql(api.url, '{ __typename }', { token: await mintToken() });
      assert.equal(r.status, 401);
      assert.match(r.body.errors![0].message, /this server accepts no tokens/);
      assert.equal((await gql(api.url, '{ __typename }')).status, 200);
    } finally {
      await stop(api);
    }
  });
});
