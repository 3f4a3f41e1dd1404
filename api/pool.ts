// The API's connection pool (as ballast_authenticator): size, connection timeout, and the session
// timeouts every connection starts with (statement_timeout, lock_timeout,
// idle_in_transaction_session_timeout), all from configuration. A request never waits for a
// connection longer than DB_CONNECT_TIMEOUT_MS: it fails and the API answers 503.
import pg from 'pg';
import type { Logger } from 'pino';
import type { ApiConfig } from './config.ts';

export const APPLICATION_NAME = 'ballast-api';

export function makePool(config: ApiConfig, logger: Logger): pg.Pool {
  const pool = new pg.Pool({
    connectionString: config.authUrl,
    application_name: APPLICATION_NAME,
    max: config.poolMax,
    connectionTimeoutMillis: config.dbConnectTimeoutMs,
    idleTimeoutMillis: config.dbPoolIdleTimeoutMs,
    statement_timeout: config.dbStatementTimeoutMs || undefined,
    lock_timeout: config.dbLockTimeoutMs || undefined,
    idle_in_transaction_session_timeout: config.dbIdleInTransactionTimeoutMs || undefined,
    keepAlive: true,
  });
  // An idle connection that the server drops (restart, admin shutdown) is removed from the pool; the
  // error must be handled or it would crash the process.
  pool.on('error', (e) => logger.warn({ err: e }, 'idle database connection failed'));
  // A connection that dies while checked out but between queries (PostgreSQL stopped mid-transaction)
  // emits 'error' on its client, and pg-pool listens only on idle clients: without this listener the
  // process would crash. The query in progress, or the next one, fails and is handled as usual.
  pool.on('connect', (client) => {
    client.on('error', (e) => logger.debug({ err: e }, 'pooled database connection failed'));
  });
  return pool;
}
