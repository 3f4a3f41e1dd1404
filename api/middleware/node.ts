// ballast's middlewares as node-style handlers, (req, res, next), the shape grafserv's node adaptor,
// Express and Connect use; and handlers of that shape inside ballast's chain.
//
// ballast's own middlewares are async and may act after the rest of the chain: `await next()` resolves
// when everything after them is done. A framework's next() returns at once, so toNodeMiddleware's
// next() resolves when the response is finished (or its connection closed) instead.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { maybeState } from '../context.ts';
import type { Middleware } from './compose.ts';
import { onDone } from './on_done.ts';

/** A Connect/Express-style handler: answers the request, or calls next() (next(err) on failure). */
export type NodeMiddleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void | Promise<void>;

const done = new WeakMap<ServerResponse, Promise<void>>();

/** Resolves when the response is finished or its connection closed (one promise per response, however many ask). */
export function responseDone(res: ServerResponse): Promise<void> {
  if (res.writableFinished || res.destroyed) return Promise.resolve();
  let p = done.get(res);
  if (!p) {
    p = new Promise((resolve) => onDone(res, resolve));
    done.set(res, p);
  }
  return p;
}

/** One of ballast's middlewares (or a chain of them) as a node-style handler. */
export function toNodeMiddleware(mw: Middleware): NodeMiddleware {
  return (req, res, next) => {
    let passed = false;
    mw(req, res, () => {
      passed = true;
      next();
      return responseDone(res);
    }).catch((err: unknown) => {
      if (!passed) return next(err);
      // The request went on already: the failure belongs to the log, not to the framework.
      maybeState(req)?.log.error({ err }, 'middleware failed after passing the request on');
    });
  };
}

/** A node-style handler inside ballast's chain: it answers, or calls next() to go on. */
export function fromNodeMiddleware(handler: NodeMiddleware): Middleware {
  return (req, res, next) => new Promise<void>((resolve, reject) => {
    let called = false;
    void responseDone(res).then(resolve); // answered without calling next()
    const go = (err?: unknown) => {
      if (called) return;
      called = true;
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else next().then(resolve, reject);
    };
    try {
      const r = handler(req, res, go);
      if (r && typeof r.then === 'function') r.then(undefined, go);
    } catch (e) {
      go(e);
    }
  });
}
