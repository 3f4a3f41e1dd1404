// Rate limiting shared by several API processes through PostgreSQL: four processes, one bucket, the
// limit holds (within 5%); 429 with Retry-After; classes (query, mutation) have their own buckets;
// anonymous clients are keyed by address, IPv6 by its /64.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { cfg, startApi, stop, withClient } from './helpers.ts';
import { createApiFixtures, dropApiFixtures, gql } from './api_fixtures.ts';
import { TEST_JWT_SECRET, mintToken } from './tokens.ts';
import { addressKey } from '../api/client_address.ts';

const CAPACITY = 200;

/** Runs `total` calls of fn with `concurrency` at a time; returns their results. */
async function pool<T>(total: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(total);
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

describe('api rate limiting', () => {
  const apis: Awaited<ReturnType<typeof startApi>>[] = [];
  const subs: string[] = [];
  before(async () => {
    await createApiFixtures();
    const env = {
      JWT_SECRET: TEST_JWT_SECRET,
      // the refill is tiny so the expected count does not depend on how long the test takes
      RATE_LIMIT_QUERY: `${CAPACITY}:0.001`,
      RATE_LIMIT_MUTATION: '3:0.001',
      TRUST_PROXY_HOPS: '1',
      TRUSTED_PROXIES: '127.0.0.0/8, ::1',
      DB_POOL_MAX: '8',
    };
    for (let i = 0; i < 4; i++) apis.push(await startApi(env));
  });
  after(async () => {
    for (const a of apis) await stop(a);
    await dropApiFixtures();
    await withClient(cfg.rootUrl, (c) => c.query(
      `delete from ballast.rate_limit_buckets where bucket like any($1)`,
      [[...subs.map((s) => `%:sub:${s}`), '%:ip:2001:db8:%']]));
  });

  it('holds one limit across 4 API processes sharing the database (within 5%)', async () => {
    const sub = randomUUID();
    subs.push(sub);
    const token = await mintToken({ sub, role: 'member' });
    const total = CAPACITY * 3;
    const results = await pool(total, 32, (i) => gql(apis[i % 4].url, '{ __typename }', { token }));
    const allowed = results.filter((r) => r.status === 200).length;
    const refused = results.filter((r) => r.status === 429);
    assert.equal(allowed + refused.length, total, `only 200 and 429: ${[...new Set(results.map((r) => r.status))].join(',')}`);
    assert.ok(Math.abs(allowed - CAPACITY) <= CAPACITY * 0.05, `allowed ${allowed} of ${total}; the limit is ${CAPACITY}`);
    for (let i = 0; i < 4; i++) assert.ok(results.some((r, j) => j % 4 === i && r.status === 200), `process ${i} served some`);
    const r = refused[0];
    assert.ok(Number(r.headers.get('retry-after')) >= 1, 'Retry-After in seconds');
    assert.equal(r.body.errors![0].extensions!.code, 'RATE_LIMITED');
    assert.match(r.body.errors![0].message, /too many query operations: the limit is a burst of 200/);
    const row = await withClient(cfg.rootUrl, async (c) => (await c.query<{ tokens: number }>(
      'select tokens from ballast.rate_limit_buckets where bucket = $1', [`query:sub:${sub}`])).rows[0]);
    assert.ok(row.tokens < 1, 'the shared bucket is empty');
  });

  it('reserves tokens in batches for a busy subject: far fewer round trips than requests, none allowed beyond the bucket', async () => {
    const sub = randomUUID();
    subs.push(sub);
    const token = await mintToken({ sub, role: 'member' });
    const takes = async () => Number(/^ballast_rate_limit_db_takes_total (\d+)/m.exec(await (await fetch(`${apis[0].url}/metrics`)).text())?.[1]);
    const before = await takes();
    const results = await pool(150, 32, () => gql(apis[0].url, '{ __typename }', { token }));
    const roundTrips = (await takes()) - before;
    assert.deepEqual([...new Set(results.map((r) => r.status))], [200], 'all 150 fit in the bucket of 200');
    assert.ok(roundTrips <= 150 / 5, `150 requests from 32 connections made ${roundTrips} round trips to the bucket (want ≤ 30)`);
    const row = await withClient(cfg.rootUrl, async (c) => (await c.query<{ tokens: number }>(
      'select tokens from ballast.rate_limit_buckets where bucket = $1', [`query:sub:${sub}`])).rows[0]);
    // taken from the shared bucket: the 150 used plus at most one reservation's unused rest (≤ 19 of a batch of 20)
    assert.ok(row.tokens <= CAPACITY - 150 + 0.5 && row.tokens >= CAPACITY - 150 - 19 - 0.5, `bucket has ${row.tokens} tokens left`);
  });

  it('keeps mutations in their own bucket with their own limit', async () => {
    const sub = randomUUID();
    subs.push(sub);
    const token = await mintToken({ sub, role: 'member' });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await gql(apis[i % 4].url, 'mutation { ballastTestTouch(input: {}) { result } }', { token })).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    assert.equal((await gql(apis[0].url, '{ __typename }', { token })).status, 200, 'queries are still allowed');
  });

  it('keys anonymous clients by address, IPv6 by its /64 (behind one trusted proxy)', async () => {
    const send = (xff: string) => gql(apis[0].url, 'mutation { ballastTestTouch(input: {}) { result } }', { headers: { 'x-forwarded-for': xff } });
    const sameNet = ['2001:db8:aa:bb::1', '2001:db8:aa:bb:ffff:ffff:ffff:fffe', '2001:0db8:00aa:00bb::42', '2001:db8:aa:bb::9'];
    const statuses = [];
    for (const a of sameNet) statuses.push((await send(`198.51.100.7, ${a}`)).status);
    assert.deepEqual(statuses, [200, 200, 200, 429], 'four addresses of one /64 share a bucket of 3');
    assert.equal((await send('2001:db8:aa:bc::1')).status, 200, 'the next /64 has its own bucket');
  });

  it('normalises client addresses', () => {
    assert.equal(addressKey('203.0.113.9'), '203.0.113.9');
    assert.equal(addressKey('::ffff:203.0.113.9'), '203.0.113.9');
    assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:DB8:0001:0002::'), '2001:db8:1:2::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  });
});
