// Idempotency keys on GraphQL mutations (draft-ietf-httpapi-idempotency-key-header), stored in PostgreSQL
// through ballast.idempotency_begin / _complete / _release (sql/idempotency.sql).
//
// A POST to /graphql whose operation is a mutation and that carries an Idempotency-Key header:
//   begin → started:     run it (PostGraphile), store its status and body (complete; a 5xx releases the
//                        key instead, so the client may retry), then send it; Idempotency-Key is echoed
//         → replay:      the stored status and body, with Idempotent-Replayed: true
//         → in_progress: 409 with Retry-After
//         → mismatch:    422 (same key, different operation, variables or operation name)
// While it runs, the lease is renewed (idempotency_extend) every third of IDEMPOTENCY_LEASE_SECONDS.
// A malformed key: 400. A mutation listed in IDEMPOTENCY_REQUIRED_MUTATIONS without a key: 400.
// Queries, with or without the header, and everything else pass through untouched and are not stored.
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import pg from 'pg';
import { parse, print, Kind, type DocumentNode, type SelectionSetNode } from 'postgraphile/graphql';
import { addressKey, clientAddress, proxyTrust, type ProxyTrust } from '../client_address.ts';
import type { ApiConfig } from '../config.ts';
import { state } from '../context.ts';
import { sendJson } from '../health.ts';
import type { Middleware } from './compose.ts';

const GRAPHQL_PATH = '/graphql'; // api/preset.ts: grafserv.graphqlPath
const KEY = /^[\x20-\x7e]{1,255}$/; // the SQL side checks the same: 1-255 printable ASCII characters

type Options = Pick<ApiConfig, 'idempotencyRequiredMutations' | 'idempotencyLeaseSeconds' | 'idempotencyTtlSeconds'>
  & Partial<Pick<ApiConfig, 'trustProxyHops' | 'trustedProxies'>>;

export type Mutation = { document: DocumentNode; variables: unknown; operationName: string | null; fields: string[] };
type Begun = { outcome: 'started' | 'replay' | 'in_progress' | 'mismatch'; status_code: number | null; response_body: string | null; retry_after_seconds: number | null };

export function idempotency(pool: pg.Pool, options: Options): Middleware {
  const required = new Set(options.idempotencyRequiredMutations);
  const ttl = `${options.idempotencyTtlSeconds} seconds`;
  const lease = `${options.idempotencyLeaseSeconds} seconds`;
  const leaseMs = options.idempotencyLeaseSeconds * 1000;
  const trust = proxyTrust(options.trustProxyHops ?? 0, options.trustedProxies ?? []);

  // Single flight per key in this process. A burst of duplicates (a client retrying in a loop, a double
  // click times a thousand) would otherwise queue one idempotency_begin each in the pool, ahead of the
  // holder's own mutation, renewals and completion. Duplicates of a request whose begin is in flight here
  // share its answer; duplicates of a request this process is running get 409 at once. The database stays
  // the arbiter between processes: this only saves round trips whose answer is already known.
  type Flight = { hash: string; begun: Promise<Begun>; holding: boolean; leaseEnds: number; done: () => void };
  const flights = new Map<string, Flight>();

  async function begin(scope: string, key: string, hash: string, owner: string): Promise<{ begun: Begun; flight?: Flight }> {
    const id = JSON.stringify([scope, key]);
    const ahead = flights.get(id);
    if (ahead && ahead.hash === hash) {
      const b = await ahead.begun.catch(() => null);
      if (b && b.outcome !== 'started') return { begun: b };
      if (b && ahead.holding) return { begun: inProgress(Math.ceil((ahead.leaseEnds - Date.now()) / 1000)) };
      // its begin failed, or the request it started has finished here: ask the database
    }
    // The claim may commit asynchronously: the mutation's own (synchronous) commit flushes the WAL up to and
    // including it, and if the server crashes before that, the claim and the mutation are lost together and
    // the retry starts afresh. The stored result (complete) is never written asynchronously.
    const begun = sql<Begun>(pool,
      `select * from ballast.idempotency_begin(${lit(scope)}, ${lit(key)}, ${lit(hash)}, ${lit(ttl)}::interval, ${lit(lease)}::interval, holder => ${lit(owner)})`, false);
    if (flights.has(id)) return { begun: await begun };
    const flight: Flight = { hash, begun, holding: false, leaseEnds: Date.now() + leaseMs,
      done: () => { if (flights.get(id) === flight) flights.delete(id); } };
    flights.set(id, flight);
    try {
      const b = await begun;
      if (b.outcome === 'started') {
        flight.holding = true; // until the holder settles and calls done()
        return { begun: b, flight };
      }
      flight.done();
      return { begun: b };
    } catch (err) {
      flight.done();
      throw err;
    }
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

    const { key } = parsed;
    const scope = scopeOf(req, trust);
    // This request's identity as the key's holder, passed to every call: its begin, renewals and completion
    // run on different pooled connections (behind PgBouncer, on server connections other clients share),
    // so no per-session default could tell it apart.
    const owner = randomUUID();
    const log = state(req).log.child({ idempotencyKey: key });
    res.setHeader('idempotency-key', headers[0]);

    const { begun, flight } = await begin(scope, key, requestHash(mutation), owner);
    switch (begun.outcome) {
      case 'replay':
        res.setHeader('idempotent-replayed', 'true');
        return send(res, begun.status_code ?? 200, contentTypeFor(req), begun.response_body ?? '');
      case 'in_progress':
        res.setHeader('retry-after', String(Math.max(1, begun.retry_after_seconds ?? 1)));
        return sendJson(res, 409, { errors: [{ message: 'a request with this Idempotency-Key is still being processed: retry after Retry-After seconds' }] });
      case 'mismatch':
        return sendJson(res, 422, { errors: [{ message: 'this Idempotency-Key was used for a different request (operation, variables or operation name): use a new key for a new request' }] });
      case 'started':
        break;
    }

    // We hold the key. While the mutation runs, renew the lease every third of it: only a dead process
    // loses its key, not a slow one.
    let settled = false;
    const renew = setInterval(() => {
      sql<{ ends: Date }>(pool, `select ballast.idempotency_extend(${lit(scope)}, ${lit(key)}, ${lit(lease)}::interval, holder => ${lit(owner)}) as ends`)
        .then((r) => { if (flight) flight.leaseEnds = r.ends.getTime(); })
        .catch((err: unknown) => { if (!settled) log.error({ err }, 'could not renew the idempotency lease'); });
    }, leaseMs / 3);
    renew.unref();
    // Store (or release) the result before the client sees it, so that a retry sent the moment the response
    // arrives gets a replay rather than a 409. Every path ends the response (grafserv, the graphql
    // middleware's 404/500, server.ts's catch), so every path settles; if the process dies, the lease ends.
    captureResponse(res, async (status, responseBody) => {
      settled = true;
      clearInterval(renew);
      try {
        if (status >= 500) {
          await sql(pool, `select ballast.idempotency_release(${lit(scope)}, ${lit(key)}, holder => ${lit(owner)})`);
        } else {
          await sql(pool, `select ballast.idempotency_complete(${lit(scope)}, ${lit(key)}, ${status}, ${lit(responseBody.toString('utf8'))}, holder => ${lit(owner)})`);
        }
      } catch (err) {
        // 55000: another request took the key over (this process stalled for longer than the lease), so
        // the mutation may have run twice.
        log.error({ err, status }, 'could not store the idempotency result');
      } finally {
        flight?.done();
      }
    });
    await next();
  };
}

function inProgress(retryAfterSeconds: number): Begun {
  return { outcome: 'in_progress', status_code: null, response_body: null, retry_after_seconds: Math.max(1, retryAfterSeconds) };
}

/** The mutation a GraphQL POST body asks for, with its top-level field names; null for anything else. */
export function mutationOf(json: Record<string, unknown>): Mutation | null {
  try {
    const { query, variables = null, operationName = null } = json;
    if (typeof query !== 'string' || (operationName !== null && typeof operationName !== 'string')) return null;
    const document = parse(query);
    const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
    const operation = operationName === null
      ? (operations.length === 1 ? operations[0] : undefined)
      : operations.find((o) => o.name?.value === operationName);
    if (!operation || operation.operation !== 'mutation') return null;
    return { document, variables, operationName, fields: topLevelFields(document, operation.selectionSet) };
  } catch {
    return null; // not JSON, not GraphQL: grafserv answers with the right error
  }
}

/** SHA-256 of the canonical document (graphql print), variables (keys sorted) and operation name. */
export function requestHash(m: Pick<Mutation, 'document' | 'variables' | 'operationName'>): string {
  const canonical = JSON.stringify([print(m.document), sortKeys(m.variables ?? {}), m.operationName]);
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

// One round trip, one implicit transaction (simple protocol), so a transaction pooler keeps it on one server
// connection: with syncCommit off, synchronous_commit is set for that transaction alone. Values go in as
// literals because the simple protocol takes no parameters; pg's escapeLiteral quotes them.
const lit = (v: string): string => pg.escapeLiteral(v);

async function sql<T extends pg.QueryResultRow>(pool: pg.Pool, statement: string, syncCommit = true): Promise<T> {
  if (syncCommit) return ((await pool.query(statement)) as pg.QueryResult<T>).rows[0];
  const results = (await pool.query(`select set_config('synchronous_commit', 'off', true); ${statement}`)) as unknown as pg.QueryResult<T>[];
  return results[1].rows[0];
}

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

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

type End = (...args: unknown[]) => ServerResponse;
type Write = (...args: unknown[]) => boolean;

/** Collects what is written; when the response ends, awaits settle(status, body) before really ending it. */
function captureResponse(res: ServerResponse, settle: (status: number, body: Buffer) => Promise<void>): void {
  const chunks: Buffer[] = [];
  const collect = (chunk: unknown, encoding: unknown) => {
    if (typeof chunk === 'string') chunks.push(Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8'));
    else if (chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
  };
  const write = res.write.bind(res) as Write;
  const end = res.end.bind(res) as End;
  (res as unknown as { write: Write }).write = (...args) => {
    collect(args[0], args[1]);
    return write(...args);
  };
  (res as unknown as { end: End }).end = (...args) => {
    (res as unknown as { end: End }).end = end; // once
    if (typeof args[0] !== 'function') collect(args[0], args[1]);
    void settle(res.statusCode, Buffer.concat(chunks)).finally(() => end(...args));
    return res;
  };
}
