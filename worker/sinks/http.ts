// HTTP sink: POST {"tags": [...]} to a purge endpoint (a CDN surrogate-key purge, a cache service), with a
// timeout. A 2xx is a delivery. A 4xx the endpoint gives for what the request holds (400, 404, 413, 422 …)
// refuses these tags for good (TagsRejectedError: the task splits the batch to find the tag it is about).
// Anything else fails the delivery, to be retried: 5xx, 408 and 429 (try again later), 401, 403 and 407
// (the credentials are wrong, whatever the tags), 405 (the URL is not a purge endpoint), a redirect, a
// timeout, a network error. Redirects are not followed: the request carries the Authorization header, which
// must go nowhere but INVALIDATION_HTTP_URL.
import { TagsRejectedError, type Sink } from './sink.ts';

export type HttpSinkOptions = { url: string; timeoutMs: number; authorization?: string };

/** 4xx answers that are about the endpoint or the moment, not about the tags: retried like a 5xx. */
const NOT_ABOUT_THE_TAGS = new Set([401, 403, 405, 407, 408, 429]);

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
        res = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ tags }), redirect: 'manual',
          signal: AbortSignal.timeout(opts.timeoutMs) });
      } catch (e) {
        const err = e as Error;
        if (err.name === 'TimeoutError' || err.name === 'AbortError') {
          throw new Error(`http sink: no answer from ${shown(url)} within ${opts.timeoutMs} ms (INVALIDATION_SINK_TIMEOUT_MS)`);
        }
        throw new Error(`http sink: POST ${shown(url)} failed: ${err.message}${(err.cause as Error | undefined)?.message ? ` (${(err.cause as Error).message})` : ''}`);
      }
      const body = await res.text().catch(() => '');
      if (res.status >= 200 && res.status <= 299) return;
      if (res.type === 'opaqueredirect' || (res.status >= 300 && res.status <= 399)) {
        const to = res.headers.get('location');
        throw new Error(`http sink: POST ${shown(url)} answered ${res.status || 'a redirect'}${to ? ` to ${to.split('?')[0]}` : ''}; ` +
          'redirects are not followed (they would carry the Authorization header): set INVALIDATION_HTTP_URL to the final URL');
      }
      const what = `http sink: POST ${shown(url)} answered ${res.status}${body ? `: ${body.slice(0, 200)}` : ''}`;
      if (res.status >= 400 && res.status <= 499 && !NOT_ABOUT_THE_TAGS.has(res.status)) throw new TagsRejectedError(what);
      throw new Error(what);
    },
    async close() {},
  };
}
