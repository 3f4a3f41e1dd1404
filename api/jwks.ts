// An identity provider's JWKS URL (JWT_JWKS_URL), fetched and cached with jose's createRemoteJWKSet:
//  - a token whose kid is not in the cached set refetches it, at most once per cooldown (jose's
//    cooldownDuration), so a stream of tokens with made-up kids cannot make the API hammer the provider;
//  - the set is refetched when older than cacheMaxAge (jose), so a key the provider removed stops
//    verifying within cacheMaxAge (or at once, when a token with a new kid made us refetch);
//  - jose alone refuses every token while a refetch fails (stale set + endpoint down): here a failed
//    fetch keeps the last good set, which keeps verifying the tokens it verified, and the endpoint is
//    not asked again before the cooldown has passed (a down endpoint costs no request a timeout).
// Every change of the set (a fetch with different keys) calls onChange: the verifier forgets the tokens
// it verified (api/jwt.ts), so a token of a removed key is checked again, and refused.
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors as joseErrors, type JSONWebKeySet, type JWTHeaderParameters, type FlattenedJWSInput } from 'jose';
import type { Logger } from 'pino';

type GetKey = ReturnType<typeof createLocalJWKSet>;

export type RemoteKeysOptions = { url: URL; cooldownMs: number; cacheMaxAgeMs: number; timeoutMs: number; logger: Logger; onChange: () => void };

/** jose errors that say the set has no (single) key for the token: the token's fault, not the endpoint's. */
function isKeyMismatch(e: unknown): boolean {
  return e instanceof joseErrors.JWKSNoMatchingKey || e instanceof joseErrors.JWKSMultipleMatchingKeys || e instanceof joseErrors.JOSENotSupported;
}

/** The JWKS endpoint could not be used and no set was fetched before: the token cannot be checked now. */
export class KeysUnavailable extends Error {}

export class RemoteKeys {
  private readonly o: RemoteKeysOptions;
  private readonly remote: ReturnType<typeof createRemoteJWKSet>;
  /** The last set fetched with success, as JSON text (to see a change) and as a key lookup. */
  private lastText: string | null = null;
  private lastGood: GetKey | null = null;
  /** When a fetch last failed: until the cooldown has passed, the last good set answers alone. */
  private failedAt = -Infinity;
  private failures = 0;

  constructor(o: RemoteKeysOptions) {
    this.o = o;
    this.remote = createRemoteJWKSet(o.url, {
      cooldownDuration: o.cooldownMs,
      cacheMaxAge: o.cacheMaxAgeMs,
      timeoutDuration: o.timeoutMs,
      [customFetch]: (url, init) => this.fetch(url, init),
    });
  }

  /** jose's key lookup (pass it to jwtVerify). */
  readonly getKey = async (header: JWTHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    if (this.lastGood && performance.now() - this.failedAt < this.o.cooldownMs) return this.lastGood(header, token);
    try {
      return await this.remote(header, token);
    } catch (e) {
      if (isKeyMismatch(e)) throw e;
      // The endpoint failed (network, timeout, not 200, not a JWKS).
      this.failedAt = performance.now();
      this.failures += 1;
      if (this.failures === 1 || this.failures % 100 === 0) {
        this.o.logger.warn({ err: e, url: this.o.url.href, failures: this.failures, cached: this.lastGood !== null }, this.lastGood
          ? 'JWT_JWKS_URL could not be fetched: verifying with the keys fetched last'
          : 'JWT_JWKS_URL could not be fetched and no keys were fetched before: tokens cannot be verified');
      }
      if (!this.lastGood) throw new KeysUnavailable(`the identity provider's keys (JWT_JWKS_URL) could not be fetched: ${(e as Error).message}`);
      return this.lastGood(header, token);
    }
  };

  /** jose's fetch, watched: a 200 with a usable JWKS becomes the last good set. */
  private async fetch(url: string, init: RequestInit): Promise<Response> {
    const res = await fetch(url, init);
    if (res.status !== 200) return res;
    const text = await res.text();
    let local: GetKey;
    try {
      local = createLocalJWKSet(JSON.parse(text) as JSONWebKeySet);
    } catch {
      return new Response(text, { status: 200, headers: res.headers }); // jose reports it (a failure)
    }
    if (this.failures > 0) this.o.logger.info({ url: this.o.url.href, failures: this.failures }, 'JWT_JWKS_URL fetched again');
    this.failures = 0;
    this.failedAt = -Infinity;
    this.lastGood = local;
    if (text !== this.lastText) {
      const first = this.lastText === null;
      this.lastText = text;
      if (!first) {
        this.o.logger.info({ url: this.o.url.href, kids: (JSON.parse(text) as JSONWebKeySet).keys.map((k) => k.kid ?? null) }, 'JWT_JWKS_URL keys changed');
        this.o.onChange();
      }
    }
    return new Response(text, { status: 200, headers: res.headers });
  }
}
