// npm run verify: prints ballast.verify_migration_success() and exits 1 when any check is not ok.
import { dbConfig } from './lib/config.ts';
import { printTable } from '../src/table.ts';
import { verify } from '../src/verify.ts';

export { verify };

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await verify(dbConfig().ownerUrl);
  printTable(['check', 'ok', 'detail'], rows.map((r) => [r.check_name, r.ok ? 'ok' : 'NOT OK', r.detail ?? '']));
  const bad = rows.filter((r) => !r.ok).length;
  process.stdout.write(`${rows.length - bad} passed, ${bad} failed\n`);
  process.exitCode = bad === 0 ? 0 : 1;
}
