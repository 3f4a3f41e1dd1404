// uninstall(): remove what the installer made: the triggers the kit put on your tables, its pg_cron jobs,
// schema ballast, graphile-worker's ballast_worker schema and, when asked, the roles it created. It
// refuses while the audit log holds rows (unless told to discard them) and while objects of yours still
// depend on the kit (a policy calling ballast.current_org_id(), a view over a kit view): it lists them
// and changes nothing, rather than letting DROP ... CASCADE take them with it.
import pg from 'pg';
import { KIT_SCHEMA, WORKER_SCHEMA } from './constants.ts';
import { KIT_CRON_JOBS_SQL } from './install_sql.ts';
import { inInstallTransaction } from './install_transaction.ts';
import { BallastError } from './errors.ts';

export type UninstallOptions = {
  databaseUrl: string;
  /** Also drop the roles the installer created (ballast.created_roles). */
  roles?: boolean;
  /** Uninstall even though ballast.audit_log holds rows (they are lost). */
  discardAuditLog?: boolean;
  workerSchema?: string;
};

export type UninstallResult = {
  installed: boolean;
  triggers: string[];
  cronJobs: string[];
  schemas: string[];
  roles: string[];
  rolesKept: { role: string; reason: string }[];
  auditRowsDiscarded: number;
};

/** SQL: the schema named by col is the kit's (ballast, or ballast_ something such as ballast_worker). */
const ours = (col: string) => `(${col} = '${KIT_SCHEMA}' or ${col} like '${KIT_SCHEMA}\\_%')`;

export async function uninstall(opts: UninstallOptions): Promise<UninstallResult> {
  const workerSchema = opts.workerSchema ?? WORKER_SCHEMA;
  const result: UninstallResult = { installed: false, triggers: [], cronJobs: [], schemas: [], roles: [], rolesKept: [], auditRowsDiscarded: 0 };
  return inInstallTransaction(opts.databaseUrl, 'ballast uninstall', async (client) => {
    const present = await client.query<{ kit: boolean; migrations: boolean }>(
      `select to_regnamespace($1) is not null as kit, to_regclass($1 || '.migrations') is not null as migrations`, [KIT_SCHEMA]);
    if (!present.rows[0].kit) return result;
    if (!present.rows[0].migrations) {
      throw new BallastError('NOT_INSTALLED', `schema ${KIT_SCHEMA} exists but was not made by the ballast installer (no ${KIT_SCHEMA}.migrations): nothing was removed.`);
    }
    result.installed = true;
    if (await exists(client, `${KIT_SCHEMA}.audit_log`)) {
      const n = Number((await client.query<{ n: string }>(`select count(*) as n from ${KIT_SCHEMA}.audit_log`)).rows[0].n);
      if (n > 0 && !opts.discardAuditLog) {
        throw new BallastError('AUDIT_LOG_NOT_EMPTY', `ballast.audit_log holds ${n} rows: export them first, or run uninstall with --discard-audit-log to lose them. Nothing was removed.`);
      }
      result.auditRowsDiscarded = n;
    }
    const roles = opts.roles && (await exists(client, `${KIT_SCHEMA}.created_roles`))
      ? (await client.query<{ role_name: string }>(`select role_name from ${KIT_SCHEMA}.created_roles order by 1`)).rows.map((r) => r.role_name)
      : [];

    // 1. the triggers the kit installed on tables outside its schemas (their functions are the kit's)
    const triggers = await client.query<{ tgname: string; tbl: string }>(`
      select t.tgname, t.tgrelid::regclass::text as tbl
      from pg_trigger t
      join pg_proc p on p.oid = t.tgfoid
      join pg_class c on c.oid = t.tgrelid
      join pg_namespace tn on tn.oid = c.relnamespace
      where not t.tgisinternal and p.pronamespace = $1::text::regnamespace
        and not ${ours('tn.nspname')}
      order by 2, 1`, [KIT_SCHEMA]);
    for (const t of triggers.rows) {
      await client.query(`drop trigger ${client.escapeIdentifier(t.tgname)} on ${t.tbl}`);
      result.triggers.push(`${t.tgname} on ${t.tbl}`);
    }

    // 2. refuse while anything of the user's still depends on the kit
    const dependents = await client.query<{ what: string }>(`
      with kit(classid, objid) as (
        select 'pg_class'::regclass, c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace where ${ours('n.nspname')}
        union all select 'pg_proc'::regclass, p.oid from pg_proc p join pg_namespace n on n.oid = p.pronamespace where ${ours('n.nspname')}
        union all select 'pg_type'::regclass, t.oid from pg_type t join pg_namespace n on n.oid = t.typnamespace where ${ours('n.nspname')}
        union all select 'pg_namespace'::regclass, n.oid from pg_namespace n where ${ours('n.nspname')}
      )
      select distinct coalesce(
               -- a view depends through its rewrite rule: name the view
               (select format('%s %s', v.type, v.identity) from pg_rewrite r, pg_identify_object('pg_class'::regclass, r.ev_class, 0) v
                 where d.classid = 'pg_rewrite'::regclass and r.oid = d.objid),
               format('%s %s', o.type, o.identity)) as what
      from pg_depend d
      join kit k on k.classid = d.refclassid and k.objid = d.refobjid
      cross join lateral pg_identify_object(d.classid, d.objid, d.objsubid) o
      cross join lateral (select coalesce(o.schema, (
        -- policies, triggers, rules, defaults and constraints belong to their table's schema
        select n.nspname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.oid = case d.classid
          when 'pg_policy'::regclass then (select polrelid from pg_policy where oid = d.objid)
          when 'pg_trigger'::regclass then (select tgrelid from pg_trigger where oid = d.objid)
          when 'pg_rewrite'::regclass then (select ev_class from pg_rewrite where oid = d.objid)
          when 'pg_attrdef'::regclass then (select adrelid from pg_attrdef where oid = d.objid)
          when 'pg_constraint'::regclass then (select conrelid from pg_constraint where oid = d.objid)
        end), '') as s) x
      where d.deptype in ('n', 'a') and not ${ours('x.s')}
        and d.classid <> 'pg_default_acl'::regclass
      order by 1`);
    if (dependents.rowCount) {
      throw new BallastError('DEPENDENTS', `these objects of yours use ballast; drop or change them first (uninstall would otherwise drop them with the schema). Nothing was removed:\n  ${dependents.rows.map((r) => r.what).join('\n  ')}`);
    }

    // 3. its pg_cron jobs
    if (await schemaExists(client, 'cron')) {
      const jobs = await client.query<{ jobid: string; jobname: string }>(KIT_CRON_JOBS_SQL);
      for (const j of jobs.rows) {
        await client.query('select cron.unschedule($1::bigint)', [j.jobid]);
        result.cronJobs.push(j.jobname);
      }
    }

    // 4. its schemas
    for (const s of [KIT_SCHEMA, workerSchema]) {
      if (await schemaExists(client, s)) {
        await client.query(`drop schema ${client.escapeIdentifier(s)} cascade`);
        result.schemas.push(s);
      }
    }

    // 5. the roles it created, each in a savepoint: one still used elsewhere (another database) stays
    for (const r of roles) {
      await client.query('savepoint drop_role');
      try {
        await client.query(`drop role if exists ${client.escapeIdentifier(r)}`);
        await client.query('release savepoint drop_role');
        result.roles.push(r);
      } catch (e) {
        await client.query('rollback to savepoint drop_role');
        result.rolesKept.push({ role: r, reason: (e as Error).message });
      }
    }
    return result;
  });
}

async function exists(client: pg.Client, rel: string): Promise<boolean> {
  return (await client.query<{ ok: boolean }>('select to_regclass($1) is not null as ok', [rel])).rows[0].ok;
}
async function schemaExists(client: pg.Client, s: string): Promise<boolean> {
  return (await client.query<{ ok: boolean }>('select to_regnamespace($1) is not null as ok', [s])).rows[0].ok;
}
