// The kit as a library: install, upgrade and remove schema ballast from your own code.
export { migrate, type MigrateOptions, type MigrateResult } from './migrate.ts';
export { uninstall, type UninstallOptions, type UninstallResult } from './uninstall.ts';
export { printSql } from './print_sql.ts';
export { BallastError, type BallastErrorCode } from './errors.ts';
export { KIT_SCHEMA, WORKER_SCHEMA, KIT_ROLES } from './constants.ts';
export { kitVersion } from './kit_files.ts';
