// JWT verification with jose: HS256 (JWT_SECRET), or a public key (JWT_PUBLIC_KEY_FILE), a JWKS file
// (JWT_JWKS_FILE) or an identity provider's JWKS URL (JWT_JWKS_URL, api/jwks.ts: cached, refetched for
// an unknown kid, kept when a fetch fails), with the algorithms of JWT_ALGORITHMS (default RS256, ES256
// and EdDSA for a JWKS; never "none", HS* only with a secret).
// Claims contract, as identity providers issue them: sub (the subject: any string of 1 to 128
// characters, 'auth0|123', 'user_2abc' or a uuid), the organisation's uuid and the application role
// (member | admin) in the claims JWT_ORG_CLAIM and JWT_ROLE_CLAIM name (default org_id and role; the
// database's settings org_claim and role_claim must name the same ones), exp required; iss and aud
// checked when configured. The role claim picks the database role (JWT_ROLE_MAP, default member →
// ballast_member, admin → ballast_admin). The claims go to the database unchanged. Anything wrong with a
// token that was sent is a JwtRejection (→ 401): never a silent downgrade to anonymous.
import { createSecretKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import type { ApiConfig, AppRole } from './config.ts';
import { KeysUnavailable, RemoteKeys } from './jwks.ts';
import type { Claims } from './context.ts';

/** A verified token: its claims as sent, the database role it becomes, and what the database will read from it. */
export type Verified = { claims: Claims; role: string; appRole: AppRole; orgId: string; expiresAtMs: number };

export class JwtRejection extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The longest subject accepted; the database's parse_claims has the same limit. */
export const MAX_SUBJECT_LENGTH = 128;
const CACHE_MAX = 10_000;
/** Warnings of the JWKS fetcher when no logger was given (the preset alone without one). */
const silent = { warn: () => undefined, info: () => undefined } as unknown as Logger;

export class JwtVerifier {
  private readonly key: KeyObject | JWTVerifyGetKey | null;
  private readonly algorithms: string[];
  private readonly config: ApiConfig;
  /** Where the keys come from, for "no key matches" messages. */
  private readonly source: string;
  /** Verified tokens by their text: a repeated token skips the signature check, not the time checks. */
  private readonly cache = new Map<string, Verified & { notBeforeMs: number }>();

  constructor(config: ApiConfig, logger?: Logger) {
    this.config = config;
    const k = config.jwt;
    this.key = k.kind === 'hs256' ? createSecretKey(Buffer.from(k.secret, 'utf8'))
      : k.kind === 'pem' ? k.key
        : k.kind === 'jwks' ? createLocalJWKSet(k.jwks as never)
          : k.kind === 'jwks-url' ? new RemoteKeys({ ...k, logger: logger ?? config.logger ?? silent, onChange: () => this.cache.clear() }).getKey
            : null;
    this.algorithms = config.jwtAlgorithms;
    this.source = k.kind === 'jwks-url' ? 'JWT_JWKS_URL' : 'JWT_JWKS_FILE';
  }

  get accepting(): boolean {
    return this.key !== null;
  }

  /** The database role of a request without a token (DB_ANONYMOUS_ROLE). */
  get anonymousRole(): string {
    return this.config.anonymousRole;
  }

  /** Verifies the Authorization header's bearer token; throws JwtRejection with a clear message. */
  async verify(authorization: string): Promise<Verified> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m) throw new JwtRejection('malformed_header', 'Authorization header must be "Bearer <token>"');
    const token = m[1];
    if (!this.key) {
      throw new JwtRejection('not_accepted', 'this server accepts no tokens (no JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_FILE or JWT_JWKS_URL configured)');
    }
    const now = Date.now();
    const tolerance = this.config.jwtClockToleranceS * 1000;
    const hit = this.cache.get(token);
    if (hit) {
      if (now - tolerance >= hit.expiresAtMs) {
        this.cache.delete(token);
        throw new JwtRejection('expired', `token expired at ${new Date(hit.expiresAtMs).toISOString()}`);
      }
      if (now + tolerance >= hit.notBeforeMs) return hit;
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key as KeyObject, {
        algorithms: this.algorithms,
        issuer: this.config.jwtIssuer ?? undefined,
        audience: this.config.jwtAudience ?? undefined,
        clockTolerance: this.config.jwtClockToleranceS,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (e) {
      throw explain(e, this.source);
    }
    const verified = toVerified(payload, this.config);
    if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(token, { ...verified, notBeforeMs: typeof payload.nbf === 'number' ? payload.nbf * 1000 : 0 });
    return verified;
  }
}

function toVerified(payload: JWTPayload, c: ApiConfig): Verified {
  const { sub } = payload;
  const orgId = payload[c.jwtOrgClaim];
  const role = payload[c.jwtRoleClaim];
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_SUBJECT_LENGTH) {
    throw new JwtRejection('invalid_claims', `claim "sub" must be the subject's id, a string of 1 to ${MAX_SUBJECT_LENGTH} characters, got ${describe(sub)}`);
  }
  if (typeof orgId !== 'string' || !UUID.test(orgId)) {
    throw new JwtRejection('invalid_claims', `claim "${c.jwtOrgClaim}" must be an organization uuid, got ${describe(orgId)}`);
  }
  const appRole = typeof role === 'string' && Object.hasOwn(c.jwtRoleMap, role) ? role as AppRole : undefined;
  if (!appRole) {
    const allowed = Object.keys(c.jwtRoleMap).map((k) => `"${k}"`).join(' or ');
    throw new JwtRejection('invalid_claims', `claim "${c.jwtRoleClaim}" must be ${allowed}, got ${describe(role)}`);
  }
  return { claims: payload as Claims, role: c.jwtRoleMap[appRole]!, appRole, orgId, expiresAtMs: (payload.exp as number) * 1000 };
}

/** A claim's value for an error message: JSON, cut short (a token may carry anything). */
function describe(v: unknown): string {
  const text = JSON.stringify(v ?? null);
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}

function explain(e: unknown, source: string): JwtRejection {
  if (e instanceof KeysUnavailable) return new JwtRejection('keys_unavailable', e.message);
  if (e instanceof joseErrors.JWTExpired) {
    const exp = (e.payload as JWTPayload).exp;
    return new JwtRejection('expired', `token expired${typeof exp === 'number' ? ` at ${new Date(exp * 1000).toISOString()}` : ''}`);
  }
  if (e instanceof joseErrors.JWTClaimValidationFailed) return new JwtRejection('invalid_claims', `claim "${e.claim}" ${e.reason === 'missing' ? 'is missing' : `failed: ${e.message}`}`);
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return new JwtRejection('bad_signature', 'token signature does not verify');
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return new JwtRejection('bad_algorithm', `token algorithm is not allowed: ${e.message}`);
  if (e instanceof joseErrors.JWKSNoMatchingKey) return new JwtRejection('unknown_key', `no key in ${source} matches the token (kid and algorithm)`);
  if (e instanceof joseErrors.JWKSMultipleMatchingKeys) return new JwtRejection('unknown_key', `several keys in ${source} match the token: it must name its key (kid)`);
  if (e instanceof joseErrors.JOSEError) return new JwtRejection('malformed', `token is malformed: ${e.message}`);
  return new JwtRejection('malformed', `token could not be verified: ${(e as Error).message}`);
}
