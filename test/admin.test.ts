// The admin page in a real browser: Debian's Chromium driven by playwright-core against a real API.
// An admin signs in through the development sign-in and sees their organisation's audit log (filtered,
// paginated), and not another organisation's rows; the platform health panels only as an operator; a
// member sees why they are denied. Screenshots go to test/artifacts/ (git-ignored).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT } from '../scripts/lib/config.ts';
import { ensureChromium } from '../scripts/lib/tools.ts';
import { EXAMPLE_LOGINS, mintLoginToken } from '../example/admin/example_users.ts';
import { cfg, startApi, startServer, stop, withClient, type Proc } from './helpers.ts';
import { TEST_JWT_SECRET } from './tokens.ts';

const RUN = randomUUID().slice(0, 8);
const ARTIFACTS = path.join(ROOT, 'test', 'artifacts');
const [ADA, MAX, GIA] = EXAMPLE_LOGINS; // admin of Acme, member of Acme, admin of Globex
const CREATE_FUND = 'mutation ($org: UUID!, $name: String!) { createFund(input: { fund: { orgId: $org, name: $name } }) { fund { rowId } } }';

const q = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  withClient(cfg.rootUrl, async (c) => (await c.query<T>(sql, params)).rows);

describe('admin page', () => {
  let api: Proc & { url: string };
  let browser: Browser;
  let createdInAcme = '';

  async function createFundAs(login: typeof ADA, name: string): Promise<string> {
    const token = await mintLoginToken(login, { secret: TEST_JWT_SECRET, issuer: null, audience: null, ttlSeconds: 300 });
    const r = await fetch(`${api.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: CREATE_FUND, variables: { org: login.orgId, name } }),
    });
    const body = await r.json() as { errors?: unknown[] };
    assert.equal(r.status, 200, JSON.stringify(body));
    assert.equal(body.errors, undefined, JSON.stringify(body));
    return r.headers.get('x-request-id')!;
  }

  async function open(): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (e) => assert.fail(`the page threw: ${e.message}`));
    await page.goto(`${api.url}/admin`);
    return page;
  }

  async function signInAs(page: Page, login: typeof ADA): Promise<void> {
    await page.getByRole('button', { name: `Sign in as ${login.userName}` }).click();
  }

  before(async () => {
    const executablePath = await ensureChromium();
    const seeded = await q<{ user_id: string; org_id: string; role: string }>('select user_id, org_id, role from app_private.seed_example_data()');
    assert.deepEqual(seeded.map((s) => `${s.user_id} ${s.org_id} ${s.role}`).sort(),
      EXAMPLE_LOGINS.map((l) => `${l.userId} ${l.orgId} ${l.role}`).sort(), 'the SQL seed and example/admin/example_users.ts agree');
    api = await startApi({ JWT_SECRET: TEST_JWT_SECRET, ADMIN_DEV_TOKENS: 'on' });
    // 12 changes in Acme (more than a page of 10), one in Globex
    for (let i = 1; i <= 12; i++) createdInAcme = await createFundAs(ADA, `Acme ${RUN} #${i}`);
    await createFundAs(GIA, `Globex ${RUN}`);
    browser = await chromium.launch({ executablePath, headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'] });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    if (api) await stop(api);
    await q(`delete from app_public.funds where name like $1`, [`%${RUN}%`]);
  });

  it('an admin signs in with a development token and sees their organisation\'s audit log and health, not another organisation\'s', async () => {
    const page = await open();
    await signInAs(page, ADA);
    await page.locator('#audit-table tbody tr[data-id]').first().waitFor();
    assert.match(await page.locator('#whoami').textContent() ?? '', new RegExp(`${ADA.userId} · admin · org ${ADA.orgId}`));
    const text = await page.locator('#audit-table').textContent() ?? '';
    assert.match(text, new RegExp(`Acme ${RUN} #12`), 'the newest Acme change is on the first page');
    assert.doesNotMatch(text, new RegExp(`Globex ${RUN}`), 'Globex\'s change is not shown to Acme\'s admin');
    assert.match(text, /Ada \(admin, Acme\)/, 'the actor is named');
    // an org admin who is no operator gets no platform-wide panels, and the page says who does
    assert.equal(await page.locator('#health-panels').isVisible(), false, 'no platform panels for a tenant admin');
    assert.match(await page.locator('#health-operators-only').textContent() ?? '', /shown to platform operators only/);
    assert.deepEqual(await page.locator('#audit-filters select[name=tableName] option').allTextContents(),
      ['any', 'app_public.funds', 'app_public.memberships']);
    await page.screenshot({ path: path.join(ARTIFACTS, 'admin-audit-log.png'), fullPage: true });
    await page.close();
  });

  it('a platform operator (operator claim and a row in app_private.operators) sees the platform health panels', async () => {
    await q('insert into app_private.operators (user_id) values ($1) on conflict do nothing', [ADA.userId]);
    try {
      const token = await mintLoginToken(ADA, { secret: TEST_JWT_SECRET, issuer: null, audience: null, ttlSeconds: 300, extraClaims: { operator: true } });
      const page = await open();
      await page.locator('#token').fill(token);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.locator('#health-panels').waitFor({ state: 'visible' });
      assert.ok(await page.locator('#panel-cleanup tbody tr').count() >= 5, 'the cleanup panel lists the policies');
      assert.match(await page.locator('#panel-invalidation').textContent() ?? '', /dead letters/);
      assert.equal(await page.locator('#health-operators-only').isVisible(), false);
      await page.screenshot({ path: path.join(ARTIFACTS, 'admin-operator-health.png'), fullPage: true });
      await page.close();
    } finally {
      await q('delete from app_private.operators where user_id = $1', [ADA.userId]);
    }
  });

  it('filters by request id and table, and pages through the log', async () => {
    const page = await open(); // the token stays in this tab's sessionStorage only: a new page signs in again
    await signInAs(page, ADA);
    await page.locator('#audit-table tbody tr[data-id]').first().waitFor();

    await page.locator('#audit-filters input[name=requestId]').fill(createdInAcme);
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForFunction(() => document.querySelectorAll('#audit-table tbody tr[data-id]').length === 1);
    assert.match(await page.locator('#audit-table tbody').textContent() ?? '', new RegExp(`Acme ${RUN} #12`));
    assert.match(await page.locator('#audit-page').textContent() ?? '', /^page 1 · entries 1–1$/);

    await page.locator('#audit-filters input[name=requestId]').fill('');
    await page.locator('#audit-filters select[name=tableName]').selectOption('app_public.funds');
    await page.locator('#audit-filters select[name=first]').selectOption('10');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForFunction(() => /^page 1 · entries 1–10 · more$/.test(document.querySelector('#audit-page')?.textContent ?? '')
      && document.querySelectorAll('#audit-table tbody tr[data-id]').length === 10);
    const firstPage = await page.locator('#audit-table tbody tr[data-id]').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-id'))));
    await page.getByRole('button', { name: 'Next' }).click();
    await page.waitForFunction(() => /^page 2 · entries 11–/.test(document.querySelector('#audit-page')?.textContent ?? ''));
    const secondPage = await page.locator('#audit-table tbody tr[data-id]').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-id'))));
    assert.ok(secondPage.length > 0 && Math.max(...secondPage) < Math.min(...firstPage), `page 2 (${secondPage}) is older than page 1 (${firstPage})`);
    assert.match(await page.locator('#audit-table tbody').textContent() ?? '', new RegExp(`Acme ${RUN} #2\\b`), 'the older changes are on page 2');
    await page.getByRole('button', { name: 'Previous' }).click();
    await page.waitForFunction(() => /^page 1 · entries 1–10/.test(document.querySelector('#audit-page')?.textContent ?? ''));
    await page.close();
  });

  it('a member sees why they are denied, not an empty table', async () => {
    const page = await open();
    await signInAs(page, MAX);
    await page.locator('#denied').waitFor({ state: 'visible' });
    assert.match(await page.locator('#denied-message').textContent() ?? '', /only an administrator/);
    assert.match(await page.locator('#denied-hint').textContent() ?? '', /Your role in this organisation does not allow this/);
    assert.equal(await page.locator('#audit').isVisible(), false, 'no audit table');
    assert.equal(await page.locator('#health').isVisible(), false, 'no health panels');
    await page.screenshot({ path: path.join(ARTIFACTS, 'admin-member-denied.png'), fullPage: true });
    // and back to the sign-in page
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#sign-in').waitFor({ state: 'visible' });
    await page.close();
  });

  it('a pasted token that is not a JWT is refused on the page', async () => {
    const page = await open();
    await page.locator('#token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.locator('#token-error').waitFor({ state: 'visible' });
    assert.match(await page.locator('#token-error').textContent() ?? '', /not a JWT/);
    await page.close();
  });
});

describe('admin page configuration', () => {
  it('serves the page with a strict CSP, and no development tokens unless ADMIN_DEV_TOKENS=on', async () => {
    const api = await startApi({ JWT_SECRET: TEST_JWT_SECRET });
    try {
      const page = await fetch(`${api.url}/admin`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/);
      assert.match(await page.text(), /<title>ballast admin<\/title>/);
      const tokens = await fetch(`${api.url}/admin/dev-tokens`);
      assert.equal(tokens.status, 404);
      assert.match(await tokens.text(), /ADMIN_DEV_TOKENS=on/);
      assert.equal((await fetch(`${api.url}/admin/nope.js`)).status, 404);
      assert.equal((await fetch(`${api.url}/admin`, { method: 'POST' })).status, 405);
    } finally {
      await stop(api);
    }
  });

  it('refuses ADMIN_DEV_TOKENS=on in production and without an HS256 key', async () => {
    for (const [env, pattern] of [
      [{ GRAPHILE_ENV: 'production', JWT_SECRET: TEST_JWT_SECRET }, /ADMIN_DEV_TOKENS=on is refused with GRAPHILE_ENV=production/],
      [{ GRAPHILE_ENV: 'test', JWT_SECRET: '' }, /ADMIN_DEV_TOKENS=on needs an HS256 key/],
    ] as const) {
      const p = startServer({ PORT: '0', ADMIN_DEV_TOKENS: 'on', ...env });
      assert.equal(await p.exited, 2, p.output());
      assert.match(p.output(), pattern);
    }
  });
});
