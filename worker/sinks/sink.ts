// What every cache-invalidation sink offers the ballast_deliver_cache_invalidations task.

export type Sink = {
  /** Short name for logs and errors: http, redis, log. */
  name: string;
  /** Invalidate these tags (distinct, 1..512 characters each); resolves when the sink accepted them all. */
  deliver(tags: string[]): Promise<void>;
  close(): Promise<void>;
};
