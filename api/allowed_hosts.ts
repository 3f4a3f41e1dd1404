// The Host allow-list (ALLOWED_HOSTS): against DNS rebinding, a page whose name an attacker points at
// this server's address must not be served as if it were this server. The names are host names or IP
// addresses without a port (the port is not checked); matching is case-insensitive. The default is the
// loopback names, so a deployment must list its public names (ALLOWED_HOSTS=api.example.com); "*" alone
// switches the check off.
import net from 'node:net';

export const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '::1'];
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/** Why `entry` is not a host name or IP address for ALLOWED_HOSTS, or null when it is one. */
export function hostProblem(entry: string): string | null {
  if (net.isIP(entry) !== 0 || HOST_NAME.test(entry)) return null;
  return 'is not a host name or IP address (no scheme, port or path: e.g. api.example.com)';
}

/** The host name of a Host header ("Api.Example.com:443" → "api.example.com", "[::1]:5678" → "::1"); null when malformed. */
export function hostOf(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^\[([0-9a-f:.]+)\](?::\d{1,5})?$/i.exec(header) ?? /^([^:[\]]+)(?::\d{1,5})?$/.exec(header);
  return m ? m[1].toLowerCase().replace(/\.$/, '') : null;
}

/** Whether a request's Host header names one of `allowed` (lowercase, as resolveApiConfig keeps them). */
export function hostAllowed(header: string | undefined, allowed: ReadonlySet<string>): boolean {
  const host = hostOf(header);
  return host !== null && allowed.has(host);
}
