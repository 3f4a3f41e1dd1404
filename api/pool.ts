// The API's connection pool (as ballast_authenticator): size, connection timeout, idle timeout, all from
// configuration. A request never waits for a connection longer than DB_CONNECT_TIMEOUT_MS: it fails and
// the API answers 503.
//
// Nothing here depends on the session, so the pool works the same straight to PostgreSQL and through a
// transaction pooler (PgBouncer, pool_mode = transaction), where consecutive transactions of one client
// connection run on different server connections that other clients share:
//   - the timeouts (statement_timeout, lock_timeout, idle_in_transaction_session_timeout) are not startup
//     parameters (PgBouncer refuses unknown ones, and a session setting would stay on a shared server
//     connection): transactionSettings() gives them to every request's transaction, where PostGraphile
//     applies them with set_config(..., true) (api/preset.ts, with the pgSettings). The API's own one-statement
//     calls (health, rate limit, idempotency, trace and error-report flushes) take the role's defaults:
//     README "PgBouncer".
//   - with DB_PREPARED_STATEMENTS=off no statement is named, so none is prepared on a server connection
//     (PgBouncer 1.18 does not carry protocol-level prepared statements across server connections).
import pg from 'pg';
import type { Logger } from 'pino';
import type { ApiConfig } from './config.ts';

export const APPLICATION_NAME = 'ballast-api';

/** What the pool needs from the configuration. */
export type PoolSettings = Pick<ApiConfig, 'poolMax' | 'dbConnectTimeoutMs' | 'dbPoolIdleTimeoutMs'
  | 'dbStatementTimeoutMs' | 'dbLockTimeoutMs' | 'dbIdleInTransactionTimeoutMs' | 'dbPreparedStatements'>;

/**
 * The timeouts as settings for one transaction (milliseconds; 0 = the role's or server's default, so the
 * setting is left out). They end with the transaction, so they never reach another client of a pooler.
 */
export function transactionSettings(config: Pick<PoolSettings, 'dbStatementTimeoutMs' | 'dbLockTimeoutMs' | 'dbIdleInTransactionTimeoutMs'>): Record<string, string> {
  const settings: Record<string, string> = {};
  if (config.dbStatementTimeoutMs) settings.statement_timeout = String(config.dbStatementTimeoutMs);
  if (config.dbLockTimeoutMs) settings.lock_timeout = String(config.dbLockTimeoutMs);
  if (config.dbIdleInTransactionTimeoutMs) settings.idle_in_transaction_session_timeout = String(config.dbIdleInTransactionTimeoutMs);
  return settings;
}

/**
 * A pg client that never names a statement: a query given a `name` (PostGraphile names its SQL to cache
 * the plan; the rate limiter, trace and error-report writers name theirs) runs as the unnamed statement,
 * parsed afresh in the same round trip, and nothing is left prepared on the server connection. Use it as
 * `new pg.Pool({ Client: UnnamedStatementsClient, ... })` for any pool behind a transaction pooler.
 */
export class UnnamedStatementsClient extends pg.Client {
  // pg's overloads (text, config object, Submittable; promise or callback) all pass through unchanged,
  // except that a plain config object loses its name.
  query(...args: any[]): any {
    const config: unknown = args[0];
    if (config && typeof config === 'object' && typeof (config as { submit?: unknown }).submit !== 'function' && 'name' in config) {
      const { name: _name, ...unnamed } = config as Record<string, unknown>;
      args[0] = unnamed;
    }
    return (super.query as (...a: unknown[]) => unknown)(...args);
  }
}

/** The pool's settings but the connection string: for makePool, and for a pool PostGraphile makes (makePgService's poolConfig). */
export function poolConfig(config: PoolSettings): Omit<pg.PoolConfig, 'connectionString'> {
  return {
    application_name: APPLICATION_NAME, // PgBouncer passes it on (a parameter it tracks per client)
    max: config.poolMax,
    connectionTimeoutMillis: config.dbConnectTimeoutMs,
    idleTimeoutMillis: config.dbPoolIdleTimeoutMs,
    keepAlive: true,
    ...(config.dbPreparedStatements ? {} : { Client: UnnamedStatementsClient }),
  };
}

export function makePool(config: PoolSettings & Pick<ApiConfig, 'authUrl'>, logger: Logger): pg.Pool {
  const pool = new pg.Pool({ connectionString: config.authUrl, ...poolConfig(config) });
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
