// npm run preflight: a ready API, a target that accepts connections and never answers, and a closed
// port are checked in parallel; the hanging one times out without stalling the others; exit 1.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { freePort, runNode, startApi, stop } from './helpers.ts';

async function preflight(args: string[]): Promise<{ code: number | null; out: string }> {
  const r = await runNode('scripts/preflight.ts', args);
  return { code: r.code, out: r.output };
}

it('preflight checks targets in parallel with per-target timeouts', async () => {
  const api = await startApi();
  const hang = net.createServer(() => { /* accept and say nothing */ }).listen(0, '127.0.0.1');
  await new Promise((r) => hang.once('listening', r));
  const hangUrl = `http://127.0.0.1:${(hang.address() as net.AddressInfo).port}`;
  const closedUrl = `http://127.0.0.1:${await freePort()}`;
  try {
    const good = await preflight(['--targets', api.url]);
    assert.equal(good.code, 0, good.out);
    assert.match(good.out, /preflight: 2 passed, 0 failed/);

    // Three hanging targets with a 2 s timeout: checked one after another they would take 6 s or more.
    const started = Date.now();
    const r = await preflight(['--targets', `${hangUrl},${api.url},${closedUrl},${hangUrl}/a,${hangUrl}/b`, '--timeout-ms', '2000']);
    const elapsed = Date.now() - started;
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, new RegExp(`${hangUrl}\\s+FAIL\\s+\\d+\\s+timed out`));
    assert.match(r.out, new RegExp(`${api.url}\\s+ok`));
    assert.match(r.out, new RegExp(`${closedUrl}\\s+FAIL.*ECONNREFUSED`));
    assert.match(r.out, /preflight: 2 passed, 4 failed/);
    assert.ok(elapsed < 5_000, `parallel: finished in ${elapsed} ms, sequential would need >= 6000`);

    const bad = await preflight(['--targets', 'not a url']);
    assert.equal(bad.code, 1);
    assert.match(bad.out, /"not a url" is not a URL/);
  } finally {
    hang.close();
    await stop(api);
  }
});
