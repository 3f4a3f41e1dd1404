// The server's hooks into PostGraphile (a graphile-config plugin; api/server.ts adds it to the preset):
//  - grafserv setPreset: the depth and cost validation rules (api/graphql_limits.ts);
//  - grafserv processRequest: hands grafserv the body api/middleware/body.ts already read and parsed,
//    then maps the outcome to the right HTTP status: 400 for a query over the depth/cost limits, 503
//    when the database was unreachable, 504 on statement_timeout, 500 on a database-internal error
//    (grafserv would answer 200 with a GraphQL error for all of these);
//  - grafast prepareArgs: wraps the request's withPgClient so database failures are recorded on the
//    request (state(req).dbError) and on the DbGuard.
import type { IncomingMessage } from 'node:http';
import type {} from 'postgraphile';
import type {} from 'postgraphile/grafserv';
import { maybeState } from './context.ts';
import { queryLimitsRule, TOO_COSTLY, TOO_DEEP, type QueryLimits } from './graphql_limits.ts';
import { classifyDbError, type DbGuard } from './db_guard.ts';

type JsonResult = { type: 'json'; statusCode: number; headers: Record<string, string>; json: unknown };
type WithPgClient = (settings: unknown, callback: unknown) => Promise<unknown>;

const STATUS = { unavailable: 503, timeout: 504, internal: 500 } as const;
const MESSAGE = {
  unavailable: ['DATABASE_UNAVAILABLE', 'the database is unavailable; retry shortly'],
  timeout: ['STATEMENT_TIMEOUT', 'the database took too long to answer (statement_timeout); try a smaller request'],
  internal: ['INTERNAL_SERVER_ERROR', 'internal error'],
} as const;

function reqOf(ctx: Partial<Grafast.RequestContext> | undefined): IncomingMessage | undefined {
  return ctx?.node?.req;
}

export function ballastServerPlugin(opts: { limits: QueryLimits; guard: DbGuard }): GraphileConfig.Plugin {
  return {
    name: 'BallastServerPlugin',
    version: '0.1.0',
    description: 'ballast API: query limits, pre-read bodies, HTTP status for database failures',
    grafserv: {
      middleware: {
        setPreset(next, event) {
          event.validationRules.push(queryLimitsRule(opts.limits));
          return next();
        },
        async processRequest(next, event) {
          const req = reqOf(event.requestDigest.requestContext);
          const s = req ? maybeState(req) : undefined;
          if (s?.graphql) {
            const json = s.graphql.body;
            event.requestDigest.getBody = () => ({ type: 'json', json: json as never });
            event.requestDigest.preferJSON = true;
          }
          const result = await next();
          if (!s || !result) return result;
          if (s.dbError) {
            const kind = classifyDbError(s.dbError) ?? 'internal';
            const [code, message] = MESSAGE[kind];
            s.error = { status: STATUS[kind], code, message: `${message} (${s.dbError.message})` };
            const out: JsonResult = {
              type: 'json', statusCode: STATUS[kind],
              headers: { 'content-type': 'application/json; charset=utf-8', ...(kind === 'unavailable' ? { 'retry-after': '1' } : {}) },
              json: { errors: [{ message, extensions: { code, requestId: s.id } }] },
            };
            return out as never;
          }
          if (result.type === 'json' && (result.statusCode === 200 || result.statusCode === 400)) {
            const errors = (result.json as { errors?: { message?: string; extensions?: { code?: unknown } }[] } | null)?.errors;
            const limit = errors?.find((e) => e.extensions?.code === TOO_DEEP || e.extensions?.code === TOO_COSTLY);
            if (limit) {
              s.error = { status: 400, code: String(limit.extensions!.code), message: limit.message ?? '' };
              return result.statusCode === 400 ? result : { ...result, statusCode: 400 };
            }
          }
          return result;
        },
      },
    },
    grafast: {
      middleware: {
        prepareArgs(next, event) {
          const wrap = <T>(args: T): T => {
            const req = reqOf(event.args.requestContext);
            const s = req ? maybeState(req) : undefined;
            const ctx = event.args.contextValue as unknown as Record<string, unknown>;
            const inner = ctx.withPgClient as WithPgClient | undefined;
            if (s && inner) {
              ctx.withPgClient = (settings: unknown, callback: unknown) => inner(settings, callback).catch((e: unknown) => {
                if (opts.guard.observe(e) !== null && !s.dbError) s.dbError = e as Error;
                throw e;
              });
            }
            return args;
          };
          const r = next();
          return (r && typeof (r as PromiseLike<unknown>).then === 'function')
            ? (r as Promise<typeof r>).then(wrap) as typeof r
            : wrap(r);
        },
      },
    },
  };
}
