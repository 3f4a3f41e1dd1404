// CPU accounting from /proc, for figures that hold up on a noisy (virtual) machine: the CPU time the
// database server's processes used, and the share of the machine the hypervisor stole meanwhile.
// Linux only; everything returns null elsewhere (or for a server that is not on this machine).
import fs from 'node:fs';
import path from 'node:path';

const TICK_MS = 10; // USER_HZ = 100 on Linux

/** utime + stime of one process in ms, or null when it is gone or unreadable. */
export function processCpuMs(pid: number): number | null {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return null;
  }
}

/** The postmaster pid of a local cluster (first line of postmaster.pid), or null. */
export function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * CPU ms a local cluster has used so far: the postmaster's own time and that of its children that have
 * ended (the kernel adds a reaped child's time to its parent: cutime, cstime), plus the live children's
 * (backends, walwriter, checkpointer, ...). The difference of two readings is what the server spent in
 * between, connections that closed meanwhile included.
 */
export function serverCpuMs(postmaster: number): number | null {
  let ms = 0;
  try {
    const own = fs.readFileSync(`/proc/${postmaster}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    ms += (Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14])) * TICK_MS; // utime stime cutime cstime
  } catch {
    return null;
  }
  for (const entry of fs.readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === postmaster) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
      if (Number(stat[1]) === postmaster) ms += (Number(stat[11]) + Number(stat[12])) * TICK_MS; // field 4: ppid
    } catch {
      // the process ended while we looked (its time is now the postmaster's cutime)
    }
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
