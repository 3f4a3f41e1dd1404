// The admin page's script: plain ES module, no build step. The token lives in sessionStorage (this tab
// only); every read goes through /graphql with it, so the database decides what is visible.
const TOKEN_KEY = 'ballast.admin.token';
const $ = (sel) => document.querySelector(sel);

const AUDIT_QUERY = `query AdminAuditLog($tableName: String, $actorId: UUID, $requestId: String, $since: Datetime, $until: Datetime, $first: Int!, $after: Cursor) {
  auditLog(tableName: $tableName, actorId: $actorId, requestId: $requestId, since: $since, until: $until, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { rowId occurredAt tableName op recordId changedColumns actorId actorName requestId oldValues newValues }
  }
}`;
const HEALTH_QUERY = 'query AdminHealth { operationsHealth }';

let token = sessionStorage.getItem(TOKEN_KEY);
let filters = {};
let cursors = [null]; // cursors[i]: the `after` of page i
let page = 0;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)));
  return e;
}

function claimsOf(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
  } catch {
    return null;
  }
}

class Denied extends Error {
  constructor(message, hint, checks) { super(message); this.hint = hint; this.checks = checks; }
}

async function graphql(query, variables = {}) {
  const res = await fetch('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  let body;
  try { body = await res.json(); } catch { throw new Error(`the API answered ${res.status} without JSON`); }
  if (res.status === 401) throw new Denied(body.errors?.[0]?.message ?? 'the token was refused', 'Sign in again with a valid token.', []);
  const err = body.errors?.[0];
  if (err) {
    if (err.extensions?.code === '42501') throw new Denied(err.message, err.extensions.hint?.message ?? err.extensions.hint ?? '', err.extensions.hint?.failed ?? []);
    throw new Error(err.message);
  }
  if (!res.ok) throw new Error(`the API answered ${res.status}`);
  return body.data;
}

function show(id, visible) { $(id).hidden = !visible; }

function showDenied(e) {
  show('#denied', true);
  show('#audit', false);
  show('#health', false);
  $('#denied-message').textContent = e.message;
  $('#denied-hint').textContent = e.hint || 'no hint was given';
  $('#denied-checks').replaceChildren(...(e.checks ?? []).map((c) => el('li', {}, typeof c === 'string' ? c : JSON.stringify(c))));
}

// ---- sign-in

async function renderSignIn() {
  show('#sign-in', true);
  show('#session', false);
  for (const id of ['#audit', '#health', '#denied']) show(id, false);
  const r = await fetch('/admin/dev-tokens').catch(() => null);
  if (!r || r.status !== 200) return;
  const { logins } = await r.json();
  $('#dev-login-list').replaceChildren(...logins.map((l) => el('li', {},
    el('button', { type: 'button', onclick: () => signIn(l.token) }, `Sign in as ${l.userName}`),
    ` ${l.role} of ${l.orgName}`)));
  show('#dev-logins', true);
}

function signIn(t) {
  const claims = claimsOf(t.trim());
  if (!claims || !claims.sub) {
    $('#token-error').textContent = 'That is not a JWT with a sub claim.';
    show('#token-error', true);
    return;
  }
  token = t.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  show('#token-error', false);
  renderSignedIn();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  renderSignIn();
}

// ---- signed in

async function renderSignedIn() {
  const claims = claimsOf(token) ?? {};
  show('#sign-in', false);
  show('#session', true);
  show('#denied', false);
  $('#whoami').textContent = `${claims.sub} · ${claims.role ?? 'no role'} · org ${claims.org_id ?? 'none'}`;
  try {
    await loadHealth();
  } catch (e) {
    return report(e);
  }
  show('#health', true);
  show('#audit', true);
  await reloadAudit();
}

/** A refusal shows the denial and its hint; any other error shows above the audit table. */
function report(e) {
  if (e instanceof Denied) return showDenied(e);
  $('#audit-error').textContent = e.message;
  show('#audit-error', true);
  show('#audit', true);
}

function fmtTime(t) { return t ? new Date(t).toLocaleString() : '—'; }
function fmtAge(s) {
  if (s == null) return '—';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
function status(ok, text) { return el('span', { class: ok ? 'ok' : 'bad' }, text); }

async function loadHealth() {
  const h = (await graphql(HEALTH_QUERY)).operationsHealth;
  const select = $('#audit-filters select[name=tableName]');
  const chosen = select.value;
  select.replaceChildren(el('option', { value: '' }, 'any'), ...h.audited_tables.map((t) => el('option', { value: t }, t)));
  select.value = chosen;
  // Platform-wide panels come only to operators (the database decides); an org admin is told why.
  show('#health-panels', h.operator === true);
  show('#health-operators-only', h.operator !== true);
  $('#health-checked-at').textContent = fmtTime(h.platform_checked_at ?? h.checked_at);
  if (h.operator !== true) return;
  const inv = h.invalidation ?? {};
  $('#panel-invalidation dl').replaceChildren(...[
    ['pending', inv.pending], ['due now', inv.due], ['leased', inv.leased], ['retried', inv.retried],
    ['dead letters', inv.dead], ['inbox', inv.inbox], ['oldest pending', inv.oldest_pending_age ?? '—'],
    ['delivered (1 h)', inv.delivered_last_hour],
  ].flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, k === 'dead letters' ? status(Number(v) === 0, v) : (v ?? '—'))]));
  $('#panel-matviews tbody').replaceChildren(...h.matviews.map((m) => el('tr', {},
    el('td', {}, m.matview), el('td', {}, fmtAge(m.staleness_s)), el('td', {}, fmtTime(m.last_refresh_at)),
    el('td', {}, m.last_attempt_ok === false ? status(false, `failing (${m.consecutive_failures}): ${m.last_error}`) : status(m.populated, m.populated ? 'ok' : 'not populated')))));
  if (!h.matviews.length) $('#panel-matviews tbody').replaceChildren(el('tr', {}, el('td', { colspan: '4' }, 'no registered views')));
  $('#panel-cleanup tbody').replaceChildren(...h.cleanup.map((c) => el('tr', {},
    el('td', {}, c.table_name), el('td', {}, fmtTime(c.last_run_at)), el('td', {}, c.rows_behind ?? '—'),
    el('td', {}, c.last_error ? status(false, c.last_error) : !c.enabled ? 'disabled' : status(Number(c.schedules_behind ?? 0) < 2, c.schedules_behind > 1 ? `${c.schedules_behind} runs behind` : 'ok')))));
}

function readFilters() {
  const f = new FormData($('#audit-filters'));
  const v = (k) => (String(f.get(k) ?? '').trim() || null);
  const time = (k) => (v(k) ? new Date(v(k)).toISOString() : null);
  return { tableName: v('tableName'), actorId: v('actorId'), requestId: v('requestId'), since: time('since'), until: time('until'), first: Number(v('first') ?? 25) };
}

function changes(n) {
  if (n.op === 'UPDATE') {
    return (n.changedColumns ?? []).map((c) => `${c}: ${JSON.stringify(n.oldValues?.[c])} → ${JSON.stringify(n.newValues?.[c])}`).join('; ');
  }
  return JSON.stringify(n.op === 'DELETE' ? n.oldValues : n.newValues);
}

async function loadAudit() {
  show('#audit-error', false);
  const data = await graphql(AUDIT_QUERY, { ...filters, after: cursors[page] });
  const log = data.auditLog;
  const rows = log.nodes.map((n) => el('tr', { 'data-id': n.rowId },
    el('td', {}, n.rowId), el('td', {}, fmtTime(n.occurredAt)), el('td', {}, n.tableName), el('td', {}, n.op),
    el('td', { title: n.actorId ?? '' }, n.actorName ?? n.actorId ?? '—'), el('td', {}, el('code', {}, n.requestId ?? '—')),
    el('td', {}, el('code', {}, changes(n)))));
  $('#audit-table tbody').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: '7' }, 'no entries match'))]));
  cursors[page + 1] = log.pageInfo.endCursor;
  // No totalCount: counting an organisation's whole log on every page would grow with the log.
  const from = page * filters.first;
  $('#audit-page').textContent = log.nodes.length
    ? `page ${page + 1} · entries ${from + 1}–${from + log.nodes.length}${log.pageInfo.hasNextPage ? ' · more' : ''}`
    : `page ${page + 1} · no entries`;
  $('#audit-prev').disabled = page === 0;
  $('#audit-next').disabled = !log.pageInfo.hasNextPage;
}

async function reloadAudit() {
  try { await loadAudit(); } catch (e) { report(e); }
}

// ---- wiring

$('#token-form').addEventListener('submit', (e) => { e.preventDefault(); signIn($('#token').value); });
$('#sign-out').addEventListener('click', signOut);
$('#health-refresh').addEventListener('click', () => loadHealth().catch(report));
$('#audit-filters').addEventListener('submit', (e) => {
  e.preventDefault();
  filters = readFilters();
  cursors = [null];
  page = 0;
  reloadAudit();
});
$('#audit-prev').addEventListener('click', () => { page = Math.max(0, page - 1); reloadAudit(); });
$('#audit-next').addEventListener('click', () => { page += 1; reloadAudit(); });

filters = readFilters();
if (token) renderSignedIn(); else renderSignIn();
