// The withPgClient a keyed mutation's operation runs on (api/middleware/idempotency.ts, api/preset.ts): one
// pooled client, already inside the transaction that claimed the key, which the middleware commits after
// storing the response.
//
// It behaves as @dataplan/pg's pg adaptor does for a client already in a transaction
// (makeWithPgClientViaPgClientAlreadyInTransaction): calls run one at a time; each call's pgSettings are
// set with set_config(…, true); each call, and each withTransaction in it, is a savepoint, so a failed
// mutation field or read rolls back to its savepoint and the rest of the operation goes on, as it would on
// its own transaction. What differs is the number of round trips. The adaptor sends every savepoint, release
// and set_config as a statement of its own (a one-field mutation: 6 round trips on top of the claim); here
// they wait and travel in front of the next statement, in one simple-protocol message:
//   - set_config once per transaction (again only if a call brings other settings), outside any savepoint;
//   - `savepoint` opened by a call travels with its first statement; a call that sent nothing leaves none;
//   - `release savepoint` travels with the next statement, or with the final store-and-COMMIT.
// A one-field mutation then costs 2 round trips here (its savepoints, then its statement) besides the
// claim and the commit.
import type pg from 'pg';
import type { NodePostgresPgClient } from 'postgraphile/adaptors/pg';
import { makeWithPgClientViaPgClientAlreadyInTransaction } from 'postgraphile/adaptors/pg';
import type { WithPgClient } from 'postgraphile/@dataplan/pg';

type Settings = Record<string, string | undefined> | null;

export type RequestTransaction = {
  withPgClient: WithPgClient<NodePostgresPgClient>;
  /** Runs `text` (simple protocol, no parameters) after whatever is still waiting to be sent, in one round trip. */
  send: (text: string) => Promise<pg.QueryResult[]>;
};

/** The request's transaction on `raw`, a client on which BEGIN has been sent. */
export function requestTransaction(raw: pg.PoolClient): RequestTransaction {
  // @dataplan/pg's own client for one already in a transaction: used for its query(), which names statements
  // through its prepared-statement cache as PostGraphile does elsewhere and collects notices.
  let adaptorClient: NodePostgresPgClient | null = null;
  const adaptor = async (): Promise<NodePostgresPgClient> =>
    adaptorClient ??= await makeWithPgClientViaPgClientAlreadyInTransaction(raw, true)(null, (c) => c);

  let waiting: string[] = []; // statements to send in front of the next one
  let applied: string | null = null; // the settings in force, as JSON
  let calls: Promise<unknown> = Promise.resolve(); // withPgClient calls run one at a time

  /** Sends the waiting statements and `text` as one message; results of `text` only. */
  async function sendWaiting(text: string | null): Promise<pg.QueryResult[]> {
    const before = waiting;
    waiting = [];
    if (before.length === 0 && text === null) return [];
    const all = text === null ? before : [...before, text];
    const r = (await raw.query(all.join('; '))) as unknown as pg.QueryResult | pg.QueryResult[];
    const results = Array.isArray(r) ? r : [r];
    return results.slice(before.length);
  }

  function clientAt(level: number): NodePostgresPgClient {
    const client: NodePostgresPgClient = {
      rawClient: raw,
      async query(opts) {
        if (waiting.length) await sendWaiting(null);
        return (await adaptor()).query(opts);
      },
      async withTransaction(callback) {
        return savepoint(level, () => callback(clientAt(level + 1) as typeof client));
      },
    };
    return client;
  }

  async function savepoint<T>(level: number, body: () => Promise<T>): Promise<T> {
    const name = `tx${level}`;
    const open = `savepoint ${name}`;
    waiting.push(open);
    try {
      const result = await body();
      // nothing was sent since it opened: the savepoint is dropped, never sent
      if (waiting[waiting.length - 1] === open) waiting.pop();
      else waiting.push(`release savepoint ${name}`);
      return result;
    } catch (e) {
      const i = waiting.lastIndexOf(open);
      if (i >= 0) waiting.splice(i); // never sent: neither is anything after it
      else waiting.push(`rollback to savepoint ${name}`, `release savepoint ${name}`);
      throw e;
    }
  }

  const withPgClient: WithPgClient<NodePostgresPgClient> = (pgSettings: Settings, callback) => {
    const run = calls.then(async () => {
      const entries = Object.entries(pgSettings ?? {}).filter((e): e is [string, string] => e[1] != null).map(([k, v]) => [k, String(v)]);
      const json = JSON.stringify(entries);
      if (entries.length && json !== applied) {
        waiting.push(`select ${entries.map(([k, v]) => `set_config(${literal(k)}, ${literal(v)}, true)`).join(', ')}`);
        applied = json;
      }
      return savepoint(0, async () => callback(clientAt(1)));
    });
    calls = run.catch(() => undefined);
    return run;
  };
  return { withPgClient, send: (text) => sendWaiting(text) };
}

/** A SQL string literal (standard_conforming_strings on, as in every supported PostgreSQL). */
function literal(v: string): string {
  if (v.includes('\0')) throw new Error('a setting cannot contain a NUL character');
  return v.includes('\\') ? `E'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'` : `'${v.replace(/'/g, "''")}'`;
}
