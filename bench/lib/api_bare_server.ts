// The baseline of `npm run bench -- api`: bare PostGraphile with the same preset as the API
// (api/preset.ts: same pool settings, same per-request pgSettings through api/context.ts), served by
// grafserv's node handler with nothing in front — no request id, logging, CORS, JWT verification, rate
// limiting, metrics or tracing. Every request runs as the member given in BENCH_CLAIMS (JSON).
import http from 'node:http';
import pg from 'pg';
import pino from 'pino';
import { postgraphile } from 'postgraphile';
import { grafserv } from 'postgraphile/grafserv/node';
import { loadApiConfig } from '../../api/config.ts';
import { setState } from '../../api/context.ts';
import { makePreset } from '../../api/preset.ts';

const config = loadApiConfig();
const claims = JSON.parse(process.env.BENCH_CLAIMS ?? '{}') as Record<string, unknown>;
const pool = new pg.Pool({ connectionString: config.authUrl, max: config.poolMax, connectionTimeoutMillis: config.dbConnectTimeoutMs });
const pgl = postgraphile(makePreset(pool, false));
await pgl.getSchema();
const handler = pgl.createServ(grafserv).createHandler();
const log = pino({ level: 'silent' });
const server = http.createServer((req, res) => {
  setState(req, { id: 'bare', startedAt: 0, claims, role: 'ballast_member', log, pgSettings: {} });
  void handler(req, res);
});
server.listen(config.port, config.host, () => process.stdout.write('bare postgraphile listening\n'));
process.once('SIGTERM', () => server.close(() => {
  void Promise.resolve(pgl.release()).then(() => pool.end()).then(() => process.exit(0));
}));
