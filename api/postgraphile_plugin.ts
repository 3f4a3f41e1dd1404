// ballast's hooks into PostGraphile (a graphile-config plugin in the preset, api/preset.ts):
//  - grafserv setPreset: the depth (and introspection) validation rule (api/graphql_limits.ts), unless switched off;
//  - grafast execute: per request, the page sizes (unpaginated connections get the default, a null first/last
//    variable too) and the cost with the variables' values (api/graphql_limits.ts): over a limit, an error
//    result without executing; with OpenTelemetry on, the operation's span (child of the request's);
//  - grafserv processRequest: finds the request's state (api/context.ts), made by ballast's middlewares;
//    without them (the preset used alone), makes it here: the request id, and the JWT verified into role
//    and claims (a bad token → 401, never anonymous). The state goes on the request context, so
//    grafast's context() reads it whichever grafserv adaptor serves the request;
//  - grafserv processRequest: hands grafserv the body api/middleware/body.ts already read and parsed,
//    then maps the outcome to the right HTTP status: 400 for a query over the depth/cost limits, 503
//    when the database was unreachable, 504 on statement_timeout, 500 on a database-internal error
//    (grafserv would answer 200 with a GraphQL error for all of these);
//  - grafast prepareArgs: wraps the request's withPgClient so database failures are recorded on the
//    request (state(req).dbError) and on the DbGuard; with OpenTelemetry on, a span per transaction.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type {} from 'postgraphile';
import type {} from 'postgraphile/grafserv';
import { setState, stateOf, type RequestState } from './context.ts';
import { checkCost, LIMIT_CODES, pagedDocument, pagedVariables, queryLimitsRule, type Paged, type QueryLimits } from './graphql_limits.ts';
import type { DocumentNode } from 'postgraphile/graphql';
import { classifyDbError, type DbGuard } from './db_guard.ts';
import { JwtRejection, type JwtVerifier } from './jwt.ts';
import { CLIENT_REQUEST_ID_HEADER, newState, requestTrace, WELL_FORMED_REQUEST_ID } from './middleware/request_id.ts';
import type { Telemetry } from './telemetry.ts';
import { formatTraceparent } from './trace_context.ts';

/** Without ballast's middlewares in front: how the plugin makes a request's state itself. */
export type Standalone = { logger: Logger; verifier: JwtVerifier | null; requestIdHeader: boolean; anonymousRole: string };

type JsonResult = { type: 'json'; statusCode: number; headers: Record<string, string>; json: unknown };
type WithPgClient = (settings: unknown, callback: unknown) => Promise<unknown>;
/** What the execute middleware reads of grafast's event (its args, with the request context). */
type ExecuteEvent = { args: Omit<Grafast.ExecutionArgs, 'contextValue'> & { requestContext?: Partial<Grafast.RequestContext> } };

const STATUS = { unavailable: 503, timeout: 504, internal: 500 } as const;
const MESSAGE = {
  unavailable: ['DATABASE_UNAVAILABLE', 'the database is unavailable; retry shortly'],
  timeout: ['STATEMENT_TIMEOUT', 'the database took too long to answer (statement_timeout); try a smaller request'],
  internal: ['INTERNAL_SERVER_ERROR', 'internal error'],
} as const;

function unauthenticated(s: RequestState, e: JwtRejection, headers: Record<string, string>): JsonResult {
  const message = `invalid token: ${e.message}`;
  s.error = { status: 401, code: 'UNAUTHENTICATED', message };
  return {
    type: 'json', statusCode: 401,
    headers: { ...headers, 'content-type': 'application/json; charset=utf-8', 'www-authenticate': `Bearer error="invalid_token", error_description="${e.reason}"` },
    json: { errors: [{ message, extensions: { code: 'UNAUTHENTICATED', requestId: s.id } }] },
  };
}

/** With OpenTelemetry on: a span per database transaction of the operation (each withPgClient call). */
function tracedTransaction(telemetry: Telemetry, s: RequestState, inner: WithPgClient): WithPgClient {
  return (settings, callback) => {
    const span = telemetry.startSpan('pg transaction', { kind: 'client', parent: s.operationSpan ?? s.span, attributes: { 'db.system.name': 'postgresql', 'db.user': String((settings as Record<string, unknown> | null)?.role ?? '') } });
    if (!span) return inner(settings, callback);
    return inner(settings, callback).then((r) => {
      span.end();
      return r;
    }, (e: unknown) => {
      telemetry.fail(span, e);
      span.end();
      throw e;
    });
  };
}

export function ballastServerPlugin(opts: { limits: QueryLimits | null; guard: DbGuard | null; standalone: Standalone; telemetry?: Telemetry | null }): GraphileConfig.Plugin {
  const { standalone, limits } = opts;
  const telemetry = opts.telemetry ?? null;
  const paged = new WeakMap<DocumentNode, Paged>();
  /** The state of a request that did not come through ballast's middlewares; a JSON result when it is refused. */
  async function ownState(ctx: Partial<Grafast.RequestContext>, headers: Record<string, string | undefined>, idHeader: Record<string, string>): Promise<RequestState | JsonResult> {
    // The id is always ours (api/middleware/request_id.ts); a client's well-formed X-Request-Id is kept apart.
    const given = standalone.requestIdHeader ? headers['x-request-id'] : undefined;
    const clientId = given && WELL_FORMED_REQUEST_ID.test(given) ? given : undefined;
    const id = randomUUID();
    if (standalone.requestIdHeader) idHeader['x-request-id'] = id;
    if (clientId !== undefined) idHeader[CLIENT_REQUEST_ID_HEADER] = clientId;
    // Trace context as api/middleware/request_id.ts makes it, without a span of its own (no response hook here).
    const { trace } = requestTrace(headers.traceparent, null, undefined, undefined);
    idHeader.traceparent = formatTraceparent(trace);
    const s = newState(id, standalone.logger, standalone.anonymousRole, clientId, trace);
    const authorization = headers.authorization;
    if (standalone.verifier && authorization !== undefined) {
      try {
        const v = await standalone.verifier.verify(authorization);
        s.claims = v.claims;
        s.role = v.role;
        s.orgId = v.orgId;
      } catch (e) {
        if (!(e instanceof JwtRejection)) throw e;
        if (e.reason === 'keys_unavailable') { // JWT_JWKS_URL never fetched: not the token's fault (as api/middleware/jwt.ts)
          const message = `cannot verify tokens now: ${e.message}`;
          s.error = { status: 503, code: 'JWKS_UNAVAILABLE', message };
          return { type: 'json', statusCode: 503, headers: { ...idHeader, 'content-type': 'application/json; charset=utf-8', 'retry-after': '5' }, json: { errors: [{ message, extensions: { code: 'JWKS_UNAVAILABLE', requestId: s.id } }] } };
        }
        return unauthenticated(s, e, idHeader);
      }
    }
    if (ctx.node?.req) setState(ctx.node.req, s);
    return s;
  }

  /** The page sizes and the cost with the variables' values: over a limit, an error result without executing. */
  const limited = <R>(next: () => R, event: ExecuteEvent): R => {
    if (!limits) return next();
    const args = event.args;
    const original = args.document;
    const p = pagedDocument(args.schema, original, limits.defaultPageSize, paged);
    const values = pagedVariables(p, original, args.operationName, (args.variableValues ?? {}) as Record<string, unknown>, limits.defaultPageSize);
    const refusal = checkCost(args.schema, p.document, args.operationName, values, limits);
    if (refusal) return { errors: [refusal] } as R;
    args.document = p.document;
    args.variableValues = values as typeof args.variableValues;
    return next();
  };

  return {
    name: 'BallastServerPlugin',
    version: '0.2.0',
    description: 'ballast API: request state (JWT, request id), query limits, pre-read bodies, HTTP status for database failures',
    grafserv: {
      middleware: {
        setPreset(next, event) {
          if (opts.limits) event.validationRules.push(queryLimitsRule(opts.limits));
          return next();
        },
        async processRequest(next, event) {
          const ctx = event.requestDigest.requestContext;
          const idHeader: Record<string, string> = {};
          let s = stateOf(ctx);
          if (!s) {
            const own = await ownState(ctx, event.requestDigest.headers, idHeader);
            if ('type' in own) return own as never;
            s = own;
          }
          ctx.ballast = s;
          if (s.graphql) {
            const json = s.graphql.body;
            event.requestDigest.getBody = () => ({ type: 'json', json: json as never });
            event.requestDigest.preferJSON = true;
          }
          const result = await next();
          if (result && 'headers' in result && result.headers) Object.assign(result.headers, idHeader);
          if (!result) return result;
          if (s.dbError) {
            const kind = classifyDbError(s.dbError) ?? 'internal';
            const [code, message] = MESSAGE[kind];
            s.error = { status: STATUS[kind], code, message: `${message} (${s.dbError.message})` };
            const out: JsonResult = {
              type: 'json', statusCode: STATUS[kind],
              headers: { ...idHeader, 'content-type': 'application/json; charset=utf-8', ...(kind === 'unavailable' ? { 'retry-after': '1' } : {}) },
              json: { errors: [{ message, extensions: { code, requestId: s.id } }] },
            };
            return out as never;
          }
          if (result.type === 'json' && (result.statusCode === 200 || result.statusCode === 400)) {
            const errors = (result.json as { errors?: { message?: string; extensions?: { code?: unknown } }[] } | null)?.errors;
            const limit = errors?.find((e) => LIMIT_CODES.includes(String(e.extensions?.code)));
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
        execute(next, event) {
          // With OpenTelemetry on: the GraphQL operation's span, child of the request's HTTP span.
          const s = telemetry ? stateOf(event.args.requestContext) : undefined;
          if (!s?.span) return limited(next, event);
          const op = s.graphql;
          const span = telemetry!.startSpan(`${op?.operationType ?? 'graphql'} ${op?.operationName ?? ''}`.trim(), {
            parent: s.span,
            attributes: { 'graphql.operation.type': op?.operationType ?? '', 'graphql.operation.name': op?.operationName ?? '' },
          });
          if (!span) return limited(next, event);
          s.operationSpan = span;
          const done = (r: unknown) => {
            const errors = (r as { errors?: unknown[] } | null)?.errors;
            if (errors?.length) telemetry!.fail(span, new Error(String((errors[0] as { message?: unknown }).message)));
            span.end();
            return r;
          };
          try {
            const r = limited(next, event);
            return (r && typeof (r as PromiseLike<unknown>).then === 'function')
              ? (r as Promise<unknown>).then(done, (e: unknown) => { telemetry!.fail(span, e); span.end(); throw e; }) as typeof r
              : done(r) as typeof r;
          } catch (e) {
            telemetry!.fail(span, e);
            span.end();
            throw e;
          }
        },
        prepareArgs(next, event) {
          const wrap = <T>(args: T): T => {
            const s = stateOf(event.args.requestContext);
            const ctx = event.args.contextValue as unknown as Record<string, unknown>;
            const inner = ctx.withPgClient as WithPgClient | undefined;
            if (s && inner) {
              const observed = (settings: unknown, callback: unknown) => inner(settings, callback).catch((e: unknown) => {
                const kind = opts.guard ? opts.guard.observe(e) : classifyDbError(e);
                if (kind !== null && !s.dbError) s.dbError = e as Error;
                throw e;
              });
              ctx.withPgClient = telemetry && s.span ? tracedTransaction(telemetry, s, observed) : observed;
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
