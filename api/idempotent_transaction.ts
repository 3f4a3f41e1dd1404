// The withPgClient a keyed mutation's operation runs on (api/middleware/idempotency.ts, api/preset.ts): one
// pooled client, already inside the transaction that claimed the key, which the middleware commits after
// storing the response.
//
// It behaves as @dataplan/pg's pg adaptor does for a client already in a transaction
// (makeWithPgClientViaPgClientAlreadyInTransaction): calls run one at a time; each call's pgSettings are
// set with set_config(…, true); each call, and each withTransaction in it, is a savepoint, so a failed
// mutation field or read rolls back to its savepoint and the rest of the operation goes on, as it would on
// its own transaction. What differs is the number of round trips. The adaptor sends every savepoint, release
// and set_config as a statement of its own (a one-field mutation: 6 round trips besides the claim); here:
//   - the claim's message already carries the request's settings and opens the first call's savepoint and
//     that of its first withTransaction (opening(), sent with BEGIN and the claim); a call that brings other
//     settings releases those and sets its own;
//   - any other savepoint travels with the next statement; one that saw no statement is never sent;
//   - `release savepoint` travels with the next statement, or with the final store-and-COMMIT.
// A one-field mutation costs 3 round trips in all: BEGIN + claim + settings + savepoints, its statement,
// then the stored response + COMMIT.
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

/** Savepoints opening() opens: the first call's, and that of the first withTransaction in it. */
const PREOPENED = 2;

/** What to send after BEGIN and the claim: the request's settings, then the first savepoints. */
export function opening(settings: Record<string, string>): string {
  return `${settingsStatement(Object.entries(settings))}; ${Array.from({ length: PREOPENED }, (_, i) => `savepoint tx${i}`).join('; ')}`;
}

/** The request's transaction on `raw`, on which BEGIN, the claim and opening(settings) have been sent. */
export function requestTransaction(raw: pg.PoolClient, settings: Record<string, string>): RequestTransaction {
  // @dataplan/pg's own client for one already in a transaction: used for its query(), which names statements
  // through its prepared-statement cache as PostGraphile does elsewhere and collects notices.
  let adaptorClient: NodePostgresPgClient | null = null;
  const adaptor = async (): Promise<NodePostgresPgClient> =>
    adaptorClient ??= await makeWithPgClientViaPgClientAlreadyInTransaction(raw, true)(null, (c) => c);

  let waiting: string[] = []; // statements to send in front of the next one
  let applied: string | null = JSON.stringify(Object.entries(settings)); // the settings in force
  let calls: Promise<unknown> = Promise.resolve(); // withPgClient calls run one at a time
  // Until a statement is sent, levels below PREOPENED are adopted in order from opening() instead of sent.
  let fresh = true;
  let adopted = 0;

  /** Sends the waiting statements and `text` as one message; results of `text` only. */
  async function sendWaiting(text: string | null): Promise<pg.QueryResult[]> {
    const before = waiting;
    waiting = [];
    fresh = false;
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
        fresh = false; // a statement runs: later savepoints are opened, not adopted
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
    if (fresh && level === adopted && level < PREOPENED) {
      adopted++;
      try {
        const result = await body();
        waiting.push(`release savepoint ${name}`);
        return result;
      } catch (e) {
        waiting.push(`rollback to savepoint ${name}`, `release savepoint ${name}`);
        throw e;
      }
    }
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
      const entries = Object.entries(pgSettings ?? {}).filter((e): e is [string, string] => e[1] != null).map(([k, v]): [string, string] => [k, String(v)]);
      const json = JSON.stringify(entries);
      if (entries.length && json !== applied) {
        // other settings than opening() set: leave its savepoints (nothing ran in them), set these outside any
        if (fresh) waiting.push('release savepoint tx0');
        fresh = false;
        waiting.push(settingsStatement(entries));
        applied = json;
      }
      try {
        return await savepoint(0, async () => callback(clientAt(1)));
      } finally {
        fresh = false; // opening()'s savepoints belong to the first call alone
      }
    });
    calls = run.catch(() => undefined);
    return run;
  };
  return { withPgClient, send: (text) => sendWaiting(text) };
}

function settingsStatement(entries: [string, string][]): string {
  if (entries.length === 0) return 'select';
  return `select ${entries.map(([k, v]) => `set_config(${literal(k)}, ${literal(v)}, true)`).join(', ')}`;
}

/** A SQL string literal (standard_conforming_strings on, as in every supported PostgreSQL). */
function literal(v: string): string {
  if (v.includes('\0')) throw new Error('a setting cannot contain a NUL character');
  return v.includes('\\') ? `E'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'` : `'${v.replace(/'/g, "''")}'`;
}
