// npm start's orchestration (scripts/start.ts): migrate, API and worker up, /graphql and /health/ready
// answer, and SIGINT (Ctrl-C) stops both children and exits 0, leaving no process behind.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { freePort, startNode, waitFor } from './helpers.ts';

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).split('\n').map((s) => Number(s.trim())).filter(Boolean);
  } catch {
    return [];
  }
}
function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

it('npm start serves GraphQL and readiness, and Ctrl-C leaves nothing running', async () => {
  const port = await freePort();
  const start = startNode('scripts/start.ts', { PORT: String(port), LOG_LEVEL: 'warn' });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('the API started by npm start', async () => {
    if (start.proc.exitCode !== null) throw new Error(`start exited ${start.proc.exitCode}: ${start.output()}`);
    return (await fetch(`${url}/health/ready`)).status === 200 ? true : undefined;
  }, 60_000);
  const r = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' });
  assert.deepEqual(await r.json(), { data: { __typename: 'Query' } });
  const kids = childrenOf(start.proc.pid!);
  assert.equal(kids.length, 2, `api and worker run as children: ${start.output()}`);
  start.proc.kill('SIGINT');
  assert.equal(await start.exited, 0, start.output());
  for (const pid of kids) assert.equal(alive(pid), false, `child ${pid} is gone`);
});
