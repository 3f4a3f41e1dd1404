// JWT: a request without an Authorization header is anonymous (DB_ANONYMOUS_ROLE, ballast_anonymous). A
// request with one must carry a valid token (api/jwt.ts): its claims go to state(req).claims
// (→ request.jwt.claims), the database role its role claim maps to (JWT_ROLE_MAP) to state(req).role
// (→ the transaction's role), its organisation to state(req).orgId. A bad, expired or unverifiable token is
// a 401 with a GraphQL-shaped error saying what is wrong — never a silent downgrade to anonymous. While
// JWT_JWKS_URL cannot be fetched and no keys were fetched before, a token is answered 503 (retry), not 401.
import { state } from '../context.ts';
import { sendError } from '../errors.ts';
import { JwtRejection, type JwtVerifier } from '../jwt.ts';
import type { Middleware } from './compose.ts';

export function jwt(verifier: JwtVerifier): Middleware {
  return async (req, res, next) => {
    const header = req.headers.authorization;
    if (header === undefined) {
      state(req).role = verifier.anonymousRole;
      return next();
    }
    try {
      const v = await verifier.verify(header);
      const s = state(req);
      s.claims = v.claims;
      s.role = v.role;
      s.orgId = v.orgId;
    } catch (e) {
      if (!(e instanceof JwtRejection)) throw e;
      if (e.reason === 'keys_unavailable') { // the identity provider's JWKS is down and none was fetched yet: not the token's fault
        return sendError(req, res, 503, 'JWKS_UNAVAILABLE', `cannot verify tokens now: ${e.message}`, { 'retry-after': '5' });
      }
      return sendError(req, res, 401, 'UNAUTHENTICATED', `invalid token: ${e.message}`,
        { 'www-authenticate': `Bearer error="invalid_token", error_description="${e.reason}"` });
    }
    await next();
  };
}
