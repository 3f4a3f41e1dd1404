// Idempotency keys on GraphQL mutations (draft-ietf-httpapi-idempotency-key-header), stored in PostgreSQL
// through ballast.idempotency_claim / _store (sql/idempotency.sql).
//
// A POST to /graphql whose operation is a mutation and that carries an Idempotency-Key header runs in ONE
// transaction, on one pooled client: the claim, every statement of the operation, and the stored response
// commit together.
//   BEGIN; claim (idempotency_claim: a transaction-scoped advisory lock on the key, waited for at most
//   IDEMPOTENCY_LOCK_WAIT_MS, then a lookup of a stored response; it writes nothing)
//     → started:     the operation runs on this client (api/preset.ts hands grafast a withPgClient whose
//                    every call is a savepoint in this transaction); its response is rendered, then stored
//                    (idempotency_store: one insert of the completed row) and COMMIT; only then is it sent,
//                    with Idempotency-Key echoed. A 5xx (or a failure to store) rolls everything back.
//     → replay:      the stored status and body, with Idempotent-Replayed: true
//     → in_progress: 409 with Retry-After (a key held by code of yours through idempotency_begin)
//     → mismatch:    422 (same key, different operation, variables or operation name)
//     → lock wait over (55P03): 409 with Retry-After; the holder's transaction is still open
// A crash before the COMMIT leaves nothing (the key is absent, its lock gone with the connection; a retry
// runs); after it, a stored response (a retry replays it). The key's primary key stays the final arbiter:
// if code of yours claimed it through idempotency_begin meanwhile, the store raises 40001, the work rolls
// back and the request is answered as a duplicate (replay, 409 or 422).
// A malformed key: 400. A mutation listed in IDEMPOTENCY_REQUIRED_MUTATIONS without a key: 400.
// Queries, with or without the header, and everything else pass through untouched and are not stored.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import pg from 'pg';
import { parse, print, Kind, type DocumentNode, type SelectionSetNode } from 'postgraphile/graphql';
import { addressKey, clientAddress, proxyTrust, type ProxyTrust } from '../client_address.ts';
import type { ApiConfig } from '../config.ts';
import { pgSettingsFor, state } from '../context.ts';
import { crashPoint } from '../crash_points.ts';
import { opening, requestTransaction } from '../idempotent_transaction.ts';
import { transactionSettings } from '../pool.ts';
import { sendJson } from '../health.ts';
import type { Middleware } from './compose.ts';

const GRAPHQL_PATH = '/graphql'; // api/preset.ts: grafserv.graphqlPath
const KEY = /^[\x20-\x7e]{1,255}$/; // the SQL side checks the same: 1-255 printable ASCII characters
const LOCK_NOT_AVAILABLE = '55P03';
const STORED_MEANWHILE = '40001'; // idempotency_store: another caller stored or claimed the key since our claim

type Options = Pick<ApiConfig, 'idempotencyRequiredMutations' | 'idempotencyLeaseSeconds' | 'idempotencyTtlSeconds'>
  & Partial<Pick<ApiConfig, 'idempotencyLockWaitMs' | 'trustProxyHops' | 'trustedProxies' | 'anonymousRole'
    | 'dbStatementTimeoutMs' | 'dbLockTimeoutMs' | 'dbIdleInTransactionTimeoutMs'>>;

export type Mutation = { document: DocumentNode; variables: unknown; operationName: string | null; fields: string[]; printed?: string };
type Begun = { outcome: 'started' | 'replay' | 'in_progress' | 'mismatch'; status_code: number | null; response_body: string | null; retry_after_seconds: number | null };

/** What a request with a key gets when it does not run the operation itself; absent: ask the database. */
type Answer =
  | { kind: 'replay'; status: number; body: string }
  | { kind: 'busy'; retryAfterSeconds: number }
  | { kind: 'mismatch' }
  | { kind: 'absent' };

export function idempotency(pool: pg.Pool, options: Options): Middleware {
  const required = new Set(options.idempotencyRequiredMutations);
  const ttl = `${options.idempotencyTtlSeconds} seconds`;
  const lockWaitMs = options.idempotencyLockWaitMs ?? 1000;
  const retryAfter = Math.max(1, Math.ceil(lockWaitMs / 1000));
  const trust = proxyTrust(options.trustProxyHops ?? 0, options.trustedProxies ?? []);
  const timeouts = transactionSettings({ dbStatementTimeoutMs: options.dbStatementTimeoutMs ?? 0,
    dbLockTimeoutMs: options.dbLockTimeoutMs ?? 0, dbIdleInTransactionTimeoutMs: options.dbIdleInTransactionTimeoutMs ?? 0 });
  const anonymousRole = options.anonymousRole ?? 'ballast_anonymous';

  // Single flight per key in this process. A burst of duplicates (a client retrying in a loop, a double
  // click times a thousand) would otherwise take one pooled connection each and wait on the holder's lock,
  // starving the pool. Duplicates of a request this process is claiming or running wait (at most the lock
  // wait) for its answer instead; the database stays the arbiter between processes.
  type Flight = { hash: string; answer: Promise<Answer> };
  const flights = new Map<string, Flight>();

  async function followOrLead(req: IncomingMessage, res: ServerResponse, next: () => Promise<void>, scope: string, key: string, hash: string): Promise<void> {
    const id = JSON.stringify([scope, key]);
    const deadline = Date.now() + lockWaitMs;
    for (let round = 0; round < 5; round++) {
      const ahead = flights.get(id);
      if (!ahead || ahead.hash !== hash) return lead(req, res, next, id, scope, key, hash);
      const a = await within(ahead.answer, deadline - Date.now());
      if (a === null) return answer(req, res, { kind: 'busy', retryAfterSeconds: retryAfter });
      if (a.kind !== 'absent') return answer(req, res, a);
      // the request ahead rolled back (5xx, crash of its statements): the next one in line runs it
    }
    return answer(req, res, { kind: 'busy', retryAfterSeconds: retryAfter });
  }

  async function lead(req: IncomingMessage, res: ServerResponse, next: () => Promise<void>, id: string, scope: string, key: string, hash: string): Promise<void> {
    let done!: (a: Answer) => void;
    const flight: Flight = { hash, answer: new Promise<Answer>((resolve) => { done = resolve; }) };
    flights.set(id, flight);
    const settle = (a: Answer) => {
      if (flights.get(id) === flight) flights.delete(id);
      done(a);
    };
    crashPoint('before-claim');
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      settle({ kind: 'absent' });
      throw err;
    }
    let begun: Begun;
    // The settings api/preset.ts gives the operation (the API's timeouts, the request's role, claims and id):
    // set in this same message, after the claim, which runs as the API's login role.
    const settings = { ...timeouts, ...pgSettingsFor(state(req), anonymousRole) };
    try {
      // One round trip: open the transaction, claim (a transaction-scoped advisory lock on the key, then a
      // lookup of a stored row: a duplicate whose holder has not committed waits on the lock at most the lock
      // wait), give the request's statements the usual lock wait, and set the operation's settings and first
      // savepoints (api/idempotent_transaction.ts). The claim writes nothing.
      const results = (await client.query(`begin; set local lock_timeout = ${lockWaitMs}; `
        + `select * from ballast.idempotency_claim(${lit(scope)}, ${lit(key)}, ${lit(hash)}); `
        + `set local lock_timeout to default; ${opening(settings)}`)) as unknown as pg.QueryResult<Begun>[];
      begun = results[2].rows[0];
    } catch (err) {
      await finish(client, 'rollback');
      if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE) {
        const busy: Answer = { kind: 'busy', retryAfterSeconds: retryAfter };
        settle(busy);
        return answer(req, res, busy);
      }
      settle({ kind: 'absent' });
      throw err;
    }
    if (begun.outcome !== 'started') {
      void finish(client, 'rollback'); // nothing was written; the answer need not wait for it
      const a: Answer = begun.outcome === 'replay' ? { kind: 'replay', status: begun.status_code ?? 200, body: begun.response_body ?? '' }
        : begun.outcome === 'mismatch' ? { kind: 'mismatch' }
          : { kind: 'busy', retryAfterSeconds: Math.max(1, begun.retry_after_seconds ?? 1) };
      settle(a);
      return answer(req, res, a);
    }

    crashPoint('after-claim');
    // We hold the key, inside our transaction. The operation runs on this client (api/idempotent_transaction.ts):
    // every withPgClient call is a savepoint in it (a failed mutation field rolls back to its savepoint, as
    // on its own transaction), with the request's role, claims and timeouts set as PostGraphile sets them.
    const s = state(req);
    const tx = requestTransaction(client, settings);
    s.withPgClient = tx.withPgClient;
    const log = s.log.child({ idempotencyKey: key });
    // The rendered response is stored, then committed, before the client sees a byte of it. Every path
    // ends the response (grafserv, the graphql middleware's 404/500, server.ts's catch), so every path
    // settles; if the process dies first, PostgreSQL rolls the transaction back when the connection drops.
    captureResponse(res, async (status, body) => {
      s.withPgClient = undefined;
      if (status >= 500 || s.dbError) {
        await finish(client, 'rollback');
        settle({ kind: 'absent' });
        return null;
      }
      crashPoint('after-statements');
      const text = body.toString('utf8');
      try {
        // One insert of the completed row, then COMMIT. The operation may have switched role: the store runs
        // as the API's login role again.
        await tx.send(`set local role none; select ballast.idempotency_store(${lit(scope)}, ${lit(key)}, ${lit(hash)}, ${status}, ${lit(text)}, ${lit(ttl)}::interval); commit`);
      } catch (err) {
        await finish(client, 'rollback');
        if ((err as { code?: string }).code === STORED_MEANWHILE) {
          // Someone stored or claimed the key since our claim (code of yours through idempotency_begin):
          // our work is rolled back; answer as a duplicate would (replay, 409 or 422).
          const a = await claimAgain(scope, key, hash).catch((): Answer => ({ kind: 'busy', retryAfterSeconds: retryAfter }));
          settle(a);
          if (a.kind === 'absent') return busyReplacement(retryAfter);
          return replacementFor(req, res, a);
        }
        // Nothing is applied (or, if the connection broke during COMMIT, the outcome is unknown: a retry
        // then replays or runs, exactly once either way). Never send a success that did not commit.
        log.error({ err, status }, 'could not store the idempotency result: the mutation was rolled back');
        settle({ kind: 'absent' });
        return { status: 503, headers: { 'content-type': 'application/json; charset=utf-8', 'retry-after': '1' },
          body: JSON.stringify({ errors: [{ message: 'the result of this request could not be stored, so it was rolled back: retry it with the same Idempotency-Key' }] }) };
      }
      client.release();
      crashPoint('after-commit');
      settle({ kind: 'replay', status, body: text });
      return null;
    });
    await next();
  }

  /** What a duplicate gets now (a claim in a transaction of its own, rolled back): after a lost store. */
  async function claimAgain(scope: string, key: string, hash: string): Promise<Answer> {
    const client = await pool.connect();
    let begun: Begun;
    try {
      const results = (await client.query(`begin; set local lock_timeout = ${lockWaitMs}; `
        + `select * from ballast.idempotency_claim(${lit(scope)}, ${lit(key)}, ${lit(hash)}); rollback`)) as unknown as pg.QueryResult<Begun>[];
      begun = results[2].rows[0];
      client.release();
    } catch (err) {
      await finish(client, 'rollback');
      if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE) return { kind: 'busy', retryAfterSeconds: retryAfter };
      throw err;
    }
    return begun.outcome === 'replay' ? { kind: 'replay', status: begun.status_code ?? 200, body: begun.response_body ?? '' }
      : begun.outcome === 'mismatch' ? { kind: 'mismatch' }
        : { kind: 'busy', retryAfterSeconds: Math.max(1, begun.retry_after_seconds ?? retryAfter) };
  }

  return async (req, res, next) => {
    if (req.method !== 'POST' || pathOf(req.url) !== GRAPHQL_PATH) return next();
    const headers = req.headersDistinct['idempotency-key'];
    if (!headers && required.size === 0) return next(); // the common case costs nothing

    // api/middleware/body.ts has read, size-checked and parsed the body (the stream is consumed).
    const parsedBody = state(req).graphql?.body;
    const mutation = parsedBody ? mutationOf(parsedBody) : null;
    if (!mutation) return next(); // a query, or something grafserv will reject itself

    if (!headers) {
      const needKey = mutation.fields.filter((f) => required.has(f));
      if (needKey.length === 0) return next();
      return sendJson(res, 400, { errors: [{ message: `${needKey.join(', ')} requires an Idempotency-Key header: send a unique value per operation, e.g. a UUID, and the same value when you retry it` }] });
    }
    if (headers.length > 1) {
      return sendJson(res, 400, { errors: [{ message: `send one Idempotency-Key header, got ${headers.length}` }] });
    }
    const parsed = parseKey(headers[0]);
    if ('error' in parsed) return sendJson(res, 400, { errors: [{ message: parsed.error }] });
    res.setHeader('idempotency-key', headers[0]);
    return followOrLead(req, res, next, scopeOf(req, trust), parsed.key, requestHash(mutation));
  };
}

/** The answer to a request that does not run its operation: a replay, 409 or 422. */
function answer(req: IncomingMessage, res: ServerResponse, a: Exclude<Answer, { kind: 'absent' }>): void {
  const r = replacementFor(req, res, a);
  res.writeHead(r.status, { ...r.headers, 'content-length': Buffer.byteLength(r.body) });
  res.end(r.body);
}

/** That answer as a status, headers and body (sent in place of a response held back by captureResponse). */
function replacementFor(req: IncomingMessage, res: ServerResponse, a: Exclude<Answer, { kind: 'absent' }>): Replacement {
  const json = { 'content-type': 'application/json; charset=utf-8' };
  switch (a.kind) {
    case 'replay':
      res.setHeader('idempotent-replayed', 'true');
      return { status: a.status, headers: { 'content-type': contentTypeFor(req) }, body: a.body };
    case 'busy':
      return busyReplacement(a.retryAfterSeconds);
    case 'mismatch':
      return { status: 422, headers: json, body: JSON.stringify({ errors: [{ message: 'this Idempotency-Key was used for a different request (operation, variables or operation name): use a new key for a new request' }] }) };
  }
}

function busyReplacement(retryAfterSeconds: number): Replacement {
  return { status: 409, headers: { 'content-type': 'application/json; charset=utf-8', 'retry-after': String(retryAfterSeconds) },
    body: JSON.stringify({ errors: [{ message: 'a request with this Idempotency-Key is still being processed: retry after Retry-After seconds' }] }) };
}

/** The promise's value, or null if it has not settled within ms. */
function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  if (ms <= 0) return Promise.race([p, Promise.resolve(null)]);
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), ms); })]).finally(() => clearTimeout(timer));
}

/** Ends the transaction and returns the client to the pool; a client whose state is unknown is discarded. */
async function finish(client: pg.PoolClient, statement: 'rollback'): Promise<void> {
  try {
    await client.query(statement);
    client.release();
  } catch (err) {
    client.release(err as Error);
  }
}

/** The mutation a GraphQL POST body asks for, with its top-level field names; null for anything else. */
export function mutationOf(json: Record<string, unknown>): Mutation | null {
  try {
    const { query, variables = null, operationName = null } = json;
    if (typeof query !== 'string' || (operationName !== null && typeof operationName !== 'string')) return null;
    const { document, printed } = parsedQuery(query);
    const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
    const operation = operationName === null
      ? (operations.length === 1 ? operations[0] : undefined)
      : operations.find((o) => o.name?.value === operationName);
    if (!operation || operation.operation !== 'mutation') return null;
    return { document, variables, operationName, fields: topLevelFields(document, operation.selectionSet), printed };
  } catch {
    return null; // not JSON, not GraphQL: grafserv answers with the right error
  }
}

// Clients send the same few operation texts again and again: each is parsed and printed once.
const PARSED_MAX = 500;
const parsedQueries = new Map<string, { document: DocumentNode; printed: string }>();
function parsedQuery(query: string): { document: DocumentNode; printed: string } {
  let p = parsedQueries.get(query);
  if (!p) {
    const document = parse(query);
    p = { document, printed: print(document) };
    if (parsedQueries.size >= PARSED_MAX) parsedQueries.clear();
    if (query.length <= 100_000) parsedQueries.set(query, p);
  }
  return p;
}

/** SHA-256 of the canonical document (graphql print), variables (keys sorted) and operation name. */
export function requestHash(m: Pick<Mutation, 'document' | 'variables' | 'operationName' | 'printed'>): string {
  const canonical = JSON.stringify([m.printed ?? print(m.document), sortKeys(m.variables ?? {}), m.operationName]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** The key from the header value: a bare value, or a Structured Field string ("...") as the draft writes it. */
export function parseKey(raw: string): { key: string } | { error: string } {
  let key = raw;
  if (raw.startsWith('"')) {
    const m = /^"((?:[^"\\]|\\["\\])*)"$/.exec(raw);
    if (!m) return { error: 'Idempotency-Key starts with a quote but is not a well-formed quoted string' };
    key = m[1].replace(/\\(["\\])/g, '$1');
  }
  if (key.length === 0 || key.length > 255) {
    return { error: `Idempotency-Key must be 1 to 255 characters, got ${key.length}: use a unique value per operation, e.g. a UUID` };
  }
  if (!KEY.test(key)) {
    const bad = [...key].findIndex((c) => !/[\x20-\x7e]/.test(c));
    const code = key.codePointAt(bad)!.toString(16).toUpperCase().padStart(4, '0');
    return { error: `Idempotency-Key must be printable ASCII (0x20 to 0x7E), got U+${code} at position ${bad + 1}` };
  }
  return { key };
}

/**
 * Whose key it is. With a token: the subject, its organisation and its role, all three, so a stored
 * response is replayed only to the identity that made it (the same subject under another organisation's
 * or role's token made another request). Anonymous: the client's address as the rate limiter sees it
 * (trusted proxies honoured, IPv6 by its /64).
 */
export function scopeOf(req: IncomingMessage, trust: ProxyTrust): string {
  const s = state(req);
  const sub = s.claims?.sub;
  if (typeof sub === 'string' || typeof sub === 'number') return `sub:${JSON.stringify([String(sub), s.orgId ?? null, s.role])}`;
  return `ip:${addressKey(clientAddress(req, trust))}`;
}

function topLevelFields(document: DocumentNode, selectionSet: SelectionSetNode, seen = new Set<string>()): string[] {
  const names: string[] = [];
  for (const s of selectionSet.selections) {
    if (s.kind === Kind.FIELD) names.push(s.name.value);
    else if (s.kind === Kind.INLINE_FRAGMENT) names.push(...topLevelFields(document, s.selectionSet, seen));
    else if (!seen.has(s.name.value)) {
      seen.add(s.name.value);
      const fragment = document.definitions.find((d) => d.kind === Kind.FRAGMENT_DEFINITION && d.name.value === s.name.value);
      if (fragment?.kind === Kind.FRAGMENT_DEFINITION) names.push(...topLevelFields(document, fragment.selectionSet, seen));
    }
  }
  return names;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  }
  return v;
}

function pathOf(url: string | undefined): string {
  const u = url ?? '';
  const q = u.indexOf('?');
  return q >= 0 ? u.slice(0, q) : u;
}

// Values go into the multi-statement (simple protocol) calls as literals, because the simple protocol takes
// no parameters; pg's escapeLiteral quotes them.
const lit = (v: string): string => pg.escapeLiteral(v);

/**
 * The replay's media type, chosen from the retry's Accept header the way grafserv chooses it (since the
 * GraphQL-over-HTTP watershed it prefers application/graphql-response+json): the retry normally comes from
 * the client that sent the original, with the same Accept header, so it gets what the original got.
 */
function contentTypeFor(req: IncomingMessage): string {
  const accepted = (req.headers.accept ?? '').split(',').map((part) => {
    const [type, ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    return { type, q: q ? Number(q.slice(2)) : 1 };
  }).filter((a) => a.type && a.q > 0).map((a) => a.type);
  const GRAPHQL = 'application/graphql-response+json; charset=utf-8';
  if (accepted.length === 0 || accepted.includes('application/graphql-response+json')) return GRAPHQL;
  if (accepted.includes('application/json')) return 'application/json; charset=utf-8';
  return accepted.includes('*/*') || accepted.includes('application/*') ? GRAPHQL : 'application/json; charset=utf-8';
}

type Replacement = { status: number; headers: Record<string, string>; body: string };
type Fn = (...args: unknown[]) => unknown;

/**
 * Holds back the response (head and body) until settle(status, body) has run: then sends it as it was
 * written, or the replacement settle returns instead.
 */
function captureResponse(res: ServerResponse, settle: (status: number, body: Buffer) => Promise<Replacement | null>): void {
  const r = res as unknown as Record<'writeHead' | 'write' | 'end', Fn>;
  const real = { writeHead: res.writeHead.bind(res) as Fn, write: res.write.bind(res) as Fn, end: res.end.bind(res) as Fn };
  const chunks: Buffer[] = [];
  let head: unknown[] | null = null;
  const collect = (chunk: unknown, encoding: unknown) => {
    if (typeof chunk === 'string') chunks.push(Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8'));
    else if (chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
  };
  r.writeHead = (...args) => {
    head = args;
    return res;
  };
  r.write = (...args) => {
    collect(args[0], args[1]);
    const cb = args.find((a) => typeof a === 'function') as (() => void) | undefined;
    if (cb) process.nextTick(cb);
    return true;
  };
  r.end = (...args) => {
    Object.assign(r, real); // once
    if (typeof args[0] !== 'function') collect(args[0], args[1]);
    const status = typeof head?.[0] === 'number' ? head[0] : res.statusCode;
    const body = Buffer.concat(chunks);
    void settle(status, body).catch((err: unknown): Replacement => ({
      status: 500, headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ errors: [{ message: `could not settle the idempotency key: ${(err as Error).message}` }] }),
    })).then((replacement) => {
      if (replacement) {
        for (const name of res.getHeaderNames()) if (name.startsWith('content-')) res.removeHeader(name);
        real.writeHead(replacement.status, { ...replacement.headers, 'content-length': Buffer.byteLength(replacement.body) });
        real.end(replacement.body);
      } else {
        if (head) real.writeHead(...head);
        real.end(body);
      }
    });
    return res;
  };
}
