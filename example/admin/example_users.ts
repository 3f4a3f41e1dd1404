// The example logins that app_private.seed_example_data() (example/sql/app_admin.sql) creates in development
// and the tokens the admin page's development sign-in mints for them. The ids are fixed in both places;
// test/admin.test.ts checks that they agree.
import { SignJWT } from 'jose';

export type ExampleLogin = { userId: string; userName: string; email: string; orgId: string; orgName: string; role: 'admin' | 'member' };

export const EXAMPLE_LOGINS: ExampleLogin[] = [
  { userId: '00000000-0000-4000-b000-000000000001', userName: 'Ada (admin, Acme)', email: 'ada@acme.example',
    orgId: '00000000-0000-4000-a000-00000000000a', orgName: 'Acme Capital', role: 'admin' },
  { userId: '00000000-0000-4000-b000-000000000002', userName: 'Max (member, Acme)', email: 'max@acme.example',
    orgId: '00000000-0000-4000-a000-00000000000a', orgName: 'Acme Capital', role: 'member' },
  { userId: '00000000-0000-4000-b000-000000000003', userName: 'Gia (admin, Globex)', email: 'gia@globex.example',
    orgId: '00000000-0000-4000-a000-00000000000b', orgName: 'Globex Partners', role: 'admin' },
];

/** orgClaim and roleClaim: the claim names the API reads (JWT_ORG_CLAIM, JWT_ROLE_CLAIM), default org_id and role.
 *  extraClaims: more claims to sign, e.g. { operator: true } (app_private.is_current_operator()); they cannot replace those. */
export type MintOptions = { secret: string; issuer: string | null; audience: string | null; ttlSeconds: number; orgClaim?: string; roleClaim?: string;
  extraClaims?: Record<string, unknown> };

/** A token following the API's claims contract (sub, the org and role claims, iat, exp), signed HS256. */
export async function mintLoginToken(login: ExampleLogin, o: MintOptions): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT({ ...o.extraClaims, sub: login.userId, [o.orgClaim ?? 'org_id']: login.orgId, [o.roleClaim ?? 'role']: login.role })
    .setProtectedHeader({ alg: 'HS256' }).setIssuedAt(now).setExpirationTime(now + o.ttlSeconds);
  if (o.issuer) jwt = jwt.setIssuer(o.issuer);
  if (o.audience) jwt = jwt.setAudience(o.audience);
  return jwt.sign(new TextEncoder().encode(o.secret));
}
