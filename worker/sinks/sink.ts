// What every cache-invalidation sink offers the ballast_deliver_cache_invalidations task.

export type Sink = {
  /** Short name for logs and errors: http, redis, log. */
  name: string;
  /**
   * Invalidate these tags (distinct, 1..512 characters each); resolves when the sink accepted them all.
   * Throws TagsRejectedError when the sink refused the request for something in it (retrying the same
   * tags cannot help), any other error when the sink could not be reached or failed (retry later).
   */
  deliver(tags: string[]): Promise<void>;
  close(): Promise<void>;
};

/**
 * The sink answered, and refused these tags for good (an HTTP 4xx such as 400 or 422). The task splits
 * the batch to find the tags it concerns; a single refused tag becomes a dead letter at once. Not a sign
 * that the sink is down, so it does not count towards the circuit breaker.
 */
export class TagsRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TagsRejectedError';
  }
}
