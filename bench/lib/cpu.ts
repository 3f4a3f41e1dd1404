// CPU accounting from /proc, for figures that hold up on a noisy (virtual) machine: the CPU time the
// database server's processes used, and the share of the machine the hypervisor stole meanwhile.
// Linux only; everything returns null elsewhere (or for a server that is not on this machine).
import fs from 'node:fs';
import path from 'node:path';
import type { DbConfig } from '../../scripts/lib/config.ts';

const TICK_MS = 10; // USER_HZ = 100 on Linux

/** The fields of /proc/<pid>/stat after the command name (so index 1 is field 4, ppid), or null. */
function statFields(pid: number): string[] | null {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  } catch {
    return null; // gone, or not readable
  }
}

/** Sum of the given stat fields in ms (11 utime, 12 stime, 13 cutime, 14 cstime). */
function ticksMs(f: string[], ...idx: number[]): number {
  return idx.reduce((ms, i) => ms + Number(f[i]) * TICK_MS, 0);
}

/** utime + stime of one process in ms, or null when it is gone or unreadable. */
export function processCpuMs(pid: number): number | null {
  const f = statFields(pid);
  return f && ticksMs(f, 11, 12);
}

/** The postmaster pid of the cluster when this project runs it on this machine (postmaster.pid), or null. */
export function localPostmaster(cfg: Pick<DbConfig, 'managed' | 'dataDir'>): number | null {
  if (!cfg.managed) return null;
  try {
    const pid = Number(fs.readFileSync(path.join(cfg.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * µs of CPU per unit of work between two readings in ms; NaN when a reading is missing, there was no
 * work, or the second reading is lower (a process's time counted in neither reading: no figure).
 */
export function cpuUsPer(beforeMs: number | null, afterMs: number | null, units: number): number {
  return beforeMs === null || afterMs === null || afterMs < beforeMs || units <= 0 ? NaN : ((afterMs - beforeMs) * 1000) / units;
}

/**
 * CPU ms a local cluster has used so far: the postmaster's own time and that of its children that have
 * ended (the kernel adds a reaped child's time to its parent: cutime, cstime), plus the live children's
 * (backends, walwriter, checkpointer, ...). The difference of two readings is what the server spent in
 * between, connections that closed meanwhile included.
 */
export function serverCpuMs(postmaster: number): number | null {
  const own = statFields(postmaster);
  if (!own) return null;
  let ms = ticksMs(own, 11, 12, 13, 14);
  for (const entry of fs.readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === postmaster) continue;
    const f = statFields(pid); // null: it ended while we looked, and its time is now the postmaster's cutime
    if (f && Number(f[1]) === postmaster) ms += ticksMs(f, 11, 12);
  }
  return ms;
}

/** Machine-wide jiffies from /proc/stat: total and stolen (the hypervisor ran someone else). */
export function machineTicks(): { total: number; steal: number } | null {
  try {
    const cols = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
    return { total: cols.reduce((a, b) => a + b, 0), steal: cols[7] ?? 0 };
  } catch {
    return null;
  }
}

/** Percent of the machine's time stolen between two machineTicks() readings, or null. */
export function stealPercent(before: { total: number; steal: number } | null, after: { total: number; steal: number } | null): number | null {
  if (!before || !after || after.total <= before.total) return null;
  return (100 * (after.steal - before.steal)) / (after.total - before.total);
}
