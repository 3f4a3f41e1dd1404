// Names the kit owns, written once. Everything the kit creates is named ballast or starts with ballast_.

/** The kit's schema: its tables, functions, views and generated trigger functions. */
export const KIT_SCHEMA = 'ballast';
/** graphile-worker's schema for ballast's own worker, apart from any graphile_worker of the app's. */
export const WORKER_SCHEMA = 'ballast_worker';
/** pg_advisory_xact_lock key that serialises installers, uninstallers and print-sql scripts (hashtext of it). */
export const INSTALL_LOCK = 'ballast install';
/** pg_cron jobs the kit schedules are named 'ballast_…' or 'ballast …'; uninstall removes exactly those. */
export const CRON_JOB_NAME = /^ballast[_ ]/;

/** The roles the kit grants to. Created when missing (never altered when present). */
export const KIT_ROLES = {
  /** The API's login role: NOINHERIT, may switch to the visitor roles. LOGIN only with a password given. */
  authenticator: 'ballast_authenticator',
  anonymous: 'ballast_anonymous',
  member: 'ballast_member',
  admin: 'ballast_admin',
  /**
   * ballast's worker's login role: may claim, ack and fail cache-invalidation deliveries, record its
   * heartbeat, read the refresh log's report and run graphile-worker's jobs in WORKER_SCHEMA; nothing else
   * (no kit table, no DDL, no user schema). LOGIN only with a password given.
   */
  worker: 'ballast_worker_login',
} as const;
export const VISITOR_ROLES = [KIT_ROLES.anonymous, KIT_ROLES.member, KIT_ROLES.admin] as const;
