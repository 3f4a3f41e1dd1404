// The whole API as one node HTTP server: ballast's middlewares (api/ballast.ts), then PostGraphile
// (grafserv's node handler), then 404.
// Shutdown: turn not-ready, refuse new work with 503, let admitted requests finish (bounded by
// shutdown.graceMs), close the listener, flush the write-behind buffers, release PostGraphile, close the pool.
import http from 'node:http';
import type { Logger } from 'pino';
import { postgraphile, type PostGraphileInstance } from 'postgraphile';
import { grafserv } from 'postgraphile/grafserv/node';
import { createBallast, type Ballast } from './ballast.ts';
import type { BallastOptions } from './config.ts';
import { ConfigError } from './config.ts';
import { compose } from './middleware/compose.ts';
import { graphql } from './middleware/graphql.ts';
import { logClientErrors } from './middleware/logging.ts';
import { makeLogger } from './logger.ts';

export type ServerOptions = BallastOptions & {
  /** Your own preset, extended after ballast's (plugins, inflection, more grafserv or grafast options). */
  preset?: GraphileConfig.Preset;
};

export type ApiServer = {
  server: http.Server;
  pgl: PostGraphileInstance;
  ballast: Ballast;
  logger: Logger;
  /** Listens on options.host and options.port (0: a free port); resolves with the port. */
  listen: () => Promise<number>;
  /** Drains (503 to new requests, admitted ones finish within graceMs), then closes everything; once. */
  close: (graceMs?: number) => Promise<void>;
};

export type Api = { server: http.Server; port: number; logger: Logger; close: (graceMs?: number) => Promise<void> };

/** The server, not yet listening. PostGraphile's schema is built first, so an unusable database fails here, not on the first request. */
export async function createServer(options: ServerOptions): Promise<ApiServer> {
  const ballast = createBallast(options);
  const { config, logger } = ballast;
  let pgl: PostGraphileInstance | null = null;
  try {
    pgl = postgraphile({ extends: options.preset ? [ballast.preset, options.preset] : [ballast.preset] });
    await pgl.getSchema();
    await ballast.telemetry?.ready; // the OpenTelemetry SDK loaded: the first request is traced too
  } catch (e) {
    await pgl?.release();
    await ballast.close();
    throw e;
  }
  const instance = pgl;
  const handle = compose([ballast.chain, graphql(instance.createServ(grafserv).createHandler())]);
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ err }, 'middleware failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ message: 'internal error' }] }));
    });
  });
  logClientErrors(server, logger);

  let closing: Promise<void> | null = null;
  return {
    server,
    pgl: instance,
    ballast,
    logger,
    async listen() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => { server.off('error', reject); resolve(); });
      });
      const address = server.address();
      return typeof address === 'object' && address ? address.port : config.port;
    },
    close(graceMs = config.shutdownGraceMs) {
      closing ??= (async () => {
        // Keep listening while admitted requests finish: new requests (new connections included) get 503.
        if (config.shutdownGuard) await ballast.drain(graceMs);
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        await instance.release();
        await ballast.close();
      })();
      return closing;
    },
  };
}

/** createServer, then listen. */
export async function startApi(options: ServerOptions): Promise<Api> {
  const s = await createServer(options);
  const port = await s.listen().catch(async (e: unknown) => {
    await s.close(0);
    throw e;
  });
  return { server: s.server, port, logger: s.logger, close: s.close };
}

/**
 * A process's main: options from your function (e.g. apiConfigFromEnv; a ConfigError is printed and the
 * process exits 2), the server started (a failure: exit 1), SIGTERM and SIGINT shut it down cleanly (exit 0).
 */
export async function runApi(options: () => ServerOptions, name = 'api'): Promise<Api> {
  let resolved: ServerOptions;
  try {
    resolved = options();
  } catch (e) {
    process.stderr.write(`${name}: ${(e as Error).message}\n`);
    process.exit(e instanceof ConfigError ? 2 : 1);
  }
  const logger = resolved.logger ?? makeLogger(resolved.logLevel ?? 'info');
  let api: Api;
  try {
    api = await startApi({ ...resolved, logger });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${name}: ${e.message}\n`);
      process.exit(2);
    }
    logger.fatal({ err: e }, `${name} could not start`);
    process.exit(1);
  }
  api.logger.info({ url: `http://${resolved.host ?? '127.0.0.1'}:${api.port}/graphql` }, 'api listening');
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      api.logger.info({ signal }, 'shutting down');
      api.close().then(() => {
        api.logger.info('shut down cleanly');
        process.exit(0);
      }, (e: Error) => {
        api.logger.error({ err: e }, 'shutdown failed');
        process.exit(1);
      });
    });
  }
  return api;
}
