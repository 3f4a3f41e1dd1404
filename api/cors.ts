// CORS allowlist: exact origins (scheme://host[:port]; CORS_ORIGINS, comma-separated). Checked at startup
// (api/config.ts): a malformed entry stops the process with a message naming it.

/** Why `entry` is not an origin a browser sends (scheme://host[:port], canonical), or null when it is one. */
export function originProblem(entry: string): string | null {
  if (entry === '*') return 'is not allowed: list each origin (a wildcard would let any site call the API with its users\' tokens)';
  let u: URL;
  try {
    u = new URL(entry);
  } catch {
    return 'is not an origin: expected scheme://host[:port], e.g. https://app.example.com';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `has scheme ${u.protocol.replace(':', '')}: expected http or https`;
  if (u.username || u.password) return 'must not contain credentials';
  if (u.search || u.hash || (u.pathname !== '/' && u.pathname !== '')) return `has a path, query or fragment: an origin is scheme://host[:port] only, e.g. ${u.origin}`;
  if (entry.endsWith('/')) return `ends with "/": browsers send the origin without it, use ${u.origin}`;
  if (u.origin !== entry) return `is not in canonical form (browsers send "${u.origin}")`;
  return null;
}
