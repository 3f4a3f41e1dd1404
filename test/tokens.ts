// JWTs for tests: HS256 with a test secret (or any key), following the API's claims contract
// (sub, org_id, role, exp). Not a test file: imported by the API suites.
import { randomUUID } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';

export const TEST_JWT_SECRET = 'ballast-test-secret-0123456789abcdef0123456789';

export type TokenOptions = {
  secret?: string;
  key?: CryptoKey | Uint8Array;
  alg?: string;
  kid?: string;
  expiresInS?: number; // negative: already expired
  omit?: string[]; // claims to leave out
};

export async function mintToken(claims: JWTPayload = {}, o: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = { sub: randomUUID(), org_id: randomUUID(), role: 'member', iat: now, exp: now + (o.expiresInS ?? 300), ...claims };
  for (const k of o.omit ?? []) delete payload[k];
  const key = o.key ?? new TextEncoder().encode(o.secret ?? TEST_JWT_SECRET);
  return new SignJWT(payload).setProtectedHeader({ alg: o.alg ?? 'HS256', ...(o.kid ? { kid: o.kid } : {}) }).sign(key);
}
