// Middlewares are small async functions run in order; each calls next() to pass the request on, or
// answers it itself. api/ballast.ts lists them, in the order the README documents.
import type { IncomingMessage, ServerResponse } from 'node:http';

export type Next = () => Promise<void>;
export type Middleware = (req: IncomingMessage, res: ServerResponse, next: Next) => Promise<void>;

/** The middlewares as one: each one's next() runs the one after it, the last one's runs `next`. */
export function chain(middlewares: Middleware[]): Middleware {
  return (req, res, next) => {
    const run = (i: number): Promise<void> => {
      const mw = middlewares[i];
      return mw ? mw(req, res, () => run(i + 1)) : next();
    };
    return run(0);
  };
}

export function compose(middlewares: Middleware[]): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const all = chain(middlewares);
  return (req, res) => all(req, res, () => Promise.resolve());
}
