// `ballast`, the library: install, upgrade and remove the kit from your own code, check and watch a
// database, and call the SQL API with types. The worker's tasks are in `ballast/worker`, the
// PostGraphile preset and HTTP middlewares in `ballast/postgraphile`.
export { migrate, type MigrateOptions, type MigrateResult } from './migrate.ts';
export { uninstall, type UninstallOptions, type UninstallResult } from './uninstall.ts';
export { printSql } from './print_sql.ts';
export { verify, type Check } from './verify.ts';
export { status, renderStatus, thresholdsFromEnv, DEFAULT_THRESHOLDS, type Status, type StatusThresholds, type Section, type Item } from './status.ts';
export { THRESHOLD_SPECS, type Thresholds } from './thresholds.ts';
export { alerts, renderAlertRules, DEFAULT_ALERT_OPTIONS, type Alert, type AlertOptions } from './alerts.ts';
export { preflight, type PreflightResult } from './preflight.ts';
export {
  idempotencyBegin, idempotencyComplete, idempotencyRelease, registerMatview, requestRefresh, enqueueInvalidation,
  type Queryable, type IdempotencyOutcome, type Interval, type Holder,
} from './sql_api.ts';
export { BallastError, type BallastErrorCode } from './errors.ts';
export { KIT_SCHEMA, WORKER_SCHEMA, KIT_ROLES } from './constants.ts';
export { kitVersion } from './kit_files.ts';
