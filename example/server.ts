// The example app's API process: ballast's PostGraphile server over the example's schema (app_public),
// configured by the environment (README "Configuration"), with the example's admin page at /admin.
// It uses ballast the way a user's app would, through the package's public name `ballast/postgraphile`
// (in this checkout, run with `node --conditions=ballast-source example/server.ts`: the condition
// resolves the name to the TypeScript sources; an installed package runs its compiled dist/).
import type { BallastOptions, JwtOptions } from 'ballast/postgraphile';
import { apiConfigFromEnv, runApi } from 'ballast/postgraphile';
import { adminPage, type DevTokens } from './admin/page.ts';

/** The example's own variables, checked with the API's (every problem at once, exit 2). */
function adminSettings(options: BallastOptions, env: NodeJS.ProcessEnv): { page: boolean; devTokens: DevTokens; problems: string[] } {
  const problems: string[] = [];
  const bool = (name: string, fallback: boolean): boolean => {
    const v = env[name];
    if (v === undefined || v === '') return fallback;
    if (['on', 'true', '1', 'yes'].includes(v.toLowerCase())) return true;
    if (['off', 'false', '0', 'no'].includes(v.toLowerCase())) return false;
    problems.push(`${name} must be on or off, got "${v}"`);
    return fallback;
  };
  const page = bool('ADMIN_PAGE', true);
  const wantTokens = bool('ADMIN_DEV_TOKENS', options.development ?? false);
  const jwt: JwtOptions = options.jwt || {};
  const secret = jwt.secret;
  if (wantTokens && (env.GRAPHILE_ENV || 'production') === 'production') {
    problems.push('ADMIN_DEV_TOKENS=on is refused with GRAPHILE_ENV=production: it hands out admin tokens to anyone who asks');
  } else if (wantTokens && !secret) {
    problems.push(`ADMIN_DEV_TOKENS=on needs an HS256 key (JWT_SECRET, or GRAPHILE_ENV=development without one) to sign with; the JWT key here is ${jwt.publicKeyFile ? 'rs256-pem' : jwt.jwksFile ? 'rs256-jwks' : 'none'}`);
  }
  const devTokens: DevTokens = wantTokens && secret
    ? { secret, issuer: jwt.issuer ?? null, audience: jwt.audience ?? null, orgClaim: jwt.orgClaim ?? 'org_id', roleClaim: jwt.roleClaim ?? 'role' }
    : null;
  return { page, devTokens, problems };
}

await runApi(() => {
  let admin: ReturnType<typeof adminSettings> | undefined;
  const options = apiConfigFromEnv(process.env, {
    schemas: ['app_public'],
    check: (o, env) => (admin = adminSettings(o, env)).problems,
  });
  return { ...options, middlewares: admin!.page ? [adminPage(admin!.devTokens)] : [] };
});
