// "Why denied" hints: a GraphQL error caused by SQLSTATE 42501 (no privilege, or a row-level security
// policy refused the row) gets extensions { code: '42501', hint } instead of an opaque masked error.
// Admins (a session whose role claim says admin, as the database reads it: ballast.current_app_role(),
// the claim its setting role_claim names) get the full ballast.explain_access() checks; everyone else a
// short generic hint, so the rules' details are not handed to whoever probes them.
//
// Two halves, because grafserv's maskError is synchronous and explain_access needs the database:
//   1. whyDeniedPlugin's grafast `execute` middleware sees the result while the request's context (its
//      pgSettings: role, claims, request id, and withPgClient) is at hand; for each 42501 error it builds
//      the hint (one query, as the visitor, for admins) and remembers it for that error.
//   2. maskError (grafserv.maskError) turns remembered errors into { message, extensions.hint } and
//      leaves every other error to grafserv's defaultMaskError.
// A request pays at most maxQueries hint queries (WHY_DENIED_MAX_QUERIES, default 3), however many
// denied fields it aliases: equal denials share one hint, a session the database called non-admin gets
// the generic hint without asking again, and denials past the cap get a hint that says they were not
// explained (one document must not turn into N explain_access calls).
import { GraphQLError, Kind, valueFromASTUntyped, type DocumentNode, type FieldNode, type OperationDefinitionNode } from 'postgraphile/graphql';
import { defaultMaskError } from 'postgraphile/grafserv';
import { isAsyncIterable } from 'postgraphile/grafast';

export type Command = 'select' | 'insert' | 'update' | 'delete';
export type Check = { check_name: string; ok: boolean | null; detail: string | null };
export type Hint = { message: string; failed?: string[]; checks?: Check[] };

/** What was denied, as far as the error and the GraphQL request tell. */
export type Denial = { message: string; table: string | null; command: Command; row: Record<string, unknown> | null };

/** Runs one query as the visitor (role and claims applied), e.g. PostGraphile's withPgClient with pgSettings. */
export type VisitorQuery = (text: string, values: unknown[]) => Promise<CheckRow[]>;
/** A row of the hint query: whether the database sees a session, an admin's, and (for admins) one check. */
export type CheckRow = { session: boolean; admin: boolean; check_name: string | null; ok: boolean | null; detail: string | null };

export const GENERIC_HINT_ANONYMOUS = 'This needs a signed-in user: the request has no valid session.';
export const GENERIC_HINT_MEMBER = 'Your role in this organisation does not allow this. Ask an administrator of the organisation.';
export const DEFAULT_WHY_DENIED_MAX_QUERIES = 3;

const hints = new WeakMap<object, Hint>();

/** The PostgreSQL error behind a GraphQL error, when it is a 42501. */
export function deniedPgError(error: GraphQLError): { message: string } | null {
  const orig = error.originalError as { code?: unknown; message?: unknown } | undefined;
  return orig && orig.code === '42501' && typeof orig.message === 'string' ? { message: orig.message } : null;
}

function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The table (from PostgreSQL's message), the command (from the message and the root field's name) and the
 * row (the mutation's input flattened, GraphQL names turned back into columns) of a 42501 error.
 */
export function describeDenial(error: GraphQLError, pgMessage: string, request: { document: DocumentNode; variableValues?: Record<string, unknown> | null; operationName?: string | null }): Denial {
  const table = /for (?:table|relation|view) "?([^"\s]+)"?/.exec(pgMessage)?.[1] ?? null;
  const operation = request.document.definitions.find((d): d is OperationDefinitionNode =>
    d.kind === Kind.OPERATION_DEFINITION && (!request.operationName || d.name?.value === request.operationName));
  const responseKey = error.path?.[0];
  const field = operation?.selectionSet.selections.find((s): s is FieldNode =>
    s.kind === Kind.FIELD && (s.alias?.value ?? s.name.value) === responseKey);
  const fieldName = field?.name.value ?? '';
  let command: Command = 'select';
  if (operation?.operation === 'mutation') {
    const verb = /^(create|update|delete)/.exec(fieldName)?.[1];
    command = verb === 'create' ? 'insert' : verb === 'delete' ? 'delete' : 'update';
  }
  if (/violates row-level security policy/.test(pgMessage) && command === 'select') command = 'insert';
  let row: Record<string, unknown> | null = null;
  const inputArg = field?.arguments?.find((a) => a.name.value === 'input');
  if (inputArg) {
    const input = valueFromASTUntyped(inputArg.value, (request.variableValues ?? undefined) as Record<string, unknown> | undefined);
    if (isPlainObject(input)) {
      row = {};
      for (const [k, v] of Object.entries(input)) {
        if (k === 'clientMutationId' || k === 'id') continue; // id is the global node id, not a column
        if (isPlainObject(v)) for (const [ck, cv] of Object.entries(v)) row[ck === 'rowId' ? 'id' : snakeCase(ck)] = cv;
        else row[k === 'rowId' ? 'id' : snakeCase(k)] = v;
      }
    }
  }
  return { message: pgMessage, table, command, row };
}

function parseClaims(text: string | undefined): Record<string, unknown> | null {
  if (!text) return null;
  try {
    const c: unknown = JSON.parse(text);
    return isPlainObject(c) && typeof c.sub === 'string' ? c : null;
  } catch {
    return null;
  }
}

/**
 * The hint for one denial. Admins: the failed and all checks of ballast.explain_access, run as the visitor.
 * Without a session: a short generic sentence, without a database round trip. With one, the database
 * says whether it is an admin's (the role claim's name is its setting, and one query answers both).
 */
export async function hintFor(denial: Denial, pgSettings: Record<string, string | undefined>, query: VisitorQuery, schemas: string[]): Promise<Hint> {
  const claims = parseClaims(pgSettings['request.jwt.claims']);
  if (!claims) return { message: GENERIC_HINT_ANONYMOUS };
  if (!denial.table) return { message: GENERIC_HINT_MEMBER };
  // explain_access runs only when the session is an admin's: the condition gates the lateral subquery
  const rows = await query(
    `select a.session, a.admin, e.check_name, e.ok, e.detail
       from (select ballast.current_claims() is not null as session, ballast.current_app_role() is not distinct from 'admin' as admin) a
       left join lateral (
         select e.check_name, e.ok, e.detail
           from (select c.oid::regclass as tbl from pg_class c join pg_namespace n on n.oid = c.relnamespace
                  where c.relname = $1 and n.nspname = any ($2::text[]) order by array_position($2::text[], n.nspname::text) limit 1) t,
                ballast.explain_access(t.tbl, $3, $4::jsonb) e
          where a.admin) e on true`,
    [denial.table, schemas, denial.command, denial.row ? JSON.stringify(denial.row) : null]);
  if (!rows[0]?.session) return { message: GENERIC_HINT_ANONYMOUS }; // e.g. claims the database finds expired
  if (!rows[0].admin) return { message: GENERIC_HINT_MEMBER };
  const checks: Check[] = rows.filter((r) => r.check_name !== null).map((r) => ({ check_name: r.check_name!, ok: r.ok, detail: r.detail }));
  const failed = checks.filter((c) => c.ok === false).map((c) => c.check_name);
  return {
    message: failed.length ? `Denied ${denial.command} on ${denial.table}: ${failed.join(', ')} failed.` : `Denied ${denial.command} on ${denial.table}.`,
    failed,
    checks,
  };
}

type VisitorContext = {
  pgSettings?: Record<string, string | undefined>;
  withPgClient?: <T>(pgSettings: Record<string, string | undefined> | null, cb: (client: { query<R>(q: { text: string; values?: unknown[] }): Promise<{ rows: readonly R[] }> }) => Promise<T>) => Promise<T>;
};

/**
 * grafast middleware: compute the hints of a result's 42501 errors while the request context is at hand.
 * `schemas` are the exposed ones, searched in order for the denied table's name.
 */
export const whyDeniedPlugin = (schemas: string[], maxQueries = DEFAULT_WHY_DENIED_MAX_QUERIES): GraphileConfig.Plugin => ({
  name: 'BallastWhyDeniedPlugin',
  version: '0.2.0',
  description: 'Attaches a "why denied" hint to GraphQL errors caused by SQLSTATE 42501',
  grafast: {
    middleware: {
      async execute(next, event) {
        const result = await next();
        if (isAsyncIterable(result) || !result.errors?.length) return result;
        const ctx = event.args.contextValue as VisitorContext;
        const settings = ctx.pgSettings ?? {};
        let queries = 0;
        let admin: boolean | null = null; // what the database said about this session, once it was asked
        const query: VisitorQuery = async (text, values) => {
          if (!ctx.withPgClient) throw new Error('no withPgClient in the GraphQL context');
          queries += 1;
          const rows = await ctx.withPgClient(settings, async (client) => [...(await client.query<CheckRow>({ text, values })).rows]);
          admin = rows[0]?.admin === true;
          return rows;
        };
        const seen = new Map<string, Promise<Hint>>();
        for (const error of result.errors) {
          const pg = deniedPgError(error);
          if (!pg) continue;
          const denial = describeDenial(error, pg.message, { document: event.args.document, variableValues: event.args.variableValues as Record<string, unknown>, operationName: event.args.operationName });
          const key = JSON.stringify([denial.message, denial.table, denial.command, denial.row]);
          let hint = seen.get(key);
          if (!hint) {
            if (admin === false) hint = Promise.resolve({ message: GENERIC_HINT_MEMBER });
            else if (queries >= maxQueries && parseClaims(settings['request.jwt.claims']) && denial.table) hint = Promise.resolve(notExplained(denial, maxQueries, admin === true));
            else hint = hintFor(denial, settings, query, schemas).catch((e: Error) => ({ message: GENERIC_HINT_MEMBER, failed: [`explain_access failed: ${e.message}`] }));
            seen.set(key, hint);
          }
          hints.set(error.originalError ?? error, await hint);
        }
        return result;
      },
    },
  },
});

/** The hint of a denial past the request's cap: admins learn why there are no checks, others get the generic hint. */
function notExplained(denial: Denial, maxQueries: number, admin: boolean): Hint {
  if (!admin) return { message: GENERIC_HINT_MEMBER };
  return { message: `Denied ${denial.command} on ${denial.table}; not explained: a request gets at most ${maxQueries} explained denials (WHY_DENIED_MAX_QUERIES).` };
}

/** grafserv maskError: 42501 errors keep PostgreSQL's message and carry their hint; the rest are masked as usual. */
export function maskError(error: GraphQLError): GraphQLError {
  const hint = hints.get(error.originalError ?? error);
  const pg = deniedPgError(error);
  if (!pg) return defaultMaskError(error);
  return new GraphQLError(pg.message, {
    nodes: error.nodes, source: error.source, positions: error.positions, path: error.path,
    originalError: error.originalError,
    extensions: { code: '42501', hint: hint ?? { message: GENERIC_HINT_MEMBER } },
  });
}
