// Redis sink: the application records each cached key under the sets of the tags it depends on
// (SADD <prefix><tag> <key>); invalidating a tag deletes those keys (UNLINK) and removes exactly the
// members it read from the set (SREM), so a key cached again meanwhile stays listed for next time.
import { Redis } from 'ioredis';
import type { Sink } from './sink.ts';

export type RedisSinkOptions = { url: string; tagPrefix: string; timeoutMs: number };

const CHUNK = 1000; // keys per UNLINK / SREM command

export function redisSink(opts: RedisSinkOptions): Sink {
  const client = new Redis(opts.url, {
    lazyConnect: true,
    connectTimeout: opts.timeoutMs,
    commandTimeout: opts.timeoutMs,
    maxRetriesPerRequest: 1,
  });
  client.on('error', () => {}); // reported through the failed delivery; ioredis reconnects by itself
  let connecting: Promise<void> | undefined;
  const where = (() => { const u = new URL(opts.url); return `${u.hostname}:${u.port || 6379}`; })();

  async function ready(): Promise<void> {
    if (client.status === 'ready') return;
    if (client.status === 'wait' || client.status === 'end') connecting ??= client.connect().finally(() => { connecting = undefined; });
    if (connecting) await connecting;
  }

  return {
    name: 'redis',
    async deliver(tags) {
      try {
        await ready();
        const read = client.pipeline();
        for (const tag of tags) read.smembers(opts.tagPrefix + tag);
        const members = (await read.exec()) ?? [];
        const write = client.pipeline();
        let commands = 0;
        members.forEach(([err, keys], i) => {
          if (err) throw err;
          const list = keys as string[];
          for (let j = 0; j < list.length; j += CHUNK) {
            const chunk = list.slice(j, j + CHUNK);
            write.unlink(...chunk);
            write.srem(opts.tagPrefix + tags[i], ...chunk);
            commands += 2;
          }
        });
        if (commands === 0) return;
        for (const [err] of (await write.exec()) ?? []) if (err) throw err;
      } catch (e) {
        throw new Error(`redis sink (${where}): ${(e as Error).message}`);
      }
    },
    async close() {
      client.disconnect();
    },
  };
}
