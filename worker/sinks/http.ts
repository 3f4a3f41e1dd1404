// HTTP sink: POST {"tags": [...]} to a purge endpoint (a CDN surrogate-key purge, a cache service), with a
// timeout. Any status other than 2xx, a timeout or a network error is a failed delivery.
import type { Sink } from './sink.ts';

export type HttpSinkOptions = { url: string; timeoutMs: number; authorization?: string };

/** The URL without credentials, for messages. */
function shown(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

export function httpSink(opts: HttpSinkOptions): Sink {
  const url = new URL(opts.url);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.authorization) headers.authorization = opts.authorization;
  return {
    name: 'http',
    async deliver(tags) {
      let res: Response;
      try {
        res = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ tags }), signal: AbortSignal.timeout(opts.timeoutMs) });
      } catch (e) {
        const err = e as Error;
        if (err.name === 'TimeoutError' || err.name === 'AbortError') {
          throw new Error(`http sink: no answer from ${shown(url)} within ${opts.timeoutMs} ms (INVALIDATION_SINK_TIMEOUT_MS)`);
        }
        throw new Error(`http sink: POST ${shown(url)} failed: ${err.message}${(err.cause as Error | undefined)?.message ? ` (${(err.cause as Error).message})` : ''}`);
      }
      const body = await res.text().catch(() => '');
      if (res.status < 200 || res.status > 299) {
        throw new Error(`http sink: POST ${shown(url)} answered ${res.status}${body ? `: ${body.slice(0, 200)}` : ''}`);
      }
    },
    async close() {},
  };
}
