// JWT → role and claims, for real: what the database sees (current_user, request.jwt.claims, and what
// the kit's claim helpers read from them) comes from fixture functions; a token that is sent but bad is a
// 401 with a clear GraphQL error, never anonymous. Claim names and the role mapping are configurable
// (JWT_ORG_CLAIM, JWT_ROLE_CLAIM, JWT_ROLE_MAP, DB_ANONYMOUS_ROLE; the database's org_claim and role_claim).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { cfg, startApi, stop, withClient } from './helpers.ts';
import { createApiFixtures, dropApiFixtures, gql } from './api_fixtures.ts';
import { TEST_JWT_SECRET, mintToken } from './tokens.ts';

type WhoAmI = { role: string; claims: string; requestId: string };
const WHOAMI = '{ ballastTestWhoami }';

async function whoami(url: string, token?: string, headers: Record<string, string> = {}) {
  const r = await gql(url, WHOAMI, { token, headers });
  return { ...r, who: r.body.data?.ballastTestWhoami as WhoAmI | undefined };
}

/** What the kit's claim helpers return inside the request's transaction. */
type Session = { subject: string | null; userId: string | null; orgId: string | null; appRole: string | null; role: string };
const SESSION = '{ ballastTestSession }';

async function session(url: string, token?: string): Promise<Session> {
  const r = await gql(url, SESSION, { token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.data?.ballastTestSession as Session;
}

// Created before an API starts (PostGraphile exposes it), dropped after. Executable by every visitor role,
// and by the roles of "yours" below through their membership in the kit's roles.
async function createSessionFixture(): Promise<void> {
  await withClient(cfg.rootUrl, (c) => c.query(`
    create or replace function app_public.ballast_test_session() returns json as $$
      select json_build_object('subject', ballast.current_subject(), 'userId', ballast.current_user_id(),
                               'orgId', ballast.current_org_id(), 'appRole', ballast.current_app_role(), 'role', current_user)
    $$ language sql stable;
    grant execute on function app_public.ballast_test_session() to ballast_anonymous, ballast_member, ballast_admin;
  `));
}

async function dropSessionFixture(): Promise<void> {
  await withClient(cfg.rootUrl, (c) => c.query('drop function if exists app_public.ballast_test_session()'));
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
    await createSessionFixture();
    api = await startApi({ JWT_SECRET: TEST_JWT_SECRET });
  });
  after(async () => {
    await stop(api);
    await dropSessionFixture();
    await dropApiFixtures();
  });

  it('accepts a subject that is not a uuid, as identity providers issue them', async () => {
    const orgId = randomUUID();
    for (const sub of ['auth0|123', 'user_2abcDEF']) {
      const s = await session(api.url, await mintToken({ sub, org_id: orgId, role: 'member' }));
      assert.deepEqual(s, { subject: sub, userId: null, orgId, appRole: 'member', role: 'ballast_member' }, sub);
    }
    const sub = randomUUID();
    assert.equal((await session(api.url, await mintToken({ sub }))).userId, sub, 'a uuid subject is the user id too');
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
    assert401(await whoami(api.url, await mintToken({ sub: '' })), /claim "sub" must be the subject's id, a string of 1 to 128 characters, got ""/);
    assert401(await whoami(api.url, await mintToken({ sub: 'x'.repeat(129) })), /claim "sub" must be the subject's id, a string of 1 to 128 characters/);
    assert401(await whoami(api.url, await mintToken({ role: ['member'] })), /claim "role" must be "member" or "admin", got \["member"\]/);
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
    assert401(await whoami(api.url, await mintToken({}, { key: keys.privateKey, alg: 'RS256', kid: 'unknown' })), /no key in JWT_JWKS_FILE matches the token/);
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

describe('api jwt (claim names and roles configured)', () => {
  // An identity provider with namespaced claims (Auth0 style) and an application with roles of its own,
  // each granted the kit's role it stands for (as grant ballast_member to authenticated would).
  const ORG = 'https://example.com/org_id';
  const ROLE = 'https://example.com/role';
  let api: Awaited<ReturnType<typeof startApi>>;
  const sql = (text: string) => withClient(cfg.rootUrl, (c) => c.query(text));

  before(async () => {
    await createApiFixtures();
    await createSessionFixture();
    await sql(`
      drop role if exists ballast_test_authenticated;
      drop role if exists ballast_test_anon;
      create role ballast_test_authenticated nologin;
      create role ballast_test_anon nologin;
      grant ballast_member to ballast_test_authenticated;
      grant ballast_anonymous to ballast_test_anon;
      grant ballast_test_authenticated, ballast_test_anon to ballast_authenticator;
      select ballast.configure('org_claim', '"${ORG}"'), ballast.configure('role_claim', '"${ROLE}"');
    `);
    api = await startApi({
      JWT_SECRET: TEST_JWT_SECRET, JWT_ORG_CLAIM: ORG, JWT_ROLE_CLAIM: ROLE,
      JWT_ROLE_MAP: 'member=ballast_test_authenticated, admin=ballast_admin', DB_ANONYMOUS_ROLE: 'ballast_test_anon',
    });
  });
  after(async () => {
    await stop(api);
    await sql(`
      select ballast.configure('org_claim', null), ballast.configure('role_claim', null);
      drop role if exists ballast_test_authenticated;
      drop role if exists ballast_test_anon;
    `);
    await dropSessionFixture();
    await dropApiFixtures();
  });

  it('reads the organisation and the role from the configured claims, in the API and in the database', async () => {
    const orgId = randomUUID();
    const token = await mintToken({ sub: 'auth0|123', [ORG]: orgId, [ROLE]: 'member' }, { omit: ['org_id', 'role'] });
    assert.deepEqual(await session(api.url, token),
      { subject: 'auth0|123', userId: null, orgId, appRole: 'member', role: 'ballast_test_authenticated' });
    const admin = await mintToken({ [ORG]: orgId, [ROLE]: 'admin' }, { omit: ['org_id', 'role'] });
    assert.equal((await session(api.url, admin)).role, 'ballast_admin');
  });

  it('ignores the default claim names: a token with only org_id and role is refused', async () => {
    assert401(await whoami(api.url, await mintToken({ role: 'admin' })), /claim "https:\/\/example\.com\/org_id" must be an organization uuid, got null/);
    assert401(await whoami(api.url, await mintToken({ [ORG]: randomUUID() }, { omit: ['role'] })), /claim "https:\/\/example\.com\/role" must be "member" or "admin", got null/);
  });

  it('runs a request without a token as the configured anonymous role', async () => {
    const s = await session(api.url);
    assert.deepEqual(s, { subject: null, userId: null, orgId: null, appRole: null, role: 'ballast_test_anon' });
  });

  it('maps only the roles JWT_ROLE_MAP lists', async () => {
    const only = await startApi({ JWT_SECRET: TEST_JWT_SECRET, JWT_ORG_CLAIM: ORG, JWT_ROLE_CLAIM: ROLE, JWT_ROLE_MAP: 'member=ballast_member' });
    try {
      assert401(await whoami(only.url, await mintToken({ [ORG]: randomUUID(), [ROLE]: 'admin' })), /claim "https:\/\/example\.com\/role" must be "member", got "admin"/);
      assert.equal((await whoami(only.url, await mintToken({ [ORG]: randomUUID(), [ROLE]: 'member' }))).who!.role, 'ballast_member');
    } finally {
      await stop(only);
    }
  });
});
