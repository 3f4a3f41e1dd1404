// The API's configuration is validated as a whole at startup: every problem is reported at once
// (exit 2, nothing listens), a malformed CORS origin names itself, secrets have a minimum length.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer } from './helpers.ts';

async function configErrors(env: Record<string, string>): Promise<string> {
  const p = startServer({ PORT: '0', ...env });
  const code = await p.exited;
  assert.equal(code, 2, `exit 2 on invalid configuration, got ${code}: ${p.output()}`);
  assert.doesNotMatch(p.output(), /api listening/);
  return p.output();
}

describe('api configuration', () => {
  it('reports every problem at once', async () => {
    const out = await configErrors({
      PORT: 'eighty',
      LOG_LEVEL: 'loud',
      DB_POOL_MAX: '0',
      DB_STATEMENT_TIMEOUT_MS: '-5',
      JWT_SECRET: 'too-short',
      CORS_ORIGINS: 'https://ok.example.com, ftp://files.example.com',
      RATE_LIMIT_QUERY: 'fast',
      REQUEST_TRACING: 'maybe',
      PROBE_LOG_SAMPLE_RATE: '2',
      ERROR_REPORT_URL: 'mailto:ops@example.com',
    });
    assert.match(out, /invalid configuration \(10 problems\)/);
    assert.match(out, /PORT must be a whole number from 0 to 65535, got "eighty"/);
    assert.match(out, /LOG_LEVEL must be one of .*, got "loud"/);
    assert.match(out, /DB_POOL_MAX must be a whole number from 1 to 1000, got "0"/);
    assert.match(out, /DB_STATEMENT_TIMEOUT_MS must be a whole number from 0 to 3600000, got "-5"/);
    assert.match(out, /JWT_SECRET must be at least 32 characters, got 9/);
    assert.match(out, /CORS_ORIGINS: "ftp:\/\/files\.example\.com" has scheme ftp: expected http or https/);
    assert.match(out, /RATE_LIMIT_QUERY must be "<capacity>:<refill per second>" .* got "fast"/);
    assert.match(out, /REQUEST_TRACING must be on or off, got "maybe"/);
    assert.match(out, /PROBE_LOG_SAMPLE_RATE must be a number from 0 to 1, got "2"/);
    assert.match(out, /ERROR_REPORT_URL must be an http:\/\/ or https:\/\/ URL, got "mailto:ops@example.com"/);
    assert.doesNotMatch(out, /too-short/, 'a secret is never echoed');
  });

  it('checks the hardening settings: trusted proxies, allowed hosts, readiness cache, hint cap, page sizes', async () => {
    let out = await configErrors({ TRUST_PROXY_HOPS: '1', HEALTH_READY_CACHE_MS: '-1', ALLOWED_HOSTS: 'api.example.com, https://api.example.com', WHY_DENIED_MAX_QUERIES: '1000' });
    assert.match(out, /ALLOWED_HOSTS: "https:\/\/api\.example\.com" is not a host name or IP address/);
    assert.match(await configErrors({ ALLOWED_HOSTS: '*, api.example.com' }), /ALLOWED_HOSTS: "\*" \(any host\) must be alone/);
    assert.match(out, /WHY_DENIED_MAX_QUERIES must be a whole number from 0 to 100, got "1000"/);
    assert.match(out, /TRUST_PROXY_HOPS is 1, so TRUSTED_PROXIES must list your proxies' addresses or CIDRs/);
    assert.match(out, /HEALTH_READY_CACHE_MS must be a whole number from 0 to 60000, got "-1"/);
    out = await configErrors({ GRAPHQL_DEFAULT_PAGE_SIZE: '500', GRAPHQL_MAX_PAGE_SIZE: '200', GRAPHQL_INTROSPECTION: 'sometimes' });
    assert.match(out, /GRAPHQL_DEFAULT_PAGE_SIZE \(500\) must be at most GRAPHQL_MAX_PAGE_SIZE \(200\)/);
    assert.match(out, /GRAPHQL_INTROSPECTION must be on or off, got "sometimes"/);
    out = await configErrors({ TRUST_PROXY_HOPS: '1', TRUSTED_PROXIES: '10.0.0.0/8, 10.0.0.0/33, proxy.internal' });
    assert.match(out, /TRUSTED_PROXIES: "10\.0\.0\.0\/33" is not an IP address or CIDR/);
    assert.match(out, /TRUSTED_PROXIES: "proxy\.internal" is not an IP address or CIDR/);
  });

  it('fails fast on a malformed CORS origin, naming it', async () => {
    for (const [origin, why] of [
      ['https://app.example.com/', /"https:\/\/app\.example\.com\/" ends with "\/"/],
      ['https://app.example.com/login', /"https:\/\/app\.example\.com\/login" has a path, query or fragment/],
      ['app.example.com', /"app\.example\.com" is not an origin: expected scheme:\/\/host\[:port\]/],
      ['*', /"\*" is not allowed: list each origin/],
      ['HTTPS://App.Example.com', /"HTTPS:\/\/App\.Example\.com" is not in canonical form \(browsers send "https:\/\/app\.example\.com"\)/],
    ] as const) {
      const out = await configErrors({ CORS_ORIGINS: `https://fine.example.com,${origin}` });
      assert.match(out, why, origin);
    }
  });

  it('checks the claim names and the role mapping', async () => {
    let out = await configErrors({
      JWT_ORG_CLAIM: 'sub',
      JWT_ROLE_CLAIM: 'x'.repeat(201),
      JWT_ROLE_MAP: 'owner=ballast_admin, member=ballast_owner, admin',
      DB_ANONYMOUS_ROLE: 'anon; drop table x',
    });
    assert.match(out, /invalid configuration \(6 problems\)/);
    assert.match(out, /JWT_ORG_CLAIM must not be the registered claim "sub"/);
    assert.match(out, /JWT_ROLE_CLAIM must name a top-level claim of your tokens in 1 to 200 characters/);
    assert.match(out, /JWT_ROLE_MAP must be "<role claim>=<database role>" pairs for member and\/or admin, .*got "owner=ballast_admin"/);
    assert.match(out, /JWT_ROLE_MAP: "ballast_owner" must not serve visitors/);
    assert.match(out, /JWT_ROLE_MAP must be "<role claim>=<database role>" pairs .*got "admin"/);
    assert.match(out, /DB_ANONYMOUS_ROLE: "anon; drop table x" is not a database role name/);
    out = await configErrors({ JWT_ORG_CLAIM: 'https://example.com/claims', JWT_ROLE_CLAIM: 'https://example.com/claims', JWT_ROLE_MAP: 'member=a,member=b' });
    assert.match(out, /JWT_ORG_CLAIM and JWT_ROLE_CLAIM must name different claims, both are "https:\/\/example\.com\/claims"/);
    assert.match(out, /JWT_ROLE_MAP maps member twice/);
    out = await configErrors({ DB_ANONYMOUS_ROLE: 'ballast_worker_login' });
    assert.match(out, /DB_ANONYMOUS_ROLE: "ballast_worker_login" must not serve visitors/, 'nor the worker\'s login role');
  });

  it('checks the JWT key sources: one at most, files readable and of the right kind', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ballast-config-'));
    try {
      fs.writeFileSync(path.join(dir, 'not-a-key.pem'), 'hello');
      fs.writeFileSync(path.join(dir, 'jwks.json'), '{"keys": []}');
      let out = await configErrors({ JWT_SECRET: 'x'.repeat(40), JWT_PUBLIC_KEY_FILE: path.join(dir, 'not-a-key.pem') });
      assert.match(out, /set only one of JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_FILE, JWT_JWKS_URL; got JWT_SECRET and JWT_PUBLIC_KEY_FILE/);
      out = await configErrors({ JWT_PUBLIC_KEY_FILE: path.join(dir, 'not-a-key.pem'), PORT: 'x' });
      assert.match(out, /JWT_PUBLIC_KEY_FILE: ".*not-a-key\.pem" is not a PEM public key/);
      assert.match(out, /PORT must be/);
      out = await configErrors({ JWT_JWKS_FILE: path.join(dir, 'jwks.json') });
      assert.match(out, /JWT_JWKS_FILE: ".*jwks\.json" must be \{"keys": \[\.\.\.\]\} with at least one key, each RSA, EC or OKP/);
      out = await configErrors({ JWT_JWKS_FILE: path.join(dir, 'missing.json') });
      assert.match(out, /JWT_JWKS_FILE: cannot read ".*missing\.json": ENOENT/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
