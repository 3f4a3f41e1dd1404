// npm run verify: prints ballast.verify_migration_success() and exits 1 when any check is not ok.
import { dbConfig } from './lib/config.ts';
import { connect } from './lib/bootstrap.ts';
import { printTable } from './lib/table.ts';

type Row = { check_name: string; ok: boolean; detail: string };

export async function verify(url: string): Promise<Row[]> {
  const client = await connect(url);
  try {
    return (await client.query<Row>('select check_name, ok, detail from ballast.verify_migration_success()')).rows;
  } finally {
    await client.end();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await verify(dbConfig().ownerUrl);
  printTable(['check', 'ok', 'detail'], rows.map((r) => [r.check_name, r.ok ? 'ok' : 'NOT OK', r.detail ?? '']));
  const bad = rows.filter((r) => !r.ok).length;
  process.stdout.write(`${rows.length - bad} passed, ${bad} failed\n`);
  process.exitCode = bad === 0 ? 0 : 1;
}
