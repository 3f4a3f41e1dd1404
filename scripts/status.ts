// npm run status [-- --json]: `ballast status` on the example's database (src/status.ts). Exit 1 when
// any item is failing (the FAIL rows); colours only when stdout is a terminal.
import { parseArgs } from 'node:util';
import { dbConfig } from './lib/config.ts';
import { fail } from './lib/output.ts';
import { renderStatus, status, thresholdsFromEnv, type Status } from '../src/status.ts';

const { values } = parseArgs({ options: { json: { type: 'boolean', default: false } } });
let st: Status;
try {
  st = await status(dbConfig().ownerUrl, thresholdsFromEnv());
} catch (e) {
  fail(`could not read the status: ${(e as Error).message}`);
}
process.stdout.write(values.json ? JSON.stringify(st, null, 2) + '\n' : renderStatus(st, process.stdout.isTTY === true));
process.exit(st.failing ? 1 : 0);
