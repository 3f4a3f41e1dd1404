// The PostGraphile V5 preset: Amber, the app_public schema, the authenticator's pool, and per-request
// pgSettings (role, request.id, request.jwt.claims) from the request's state (api/context.ts).
import type pg from 'pg';
import { PostGraphileAmberPreset } from 'postgraphile/presets/amber';
import { makePgService } from 'postgraphile/adaptors/pg';
import { pgSettingsFor } from './context.ts';
import { WhyDeniedPlugin, maskError } from './why_denied.ts';

export function makePreset(pool: pg.Pool, development: boolean): GraphileConfig.Preset {
  return {
    extends: [PostGraphileAmberPreset],
    plugins: [WhyDeniedPlugin], // "why denied" hints on 42501 errors (api/why_denied.ts)
    pgServices: [makePgService({ pool, schemas: ['app_public'] })],
    grafserv: { graphqlPath: '/graphql', graphiql: development, graphiqlPath: '/', watch: false, maskError },
    grafast: {
      context(requestContext) {
        return { pgSettings: pgSettingsFor(requestContext.node?.req) };
      },
    },
  };
}
