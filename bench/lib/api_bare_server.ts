// The baseline of `npm run bench -- api`: bare PostGraphile with the same preset as the API
// (makeBallastPreset: same schemas, pool settings and per-request pgSettings through api/context.ts),
// served by grafserv's node handler with nothing in front — no request id, logging, CORS, JWT
// verification, rate limiting, metrics or tracing. Every request runs as the member given in BENCH_CLAIMS (JSON).
import http from 'node:http';
import pino from 'pino';
import { postgraphile } from 'postgraphile';
import { grafserv } from 'postgraphile/grafserv/node';
import { apiConfigFromEnv, makeBallastPreset } from '../../api/index.ts';
import { setState } from '../../api/context.ts';

const options = apiConfigFromEnv(process.env, { schemas: ['app_public'] });
const claims = JSON.parse(process.env.BENCH_CLAIMS ?? '{}') as Record<string, unknown>;
// Depth and cost limits are the API's (they were never part of the baseline); the rest is the same preset.
const pgl = postgraphile(makeBallastPreset({ ...options, development: false, limits: false }));
await pgl.getSchema();
const handler = pgl.createServ(grafserv).createHandler();
const log = pino({ level: 'silent' });
const server = http.createServer((req, res) => {
  setState(req, { id: 'bare', startedAt: 0, trace: { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', flags: 1 }, claims, role: 'ballast_member', log, pgSettings: {} });
  void handler(req, res);
});
server.listen(options.port, options.host, () => process.stdout.write('bare postgraphile listening\n'));
process.once('SIGTERM', () => server.close(() => {
  void Promise.resolve(pgl.release()).then(() => process.exit(0));
}));
