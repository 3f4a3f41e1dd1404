// A circuit breaker per sink: after `failureThreshold` consecutive failed deliveries it opens and the
// worker stops sending to that sink for `cooldownMs`; then one probe delivery is let through (half-open):
// success closes it, failure opens it again for another cooldown. State lives in the worker process.

export type BreakerState = 'closed' | 'open' | 'half_open';

export type BreakerOptions = {
  name: string;
  failureThreshold: number;
  cooldownMs: number;
  now?: () => number;
  onChange?: (change: { name: string; from: BreakerState; to: BreakerState; failures: number; retryAt?: number }) => void;
};

export class CircuitBreaker {
  readonly name: string;
  private readonly failureThreshold: number;
  private readonly cooldownMs: number;
  private readonly now: () => number;
  private readonly onChange: BreakerOptions['onChange'];
  private current: BreakerState = 'closed';
  private failures = 0; // consecutive
  private openedAt = 0;
  private probing = false;

  constructor(opts: BreakerOptions) {
    if (!Number.isInteger(opts.failureThreshold) || opts.failureThreshold < 1) {
      throw new Error(`circuit breaker ${opts.name}: failureThreshold must be a whole number of at least 1, got ${opts.failureThreshold}`);
    }
    if (!Number.isFinite(opts.cooldownMs) || opts.cooldownMs < 0) {
      throw new Error(`circuit breaker ${opts.name}: cooldownMs must be 0 or more, got ${opts.cooldownMs}`);
    }
    this.name = opts.name;
    this.failureThreshold = opts.failureThreshold;
    this.cooldownMs = opts.cooldownMs;
    this.now = opts.now ?? Date.now;
    this.onChange = opts.onChange;
  }

  get state(): BreakerState {
    return this.current;
  }

  /** When an open breaker lets the next probe through (ms since the epoch); 0 unless open. */
  get retryAt(): number {
    return this.current === 'open' ? this.openedAt + this.cooldownMs : 0;
  }

  /**
   * May a delivery go to this sink now? 'go' when closed; 'probe' for the single trial delivery of a
   * half-open breaker (report its outcome with success()/failure()); false while open or while a probe
   * is in flight.
   */
  acquire(): 'go' | 'probe' | false {
    if (this.current === 'closed') return 'go';
    if (this.current === 'open') {
      if (this.now() < this.retryAt) return false;
      this.transition('half_open');
    }
    if (this.probing) return false;
    this.probing = true;
    return 'probe';
  }

  success(): void {
    this.failures = 0;
    this.probing = false;
    if (this.current !== 'closed') this.transition('closed');
  }

  failure(): void {
    this.failures += 1;
    this.probing = false;
    if (this.current === 'half_open' || (this.current === 'closed' && this.failures >= this.failureThreshold)) {
      this.openedAt = this.now();
      this.transition('open');
    }
  }

  private transition(to: BreakerState): void {
    const from = this.current;
    this.current = to;
    this.onChange?.({ name: this.name, from, to, failures: this.failures, retryAt: to === 'open' ? this.retryAt : undefined });
  }
}
