// Tools the operator tests need that are not npm packages: promtool (from Debian's `prometheus` package,
// extracted into .ballast/ without installing it, so no Prometheus server is started) and Debian's
// chromium (installed with apt-get). Each throws an Error that says how to fix it by hand.
import fs from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { ROOT } from './config.ts';

const TOOLS = path.join(ROOT, '.ballast', 'tools');
export const CHROMIUM = '/usr/bin/chromium';

function canApt(): boolean {
  return process.getuid?.() === 0 && fs.existsSync('/usr/bin/apt-get');
}

/** Path of a working promtool: PROMTOOL, one on PATH, or one extracted from the Debian package into .ballast/tools. */
export async function ensurePromtool(): Promise<string> {
  if (process.env.PROMTOOL) return process.env.PROMTOOL;
  const extracted = path.join(TOOLS, 'prometheus', 'usr', 'bin', 'promtool');
  if (fs.existsSync(extracted)) return extracted;
  for (const d of (process.env.PATH ?? '').split(':')) if (d && fs.existsSync(path.join(d, 'promtool'))) return path.join(d, 'promtool');
  if (!canApt()) {
    throw new Error('promtool is missing and apt-get is not usable here (needs root and Debian). Install it by hand: '
      + 'apt-get download prometheus && dpkg-deb -x prometheus_*.deb /tmp/p && export PROMTOOL=/tmp/p/usr/bin/promtool');
  }
  const dl = path.join(TOOLS, 'deb');
  fs.mkdirSync(dl, { recursive: true });
  const download = () => $({ cwd: dl, quiet: true, nothrow: true })`apt-get download prometheus`;
  let r = await download();
  if (r.exitCode !== 0) {
    await $({ quiet: true, nothrow: true })`apt-get update`;
    r = await download();
  }
  const deb = fs.readdirSync(dl).find((f) => /^prometheus_.*\.deb$/.test(f));
  if (r.exitCode !== 0 || !deb) {
    throw new Error(`could not download the Debian package prometheus (apt-get download exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-3).join(' ')}. `
      + 'Set PROMTOOL to a promtool binary, or fix apt (apt-get update).');
  }
  const x = await $({ quiet: true, nothrow: true })`dpkg-deb -x ${path.join(dl, deb)} ${path.join(TOOLS, 'prometheus')}`;
  if (x.exitCode !== 0 || !fs.existsSync(extracted)) throw new Error(`dpkg-deb -x ${deb} failed: ${x.stderr.trim()}`);
  return extracted;
}

/** /usr/bin/chromium, installing Debian's chromium package when it is missing. */
export async function ensureChromium(): Promise<string> {
  if (fs.existsSync(CHROMIUM)) return CHROMIUM;
  if (!canApt()) throw new Error(`${CHROMIUM} is missing and apt-get is not usable here: run (as root) apt-get update && apt-get install -y chromium`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => $({ env, quiet: true, nothrow: true })`apt-get install -y --no-install-recommends chromium`;
  let r = await install();
  if (r.exitCode !== 0) {
    await $({ env, quiet: true, nothrow: true })`apt-get update`;
    r = await install();
  }
  if (r.exitCode !== 0 || !fs.existsSync(CHROMIUM)) {
    throw new Error(`could not install Debian's chromium (apt-get exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-3).join(' ')}. Run: apt-get update && apt-get install -y chromium`);
  }
  return CHROMIUM;
}
