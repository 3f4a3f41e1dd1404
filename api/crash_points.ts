// Fault injection for the tests that prove exactly-once across a crash (test/idempotency_crash.test.ts):
// the process SIGKILLs itself at a named point of a keyed mutation, as a power cut or an OOM kill would.
//
// Not a setting, and not in BallastOptions: it is read once from the environment here, and honoured only
// when BALLAST_TEST_HOOKS=1 is set as well, so a stray BALLAST_TEST_CRASH_AT alone does nothing.
export const CRASH_POINTS = ['before-claim', 'after-claim', 'after-statements', 'after-commit'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

const armed: string | null = process.env.BALLAST_TEST_HOOKS === '1' ? (process.env.BALLAST_TEST_CRASH_AT ?? null) : null;

/** Dies here, at once and without cleanup, when the tests armed this point. */
export function crashPoint(point: CrashPoint): void {
  if (armed === point) process.kill(process.pid, 'SIGKILL');
}
