// Middlewares are small async functions run in order; each calls next() to pass the request on, or
// answers it itself. server.ts lists them, in the order the README documents.
import type { IncomingMessage, ServerResponse } from 'node:http';

export type Next = () => Promise<void>;
export type Middleware = (req: IncomingMessage, res: ServerResponse, next: Next) => Promise<void>;

export function compose(middlewares: Middleware[]): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return (req, res) => {
    const run = (i: number): Promise<void> => {
      const mw = middlewares[i];
      return mw ? mw(req, res, () => run(i + 1)) : Promise.resolve();
    };
    return run(0);
  };
}
