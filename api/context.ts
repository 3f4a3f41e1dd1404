// Per-request state shared by the middlewares and PostGraphile's context(): who is asking (claims,
// role), the request id, and the request's logger. Kept off the request object in a WeakMap.
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type {} from 'postgraphile/grafserv/node'; // Grafast.RequestContext's node: { req, res }

export type Claims = Record<string, unknown>;

export type RequestState = {
  id: string; // X-Request-Id, validated or generated
  startedAt: number; // performance.now() at arrival
  claims: Claims | null; // verified JWT claims, as the token carries them; null = anonymous
  /** The database role of the transaction: ballast_anonymous | ballast_member | ballast_admin, or a role of yours (JWT_ROLE_MAP, DB_ANONYMOUS_ROLE). */
  role: string;
  /** The organisation uuid api/jwt.ts read from the verified token's org claim (JWT_ORG_CLAIM); unset when anonymous. */
  orgId?: string;
  log: Logger;
  /** Extra pgSettings for this request's transaction (e.g. set by a middleware). */
  pgSettings: Record<string, string>;
  /** The GraphQL request, read and classified by api/middleware/body.ts (POST /graphql only). */
  graphql?: GraphqlRequest;
  /** What a middleware answered this request with when it refused it (logged, traced, reported). */
  error?: { status: number; code: string; message: string };
  /** A database failure seen while PostGraphile served the request (api/postgraphile_plugin.ts). */
  dbError?: Error;
};

export type GraphqlRequest = {
  /** The parsed JSON body; grafserv receives this object instead of re-reading the stream. */
  body: Record<string, unknown>;
  operationType: 'query' | 'mutation' | 'subscription';
  operationName: string | null;
};

declare global {
  namespace Grafast {
    interface RequestContext {
      /** The request's state, put here by ballast's grafserv plugin (api/postgraphile_plugin.ts) for every adaptor. */
      ballast?: RequestState;
    }
  }
}

const states = new WeakMap<IncomingMessage, RequestState>();

export function setState(req: IncomingMessage, state: RequestState): void {
  states.set(req, state);
}

export function state(req: IncomingMessage): RequestState {
  const s = states.get(req);
  if (!s) throw new Error('request state missing: the request-id middleware must run first');
  return s;
}

/** The request's state, or undefined for a request that did not come through the middleware chain. */
export function maybeState(req: IncomingMessage): RequestState | undefined {
  return states.get(req);
}

/** The state of the request behind a grafserv/grafast request context, whichever adaptor served it. */
export function stateOf(ctx: Partial<Grafast.RequestContext> | undefined): RequestState | undefined {
  return ctx?.ballast ?? (ctx?.node?.req ? states.get(ctx.node.req) : undefined);
}

/** The settings PostGraphile applies with set_config(..., true) for the request's transaction. */
export function pgSettingsFor(s: RequestState | undefined, anonymousRole: string): Record<string, string> {
  if (!s) return { role: anonymousRole };
  return {
    role: s.role,
    'request.id': s.id,
    'request.jwt.claims': s.claims ? JSON.stringify(s.claims) : '',
    ...s.pgSettings,
  };
}
