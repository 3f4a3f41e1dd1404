// verify(): ballast.verify_migration_success() as rows, one per check; `ballast verify` prints them.
import pg from 'pg';

export type Check = { check_name: string; ok: boolean; detail: string };

/** Every check of verify_migration_success(), in name order. */
export async function verify(databaseUrl: string): Promise<Check[]> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'ballast verify', connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return (await client.query<Check>('select check_name, ok, detail from ballast.verify_migration_success()')).rows;
  } finally {
    await client.end();
  }
}
