// The kit's files as they ship: migrations/ (numbered, never edited once released), sql/ (re-applied
// definitions, in sql/ORDER) and the version in package.json. Found from this module's own location, so
// they are the same files whether this runs from a checkout or from node_modules.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj) && JSON.parse(fs.readFileSync(pj, 'utf8')).name === 'ballast') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`ballast: cannot find the package root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export const PACKAGE_ROOT = packageRoot();

export type Migration = { id: number; name: string; file: string; body: string };
export type Definition = { name: string; body: string };

/** package.json's version: what ballast.version() reports after an install. */
export function kitVersion(root = PACKAGE_ROOT): string {
  return JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
}

/** migrations/NNNNNN-name.sql in id order; ids must run 1, 2, 3 ... without gaps. */
export function kitMigrations(root = PACKAGE_ROOT): Migration[] {
  const dir = path.join(root, 'migrations');
  const list = fs.readdirSync(dir).filter((f) => /^\d{6}-[a-z0-9-]+\.sql$/.test(f)).sort();
  return list.map((f, i) => {
    const id = Number(f.slice(0, 6));
    if (id !== i + 1) throw new Error(`ballast: migrations/${f} should be number ${i + 1}: migration ids run 1, 2, 3 ... without gaps`);
    return { id, name: f.replace(/\.sql$/, ''), file: path.join(dir, f), body: fs.readFileSync(path.join(dir, f), 'utf8') };
  });
}

/** sql/*.sql in the order sql/ORDER lists them; a file on disk that ORDER does not list is an error. */
export function kitDefinitions(root = PACKAGE_ROOT): Definition[] {
  const dir = path.join(root, 'sql');
  return orderedSqlFiles(dir).map((file) => ({ name: `sql/${path.basename(file)}`, body: fs.readFileSync(file, 'utf8') }));
}

/** The .sql files of dir in the order of dir/ORDER (one file name per line, # comments). */
export function orderedSqlFiles(dir: string): string[] {
  const order = fs.readFileSync(path.join(dir, 'ORDER'), 'utf8')
    .split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const onDisk = fs.readdirSync(dir).filter((f) => f.endsWith('.sql'));
  const unlisted = onDisk.filter((f) => !order.includes(f));
  if (unlisted.length) throw new Error(`${dir}/ORDER does not list ${unlisted.join(', ')}: add each file where it belongs`);
  const missing = order.filter((f) => !onDisk.includes(f));
  if (missing.length) throw new Error(`${dir}/ORDER lists ${missing.join(', ')}, which ${missing.length > 1 ? 'do' : 'does'} not exist`);
  return order.map((f) => path.join(dir, f));
}

/** A digest of the definitions: the installer re-applies sql/ only when it differs from the recorded one. */
export function definitionsDigest(defs: Definition[], version: string): string {
  const h = crypto.createHash('sha1');
  h.update(version + '\0');
  for (const d of defs) h.update(d.name + '\0' + d.body + '\0');
  return h.digest('hex');
}

/** Orders two x.y.z[-pre] versions: negative when a < b. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [main, pre = ''] = v.split('-', 2);
    return { nums: main.split('.').map((n) => Number(n) || 0), pre };
  };
  const x = parse(a), y = parse(b);
  for (let i = 0; i < 3; i++) {
    const d = (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
    if (d !== 0) return d;
  }
  if (x.pre === y.pre) return 0;
  if (!x.pre) return 1;
  if (!y.pre) return -1;
  return x.pre < y.pre ? -1 : 1;
}
