// Child processes that start and stop together: each in its own process group, so a terminal's Ctrl-C
// reaches only us and we stop them in order (API and worker first, then the database).
import { spawn, type ChildProcess } from 'node:child_process';
import { log } from './output.ts';

export type Child = { name: string; proc: ChildProcess; exited: Promise<number | null> };

export function startChild(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv): Child {
  const proc = spawn(cmd, args, { env, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  return { name, proc, exited };
}

/** SIGTERM each child's process group, wait up to graceMs, then SIGKILL what is left. */
export async function stopChildren(children: Child[], graceMs = 15_000): Promise<void> {
  for (const c of children) {
    if (c.proc.exitCode === null && c.proc.pid) {
      try { process.kill(-c.proc.pid, 'SIGTERM'); } catch { /* already gone */ }
    }
  }
  const timer = setTimeout(() => {
    for (const c of children) {
      if (c.proc.exitCode === null && c.proc.pid) {
        log(`${c.name} did not stop within ${graceMs} ms; killing it`);
        try { process.kill(-c.proc.pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    }
  }, graceMs);
  await Promise.all(children.map((c) => c.exited));
  clearTimeout(timer);
}
