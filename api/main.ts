// Entry point of the API process: configuration (all problems at once, exit 2), logger, server, signals.
import { loadApiConfig, type ApiConfig } from './config.ts';
import { makeLogger } from './logger.ts';
import { startApi } from './server.ts';

let config: ApiConfig;
try {
  config = loadApiConfig();
} catch (e) {
  process.stderr.write(`ballast api: ${(e as Error).message}\n`);
  process.exit(2);
}
const logger = makeLogger(config.logLevel);
const api = await startApi(config, logger).catch((e: Error) => {
  logger.fatal({ err: e }, 'api could not start');
  process.exit(1);
});
logger.info({ url: `http://${config.host}:${api.port}/graphql` }, 'api listening');

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'shutting down');
    api.close().then(() => {
      logger.info('shut down cleanly');
      process.exit(0);
    }, (e: Error) => {
      logger.error({ err: e }, 'shutdown failed');
      process.exit(1);
    });
  });
}
